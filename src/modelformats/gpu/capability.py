"""The lowest CUDA compute capability a request needs: its format's floor, else its torch_dtype's.

A format's own floor is a fact of its strategy (`ServingFacts.capability_floor`); this module keeps
only the floors of the unquantized dtypes, a closed vocabulary. Paths are inside the vllm wheels
named (site-packages/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from modelformats.formats.base import CapabilityFloor

__all__ = [
    "DTYPE_CAPABILITY_FLOORS",
    "CapabilityFloor",
    "CapabilityRequirement",
    "required_compute_capability",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class CapabilityRequirement:
    """What a request needs, and the rows (or the caller) that decided it."""

    minimum: tuple[int, int]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"minimum": f"{self.minimum[0]}.{self.minimum[1]}", "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CapabilityRequirement:
        major, _, minor = str(d["minimum"]).partition(".")
        return cls(minimum=(int(major), int(minor or 0)), reasons=tuple(d.get("reasons", ())))


_DTYPE_FLOORS = (
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
DTYPE_CAPABILITY_FLOORS: Mapping[str, CapabilityFloor] = MappingProxyType({f.key: f for f in _DTYPE_FLOORS})
_DTYPE_KEYS: Mapping[str, str] = MappingProxyType(
    {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16", "half": "float16"}
)


def required_compute_capability(
    *,
    engine: str,
    floor: CapabilityFloor | None = None,
    weights_in_torch_dtype: bool = True,
    torch_dtype: str | None = None,
    capability_floors: bool | None = None,
) -> CapabilityRequirement:
    """The compute capability vLLM needs for these weights; llama.cpp's CUDA build runs on all of Modal's.

    `floor` is the format's own (its strategy's `serving.capability_floor`); without one, weights stored
    at their torch_dtype need that dtype's floor. `capability_floors` is the engine's trait
    (`EngineTraits.capability_floors`); None: the built-in engine `engine`'s.
    """
    if capability_floors is None:
        from modelformats.engines.builtin import engine_traits

        capability_floors = engine_traits(engine).capability_floors
    if not capability_floors:
        return CapabilityRequirement(
            minimum=(0, 0), reasons=(f"{engine}: no floor beyond the GPUs Modal offers (all >= 7.5)",)
        )
    top = floor
    if top is None and weights_in_torch_dtype and torch_dtype is not None:
        dtype_key = _DTYPE_KEYS.get(torch_dtype.lower())
        top = DTYPE_CAPABILITY_FLOORS[dtype_key] if dtype_key is not None else None
    if top is None:
        return CapabilityRequirement(minimum=(0, 0), reasons=("no floor known for these weights",))
    cc = f"{top.minimum[0]}.{top.minimum[1]}"
    return CapabilityRequirement(minimum=top.minimum, reasons=(f"{top.key}: >= {cc}, {top.reason} ({top.source})",))
