"""The lowest CUDA compute capability each kind of weights needs, read from vLLM's source.

Keys are modelformats format names, which are also vLLM's quantization names where one exists
("gguf", "awq", "gptq", "fp8", ...). Paths are inside the vllm wheels named (site-packages/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "COMPUTE_CAPABILITY_FLOORS",
    "CapabilityFloor",
    "CapabilityRequirement",
    "required_compute_capability",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class CapabilityFloor:
    """One row: weights of kind `key` need compute capability >= `minimum` on the engine."""

    key: str
    minimum: tuple[int, int]
    source: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CapabilityRequirement:
    """What a request needs, and the rows (or the caller) that decided it."""

    minimum: tuple[int, int]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"minimum": f"{self.minimum[0]}.{self.minimum[1]}", "reasons": list(self.reasons)}


_FLOORS = (
    CapabilityFloor(
        key="gguf",
        minimum=(6, 0),
        source=(
            "vllm 0.23.0 vllm/model_executor/layers/quantization/gguf.py:71 GGUFConfig.get_min_capability; "
            "vllm-gguf-plugin 0.0.5 vllm_gguf_plugin/quantization/config.py:46"
        ),
        reason="vLLM's GGUF dequantization kernels",
    ),
    CapabilityFloor(
        key="gptq",
        minimum=(6, 0),
        source="vllm 0.33.0 vllm/model_executor/layers/quantization/auto_gptq.py:182",
        reason="vLLM's GPTQ kernels",
    ),
    CapabilityFloor(
        key="awq",
        minimum=(7, 5),
        source=(
            "vllm 0.33.0 vllm/model_executor/layers/quantization/auto_awq.py:233 (0.23.0 awq.py:75, awq_marlin.py:225)"
        ),
        reason="vLLM's AWQ kernels",
    ),
    CapabilityFloor(
        key="bitsandbytes",
        minimum=(7, 0),
        source="vllm 0.23.0 vllm/model_executor/layers/quantization/bitsandbytes.py:104 (gone by 0.33.0)",
        reason="bitsandbytes kernels",
    ),
    CapabilityFloor(
        key="compressed-tensors",
        minimum=(7, 0),
        source=("vllm 0.33.0 vllm/model_executor/layers/quantization/compressed_tensors/compressed_tensors.py:123"),
        reason="the compressed-tensors floor; its FP8 schemes want 8.9 for native kernels (pass 'fp8')",
    ),
    CapabilityFloor(
        key="fp8",
        minimum=(8, 9),
        source=(
            "vllm 0.33.0 vllm/platforms/cuda.py:587 supports_fp8() = has_device_capability(89); "
            "below it Fp8Config (fp8.py:146, floor 7.5) falls back to weight-only Marlin kernels"
        ),
        reason="native FP8 tensor cores (Ada/Hopper and newer)",
    ),
    CapabilityFloor(
        key="bfloat16",
        minimum=(8, 0),
        source=(
            "vllm 0.33.0 vllm/platforms/cuda.py:257 supported_dtypes (bf16 only from 8.0) and :638 "
            "check_if_supports_dtype; with --dtype auto, config/model.py:2423 falls back to float16 below"
        ),
        reason="bfloat16 weights served as trained (no float16 fallback)",
    ),
    CapabilityFloor(
        key="float16",
        minimum=(6, 0),
        source="vllm 0.33.0 vllm/platforms/cuda.py:261 supported_dtypes (float16 from 6.0)",
        reason="float16 compute",
    ),
)
COMPUTE_CAPABILITY_FLOORS: Mapping[str, CapabilityFloor] = MappingProxyType({f.key: f for f in _FLOORS})

# Formats that carry unquantized weights: their torch_dtype decides.
_UNQUANTIZED_FORMATS = frozenset({"safetensors", "pytorch"})
_DTYPE_KEYS: Mapping[str, str] = MappingProxyType(
    {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16", "half": "float16"}
)


def required_compute_capability(
    *,
    engine: str,
    format: str | None = None,
    quantization: str | None = None,
    torch_dtype: str | None = None,
) -> CapabilityRequirement:
    """The compute capability vLLM needs for these weights; llama.cpp's CUDA build runs on all of Modal's."""
    if engine != "vllm":
        return CapabilityRequirement(
            minimum=(0, 0), reasons=(f"{engine}: no floor beyond the GPUs Modal offers (all >= 7.5)",)
        )
    rows: list[CapabilityFloor] = []
    for key in (quantization, format):
        if key is not None and key in COMPUTE_CAPABILITY_FLOORS:
            rows.append(COMPUTE_CAPABILITY_FLOORS[key])
    if not rows and (format is None or format in _UNQUANTIZED_FORMATS) and torch_dtype is not None:
        dtype_key = _DTYPE_KEYS.get(torch_dtype.lower())
        if dtype_key is not None:
            rows.append(COMPUTE_CAPABILITY_FLOORS[dtype_key])
    if not rows:
        return CapabilityRequirement(minimum=(0, 0), reasons=("no floor known for these weights",))
    top = max(rows, key=lambda r: r.minimum)
    cc = f"{top.minimum[0]}.{top.minimum[1]}"
    return CapabilityRequirement(minimum=top.minimum, reasons=(f"{top.key}: >= {cc}, {top.reason} ({top.source})",))
