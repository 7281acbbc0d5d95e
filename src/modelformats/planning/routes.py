"""Every way of serving a detected repo, as routes: its own weights on each engine its strategy names, its
base model's native weights (or, without them, its weights converted), and online FP8 of 16-bit weights.

The routes are derived from the strategy's `ServingFacts`, narrowed by --engine and --format; nothing here
compares with a format's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from modelformats.engines.base import Engine, EvidenceLevel, LoadVerdict
from modelformats.errors import InvalidRequestError, ModelFormatsError, NoWeightsError
from modelformats.listing import RepoListing
from modelformats.options import ENGINE_CHOICES
from modelformats.planning.converted import convert_routes
from modelformats.planning.fp8 import online_fp8
from modelformats.planning.route import Route, route_label
from modelformats.planning.session import PlanSession
from modelformats.registry import DetectionResult

__all__ = ["build_routes"]

# What an engine named by --engine serves, for the error when the repo's format does not name it.
_ENGINE_SERVES: Mapping[str, str] = {"llamacpp": "serves GGUF files only", "vllm": "cannot serve these weights"}


def build_routes(session: PlanSession, listing: RepoListing, detected: DetectionResult) -> list[Route]:
    fmt = detected.detection.format
    facts = detected.strategy.serving
    opts = session.options
    if opts.format not in ("auto", "native") and opts.format != fmt:
        raise InvalidRequestError(
            f"--format {opts.format}: {listing.repo_id!r} holds {fmt} weights, not {opts.format.upper()}. "
            f"Use --format auto, or plan a {opts.format.upper()} repo."
        )
    if opts.engine != "auto" and not session.engines(facts) and not facts.base_model_routes:
        raise InvalidRequestError(
            f"--engine {opts.engine} {_ENGINE_SERVES.get(opts.engine, 'cannot serve these weights')} and "
            f"{listing.repo_id!r} holds {fmt} weights. Use --engine {_other_engine(opts.engine)} or auto."
        )
    routes: list[Route] = []
    if not (facts.base_model_routes and opts.format == "native"):
        routes += [_route(session, listing, detected, engine, kind="as-is") for engine in session.engines(facts)]
    if facts.base_model_routes and opts.format in ("auto", "native") and opts.engine in ("auto", "vllm"):
        # Without a base model's native weights, the repo's own weights converted are the native route.
        routes += _base_routes(session, listing) or convert_routes(session, listing, detected)
    if not routes:
        raise InvalidRequestError(
            f"No way to serve {listing.repo_id!r} with --engine {opts.engine} --format {opts.format}: "
            "no base model with native weights was found and the weights convert to no format an engine "
            "serves. Use --format auto to see every option."
        )
    return routes + [fp8 for route in routes if (fp8 := online_fp8(session, route)) is not None]


def _base_routes(session: PlanSession, listing: RepoListing) -> list[Route]:
    base = session.base_listing(listing)
    if base is None:
        session.notes.append(
            "No base model with native weights was found for this GGUF repo (card base_model, GGUF header "
            "keys, or a sibling repo without -GGUF), so only the GGUF itself (as it is, or converted) was "
            "considered."
        )
        return []
    try:
        detected = session.registry.detect(base)
    except NoWeightsError:
        session.notes.append(f"The base model {base.repo_id} has no weights vLLM can load.")
        return []
    facts = detected.strategy.serving
    if not detected.detection.servable or facts.base_model_routes:
        session.notes.append(
            f"The base model {base.repo_id} holds {detected.detection.format} weights: no native route."
        )
        return []
    return [_route(session, base, detected, engine, kind="base-native") for engine in session.engines(facts)]


def _route(
    session: PlanSession, listing: RepoListing, detected: DetectionResult, engine: Engine, *, kind: str
) -> Route:
    fmt = detected.detection.format
    label = route_label(fmt, engine, kind, listing.repo_id)
    base = Route(label=label, kind=kind, listing=listing, detection=detected, engine=engine,
                 verdict=LoadVerdict(loads=False, level=EvidenceLevel.REFUSED))  # fmt: skip
    try:
        selection = session.select(listing, detected, engine)
    except ModelFormatsError as exc:
        # A quant this engine refuses everywhere is a refused route; other engines may still take it.
        # The same error on every route (an incomplete upload, a --quant not there) is raised as itself.
        return replace(base, verdict=replace(base.verdict, reasons=(str(exc),)), error=exc)
    traits = session.traits(listing, selection)
    weights = session.weights_spec(listing, detected, selection, traits)
    verdict = engine.check(weights)
    routed = replace(base, selection=selection, weights=weights, verdict=verdict)
    if not verdict.loads:
        return routed
    return session.serve(routed, detected.strategy.serving)


def _other_engine(engine: str) -> str:
    """The first other --engine choice than `engine` (and 'auto'), to suggest."""
    return next(choice for choice in ENGINE_CHOICES if choice not in ("auto", engine))
