"""From ranked routes to the `DeploymentPlan`: the first loadable route is the plan (or the error that says
why none loads), with its download items, joins and conversions, and every other route as an alternative."""

from __future__ import annotations

from modelformats.deployment import DeploymentPlan, DownloadItem, EnginePlan, JoinStep
from modelformats.errors import LISTING_UNAVAILABLE, EngineCannotLoadError, ExpertsPerTokenError
from modelformats.listing import RepoListing
from modelformats.planning.explain import alternative, explain
from modelformats.planning.route import Route, route_quant
from modelformats.planning.session import PlanSession
from modelformats.registry import DetectionResult
from modelformats.traits import ModelTraits
from modelformats.validate import check_quant_honoured

__all__ = ["assemble"]


def assemble(
    session: PlanSession, listing: RepoListing, detected: DetectionResult, routes: list[Route]
) -> DeploymentPlan:
    # An explicit --quant ranks the routes that serve it first (the rest stay as alternatives).
    quant = (session.options.quant or "").upper()
    ranked = sorted(routes, key=lambda r: (bool(quant) and route_quant(r) != quant, r.sort_key()))
    loadable = [r for r in ranked if r.loads]
    if not loadable:
        errors = {(type(r.error), str(r.error)) for r in ranked}
        first = ranked[0].error
        if first is not None and len(errors) == 1:
            raise first  # the same user error on every route (e.g. --quant names a quant that is not there)
        # --experts-per-token is checked against the model, not the route: when it is what kept every
        # route an engine would load, it is the answer (the engines' own refusals stay alternatives).
        experts = {str(r.error): r.error for r in ranked if r.verdict.loads}
        only = next(iter(experts.values())) if len(experts) == 1 else None
        if isinstance(only, ExpertsPerTokenError):
            raise only
        lines = [f"- {r.label}: {'; '.join(r.reasons) or 'refused'}" for r in ranked]
        opts = session.options
        widen = opts.engine != "auto" or opts.format != "auto"
        raise EngineCannotLoadError(
            f"No engine can load {listing.repo_id!r} as asked (--engine {opts.engine}, --format "
            f"{opts.format}):\n"
            + "\n".join(lines)
            + ("\nTry --engine auto --format auto." if widen else "\nNo engine and format combination loads it."),
            reasons=[line[2:] for line in lines],
        )
    chosen = loadable[0]
    chosen_quant = chosen.selection.quant if chosen.selection is not None else None
    check_quant_honoured(listing.repo_id, session.options.quant, chosen_quant, [r.error for r in ranked], listing.paths)
    assert chosen.selection is not None and chosen.gpu is not None and chosen.command is not None
    requested = session.requested or listing
    alternatives = tuple(alternative(i + 2, r, chosen) for i, r in enumerate(ranked[1:]))
    downloads, joins = _downloads(session, chosen)
    sel = chosen.selection
    return DeploymentPlan(
        repo_id=requested.repo_id,
        revision=requested.revision,
        weights_repo_id=chosen.listing.repo_id,
        format=chosen.format,
        quantization=chosen.weights.quantization if chosen.weights else None,
        quant=sel.quant,
        detection=detected.detection_summary(),
        files=sel.files,
        tokenizer=sel.tokenizer,
        download_root=session.options.download_root,
        downloads=downloads,
        joins=joins,
        download_bytes=_sum_bytes(downloads),
        download_bytes_estimated=any(d.bytes_estimated for d in downloads),
        served_model_name=requested.repo_id,
        port=session.options.port,
        engine=EnginePlan(
            name=chosen.engine.name,
            version=chosen.engine.version,
            argv=chosen.command.argv,
            requirements=chosen.command.requirements,
            env=dict(chosen.command.env),
            image=chosen.command.image,
            verdict=chosen.verdict,
            notes=chosen.command.notes,
            overrides=chosen.command.overrides,
        ),
        gpu=chosen.gpu.gpu_summary(),
        runtime=chosen.gpu.limits,
        memory=chosen.gpu.memory.memory_summary(),
        traits=chosen.weights.traits if chosen.weights else ModelTraits(),
        alternatives=alternatives,
        explanation=tuple(
            explain(
                requested,
                detected,
                chosen,
                alternatives,
                notes=session.notes,
                experts_per_token=session.options.experts_per_token,
            )
        ),
        warnings=tuple(dict.fromkeys([*sel.warnings, *chosen.verdict.warnings, *chosen.gpu.warnings])),
        excluded=sel.excluded,
        compute_capability=chosen.gpu.compute_capability,
        parallel_options=chosen.gpu.parallel_options,
        launch=chosen.gpu.launch,
        other_policy=chosen.gpu.comparison,
        converts=(chosen.convert,) if chosen.convert is not None else (),
    )


def _downloads(session: PlanSession, route: Route) -> tuple[tuple[DownloadItem, ...], tuple[JoinStep, ...]]:
    sel = route.selection
    assert sel is not None
    local = session.local_dir(route.listing.repo_id)
    items = [
        DownloadItem(
            repo_id=route.listing.repo_id,
            revision=route.listing.revision,
            files=sel.files,
            allow_patterns=sel.allow_patterns,
            local_dir=local,
            bytes=sel.download_bytes,
            bytes_estimated=sel.bytes_estimated,
            sizes=_known_sizes(route.listing, sel.files),
            hashes=_known_hashes(route.listing, sel.files),
            source_dir=route.listing.origin_dir,
        )
    ]
    tok = sel.tokenizer
    if tok is not None:
        tok_origin: str | None = None
        try:
            tok_listing = session.source.fetch(tok.repo_id)
            tok_sizes, tok_hashes = _known_sizes(tok_listing, tok.files), _known_hashes(tok_listing, tok.files)
            tok_origin = tok_listing.origin_dir
        except LISTING_UNAVAILABLE:
            tok_sizes, tok_hashes = {}, {}
        items.append(
            DownloadItem(
                repo_id=tok.repo_id,
                revision=tok.revision,
                files=tok.files,
                allow_patterns=tok.allow_patterns,
                local_dir=session.local_dir(tok.repo_id),
                bytes=tok.download_bytes,
                bytes_estimated=tok.download_bytes is None,
                sizes=tok_sizes,
                hashes=tok_hashes,
                source_dir=tok_origin,
            )
        )
    joins = tuple(
        JoinStep(
            output=f"{local}/{j.output}",
            parts=tuple(f"{local}/{p}" for p in j.parts),
            expected_bytes=j.expected_bytes,
        )
        for j in sel.joins
    )
    return tuple(items), joins


def _known_sizes(listing: RepoListing, paths: tuple[str, ...]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in paths:
        f = listing.get(path)
        if f is not None and f.size is not None:
            sizes[path] = f.size
    return sizes


def _known_hashes(listing: RepoListing, paths: tuple[str, ...]) -> dict[str, str]:
    """The Hub's hash of each path the listing records one for: `download` checks the bytes against it."""
    found = (listing.get(path) for path in paths)
    return {f.path: f.digest for f in found if f is not None and f.digest is not None}


def _sum_bytes(items: tuple[DownloadItem, ...]) -> int | None:
    """Unknown weights make the total unknown; a tokenizer repo of unknown size (a few MB of JSON) is left
    out, and its item's `bytes_estimated` marks the total as an estimate."""
    weights, *rest = items
    if weights.bytes is None:
        return None
    return weights.bytes + sum(item.bytes or 0 for item in rest)
