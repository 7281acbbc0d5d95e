"""The converted routes: a repo's weights rewritten after download (`modelformats convert`) into the format
its strategy names (`converts_to`), served by that format's engines; refused where convert cannot do it.

Their evidence (`converted`, or `converted-cpu-generation` where vLLM's engine generated from converted tiny
checkpoints of the layout) ranks them below every route that serves the downloaded weights as they are.
"""

from __future__ import annotations

from dataclasses import replace

from modelformats.conversion import (
    CONVERT_DTYPE,
    CONVERTED_BYTES_PER_PARAM,
    MEASURED_RATE,
    conversion_target,
    supported_conversions,
)
from modelformats.deployment import ConvertStep
from modelformats.engines.base import Engine, EvidenceLevel, LoadVerdict, WeightsSpec
from modelformats.errors import ModelFormatsError
from modelformats.formats.base import FileSelection, ModelFormat
from modelformats.listing import RepoListing
from modelformats.planning.explain import human_bytes
from modelformats.planning.route import Route
from modelformats.planning.session import PlanSession
from modelformats.registry import DetectionResult
from modelformats.traits import ModelTraits

__all__ = ["convert_routes"]

# A conversion without the base model's config.json (convert rebuilds config and tokenizer from the GGUF).
_NO_BASE_CONVERT = (
    "The conversion has no base model's config.json: modelformats convert builds config.json and the tokenizer "
    "from the GGUF (transformers needed where it runs) and refuses a GGUF with llama3 rope scaling (a rope_freqs "
    "tensor, Llama 3.1 and later), whose parameters the header lacks. Pass --tokenizer-from with the original "
    "model's repo to take both from there."
)


def convert_routes(session: PlanSession, listing: RepoListing, detected: DetectionResult) -> list[Route]:
    """The repo's weights converted after download into the format its strategy names (`converts_to`),
    on that format's engines; refused routes where `modelformats convert` cannot convert them."""
    name = detected.strategy.serving.converts_to
    target = session.registry.formats.get(name) if name is not None else None
    if target is None:
        return []
    return [_convert_route(session, listing, detected, target, engine) for engine in session.engines(target.serving)]


def _convert_route(
    session: PlanSession, listing: RepoListing, detected: DetectionResult, target: ModelFormat, engine: Engine
) -> Route:
    fmt = detected.detection.format
    base = Route(
        label=f"{fmt} weights converted to {target.name} ({CONVERT_DTYPE}) on {engine.label}",
        kind="converted",
        served_format=target.name,
        listing=listing,
        detection=detected,
        engine=engine,
        verdict=LoadVerdict(loads=False, level=EvidenceLevel.REFUSED),
    )
    try:
        selection = session.select(listing, detected, None)
    except ModelFormatsError as exc:
        return replace(base, verdict=replace(base.verdict, reasons=(str(exc),)), error=exc)
    base = replace(base, selection=selection)
    traits = session.traits(listing, selection)
    supported = ", ".join(supported_conversions())
    arch = traits.gguf_architecture
    if arch is None:
        why = (
            f"the {fmt} architecture is unknown (no header read and no base config), so whether "
            f"modelformats convert supports it cannot be told (it converts: {supported})"
        )
        return replace(base, verdict=replace(base.verdict, reasons=(why,)))
    experts = bool(traits.num_experts)
    conversion = conversion_target(arch, experts)
    if conversion is None:
        why = (
            f"modelformats convert has no layout for {fmt} architecture {arch!r}"
            f"{' with experts' if experts else ''} (it converts: {supported})"
        )
        return replace(base, verdict=replace(base.verdict, reasons=(why,)))
    source_bytes = selection.download_bytes
    when = MEASURED_RATE.describe(source_bytes)
    root = session.local_dir(listing.repo_id)
    step = ConvertStep(
        gguf=f"{root}/{selection.model_file}",
        output=f"{root}/{_converted_dir(selection.quant, CONVERT_DTYPE)}",
        dtype=CONVERT_DTYPE,
        base=session.local_dir(selection.tokenizer.repo_id) if selection.tokenizer is not None else None,
        source_bytes=source_bytes,
        estimated_seconds=MEASURED_RATE.seconds(source_bytes) if source_bytes is not None else None,
        estimate_basis=when,
    )
    origin = f"modelformats convert's {conversion.name} layout"
    converted = replace(
        traits,
        architecture=conversion.hf_architecture,
        model_type=conversion.model_type,
        torch_dtype=CONVERT_DTYPE,
        sources={
            **traits.sources,
            "architecture": origin,
            "model_type": origin,
            "torch_dtype": f"the dtype the planned conversion writes ({CONVERT_DTYPE})",
        },
    )
    weights = WeightsSpec(
        format=target.name,
        repo_id=listing.repo_id,
        revision=listing.revision,
        model=step.output,
        container=target.serving.container,
        quantization=target.serving.vllm_quantization,
        quantization_flag=target.serving.quantization_flag,
        traits=converted,
    )
    checked = engine.check(weights)
    caveat = () if step.base is not None else (_NO_BASE_CONVERT,)
    verdict = replace(
        checked,
        level=conversion.level if checked.loads else checked.level,
        warnings=(*checked.warnings, *conversion.warnings(selection.quant), *caveat),
        evidence=(
            *checked.evidence,
            *conversion.evidence(),
            f"conversion after download: {selection.quant or fmt} -> {CONVERT_DTYPE}, {when}",
        ),
    )
    routed = replace(base, weights=weights, verdict=verdict, convert=step, note=f"conversion {when}")
    if not verdict.loads:
        return routed
    params = _converted_params(traits, selection)
    if params is None:
        why = f"the parameter count is unknown, so the {CONVERT_DTYPE} weights cannot be sized"
        return replace(routed, problem=why)
    n, basis = params
    size = (n * CONVERTED_BYTES_PER_PARAM, f"converted to {CONVERT_DTYPE}: {n:,} parameters ({basis}) x 2 B")
    return session.serve(routed, target.serving, weights_size=size)


def _converted_dir(quant: str | None, dtype: str) -> str:
    """The folder, beside the downloaded GGUF, that a conversion writes (one per quant and dtype)."""
    return f"converted-{quant or 'gguf'}-{dtype}"


def _converted_params(traits: ModelTraits, selection: FileSelection) -> tuple[int, str] | None:
    """Parameters of weights to be converted: the metadata's count, else the GGUF's bytes / its bytes per weight."""
    if traits.params_total:
        return traits.params_total, traits.sources.get("params_total", "model traits")
    wb = selection.weight_bytes
    if selection.download_bytes and wb is not None:
        n = int(selection.download_bytes / wb.bytes_per_weight)
        return n, f"{human_bytes(selection.download_bytes)} / {wb.bytes_per_weight:.4g} bytes per weight ({wb.basis})"
    return None
