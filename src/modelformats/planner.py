"""From a repo id to a `DeploymentPlan`: detect, select files, ask each engine, size the GPU, rank.

Every way of serving the model is a *route* (weights x engine). Routes whose engine cannot load
the weights are kept as refused alternatives with their evidence; loadable routes are ranked by
how strongly we know they load (`EvidenceLevel`), then by price per hour, then by download size,
and the first is the plan. For a GGUF repo the routes include its base model's native weights on
vLLM and the GGUF on llama.cpp's server, so a GGUF that vLLM cannot load still gets a plan that can.
When no base model's native weights are found, the GGUF converted to safetensors after download
(`modelformats convert`) on vLLM is a route too, for the architectures convert supports; its evidence
(`converted`, or `converted-cpu-generation` where vLLM's engine generated from converted tiny checkpoints of
the layout) ranks it below every route that serves the downloaded weights as they are.

This module is the entry point only: it checks the arguments, resolves the source, registry and GPU policy,
detects the format (falling back to the base model when that format is switched off), and runs the parts in
`modelformats.planning` (routes, sizing, assembly, explanation), one job per module.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from modelformats.deployment import DeploymentPlan
from modelformats.errors import InvalidRequestError, NoWeightsError, UnservableFormatError
from modelformats.listing import ListingSource, RepoListing, validate_repo_id
from modelformats.options import ENGINE_CHOICES, FORMAT_CHOICES, PlanOptions
from modelformats.planning.assemble import assemble
from modelformats.planning.routes import build_routes
from modelformats.planning.session import PlanSession
from modelformats.registry import FormatRegistry, default_registry, disabled_from_env
from modelformats.sources.once import OncePerPlanSource
from modelformats.sources.recorded import default_source
from modelformats.validate import check_options

if TYPE_CHECKING:
    from modelformats.gpu import GpuPolicy, PolicyRegistry

__all__ = ["DEFAULT_REPO", "ENGINE_CHOICES", "FORMAT_CHOICES", "PlanOptions", "plan"]

# The embedded offline default: the repo this product was built for.
DEFAULT_REPO = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"


def plan(
    repo_id: str | None = None,
    *,
    source: ListingSource | None = None,
    options: PlanOptions | None = None,
    registry: FormatRegistry | None = None,
    policies: PolicyRegistry | None = None,
) -> DeploymentPlan:
    """Plan the deployment of `repo_id` (None: the embedded offline default, the target GGUF repo).

    `source` defaults to the Hub (or, for the default repo, to the recordings in the package);
    `registry` to `default_registry()`; `policies` (where `options.policy` is looked up by name) to
    `default_policies()`.
    """
    options = options or PlanOptions()
    check_options(options, policies)  # every argument error, once, before any listing is read
    if repo_id is None:
        repo_id = DEFAULT_REPO
        source = source or default_source()
    if source is None:
        from modelformats.sources.hub import HubSource

        source = HubSource()
    validate_repo_id(repo_id)
    registry = registry or default_registry()
    disabled = tuple(sorted({*options.disable, *disabled_from_env(options.environ)}))
    unknown = [name for name in disabled if name not in registry]
    if unknown:
        raise InvalidRequestError(
            f"--disable / MODELFORMATS_DISABLE names unknown format(s) {unknown}; known: "
            f"{', '.join(registry.formats)}. Fix the name (e.g. MODELFORMATS_DISABLE=gguf)."
        )
    active = registry.copy(without=disabled)
    policy = _resolve_policy(options.policy, policies)
    source = OncePerPlanSource(source)
    listing = source.fetch(repo_id, revision=options.revision)
    session = PlanSession(
        source=source, options=options, registry=active, full=registry, disabled=disabled, policy=policy
    )
    return _run(session, listing)


def _resolve_policy(policy: str | GpuPolicy, policies: PolicyRegistry | None) -> GpuPolicy:
    from modelformats.gpu import GpuPolicy, default_policies

    if isinstance(policy, GpuPolicy):
        return policy
    return (policies if policies is not None else default_policies()).get(policy)


def _run(session: PlanSession, listing: RepoListing) -> DeploymentPlan:
    """Detect the repo's format (falling back to its base model when that format is disabled), build its
    routes, and assemble the plan from them."""
    session.requested = session.requested or listing
    try:
        # The formats switched off are named in the plan's detection, whatever they would have claimed.
        detected = replace(session.registry.detect(listing), disabled=session.disabled)
    except NoWeightsError:
        fallback = _rollback_fallback(session, listing)
        if fallback is None:
            raise
        return _run(session, fallback)
    d = detected.detection
    if not d.servable:
        raise UnservableFormatError(listing.repo_id, detected.strategy.description, d.reason or "", d.instead or "")
    return assemble(session, listing, detected, build_routes(session, listing, detected))


def _rollback_fallback(session: PlanSession, listing: RepoListing) -> RepoListing | None:
    """With a format switched off (the rollback flag), a repo of that format falls back to its base model."""
    if not session.disabled:
        return None
    try:
        would_be = session.full.detect(listing).detection.format
    except NoWeightsError:
        return None
    if would_be not in session.disabled:
        return None
    base = session.base_listing(listing)
    if base is None:
        raise InvalidRequestError(
            f"{listing.repo_id!r} holds {would_be} weights and {would_be} is disabled (MODELFORMATS_DISABLE "
            "or --disable); no base model was found to fall back to (card base_model, GGUF header keys, or "
            "a sibling repo without the -GGUF suffix). Re-enable the format or plan the base model by name."
        )
    session.notes.append(
        f"{would_be} is disabled (rollback flag), so {listing.repo_id} falls back to its base model {base.repo_id}."
    )
    return base
