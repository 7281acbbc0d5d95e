"""The online-FP8 route: a loadable route's 16-bit HF weights quantized to FP8 by vLLM as it loads them.

vLLM's Fp8Config without checkpoint scales quantizes every linear and MoE expert weight to FP8 as it loads
(1 byte/param; embeddings, norms and lm_head stay 16-bit). Read in vLLM's source, not run here (no FP8
kernels on CPU), so the route is `source-read` whatever the 16-bit route's level.
"""

from __future__ import annotations

from dataclasses import replace

from modelformats.engines.base import EvidenceLevel
from modelformats.errors import InvalidRequestError, NoFittingGpuError
from modelformats.listing import RepoListing
from modelformats.planning.route import Route
from modelformats.planning.session import PlanSession
from modelformats.traits import ModelTraits

__all__ = ["ONLINE_FP8", "online_fp8"]

# vLLM's name for online FP8 quantization of 16-bit weights (`--quantization fp8`).
ONLINE_FP8 = "fp8"
_SIXTEEN_BIT = ("bfloat16", "float16")


def online_fp8(session: PlanSession, route: Route) -> Route | None:
    """The same 16-bit HF weights quantized to FP8 by vLLM at load (`--quantization fp8`), or None."""
    w = route.weights
    if (
        not route.loads
        or w is None
        or route.selection is None
        # A converted route's selection is the GGUF, not the 16-bit weights FP8 would be sized from.
        or route.convert is not None
        or w.container != "hf-directory"
        or w.quantization is not None
        or not _sixteen_bit(route.listing, w.traits)
        # An engine that quantizes 16-bit weights itself at load names the methods (VllmEngine);
        # the attribute is optional so engines without it (llama.cpp) need not declare an empty one.
        or ONLINE_FP8 not in getattr(route.engine, "online_quantization", ())
    ):
        return None
    weights = replace(w, quantization=ONLINE_FP8, quantization_flag=True)
    checked = route.engine.check(weights)
    if not checked.loads:
        return None
    verdict = replace(
        checked,
        level=max(checked.level, EvidenceLevel.SOURCE_READ, key=lambda level: level.rank),
        evidence=(
            *checked.evidence,
            "online FP8: vLLM quantizes the 16-bit weights at load (--quantization fp8 with no checkpoint "
            "scales); read in vLLM's source, not run on CPU",
        ),
    )
    size = _fp8_bytes(route.selection.download_bytes, w.traits)
    routed = replace(route, label=f"online FP8 of {route.label}", weights=weights, verdict=verdict)
    if size is None:
        return replace(routed, problem="the 16-bit weights' size is unknown, so FP8 cannot be sized")
    try:
        gpu = session.choose_gpu(
            route.engine, weights, route.selection, w.traits, route.detection.strategy.serving, weights_size=size
        )
    except (NoFittingGpuError, InvalidRequestError) as exc:
        return replace(routed, problem=str(exc), error=exc)
    runtime = gpu.runtime_spec(served_model_name=session.served_name(route.listing), port=session.options.port)
    return replace(routed, gpu=gpu, command=route.engine.command(weights, runtime, verdict))


def _sixteen_bit(listing: RepoListing, traits: ModelTraits) -> bool:
    """config.json's torch_dtype, else the Hub's safetensors parameter counts by dtype, say 16-bit weights."""
    if traits.torch_dtype is not None:
        return traits.torch_dtype.lower() in _SIXTEEN_BIT
    counts = listing.safetensors.parameters if listing.safetensors is not None else {}
    return bool(counts) and set(counts) <= {"BF16", "F16"}


def _fp8_bytes(sixteen_bit_bytes: int | None, traits: ModelTraits) -> tuple[int, str] | None:
    """FP8 weights: half the 16-bit bytes, plus embed_tokens and lm_head kept in 16 bits (counted untied:
    the traits do not say whether they are tied, so a tied model is over-sized by one table)."""
    if sixteen_bit_bytes is None:
        return None
    kept = traits.vocab_size * traits.hidden_size * 2 if traits.vocab_size and traits.hidden_size else 0
    basis = f"online FP8: {sixteen_bit_bytes / 1e9:.1f} GB of 16-bit weights at 1 byte/param" + (
        f", embed_tokens + lm_head kept 16-bit (+{kept / 1e9:.2f} GB)" if kept else ""
    )
    return sixteen_bit_bytes // 2 + kept, basis
