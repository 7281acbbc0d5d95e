"""The planner's view of `modelformats convert`: which GGUFs it converts, what proves it, how long it takes.

The route "GGUF converted -> safetensors on vLLM" (issue 18) is planned from three facts, each kept in
one place and only read here:

- what converts: `modelformats.convert`'s own layout registry (`default_layouts()`), the very one
  `convert_gguf` uses; its module imports only the standard library and `modelformats.gguf.hf_names`
  (the package loads its numpy-using parts lazily), so planning needs no numpy;
- what is proven: `nox -s gguf_convert_proof`'s committed results
  (src/modelformats/engines/data/gguf_convert_proof.json): per layout, the quants whose converted
  weights and transformers logits matched; it never runs vLLM on the converted directory;
- how fast: `MEASURED_RATE`, the throughput `benchmarks/bench_convert.py` measured (docs/convert.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from modelformats.convert import ConversionLayouts, default_layouts

__all__ = [
    "CONVERTED_BYTES_PER_PARAM",
    "CONVERT_DTYPE",
    "MEASURED_RATE",
    "ConversionTarget",
    "ConvertRate",
    "conversion_target",
    "supported_conversions",
]

# The dtype the planned conversion writes (convert_gguf's default) and its bytes per parameter.
CONVERT_DTYPE = "bfloat16"
CONVERTED_BYTES_PER_PARAM = 2
PROOF_FILE = "data/gguf_convert_proof.json"
PROOF_SESSION = "nox -s gguf_convert_proof"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConvertRate:
    """GGUF bytes converted per second, and where the number comes from."""

    bytes_per_second: float
    basis: str

    def seconds(self, source_bytes: int) -> int:
        return math.ceil(source_bytes / self.bytes_per_second)

    def describe(self, source_bytes: int | None) -> str:
        """ "~N min at 108 MB/s measured by ..." for `source_bytes` of GGUF."""
        rate = f"{self.bytes_per_second / 1e6:.0f} MB/s {self.basis}"
        if source_bytes is None:
            return f"time unknown (the GGUF's size is not known); {rate}"
        return f"~{max(1, math.ceil(self.seconds(source_bytes) / 60))} min at {rate}"


# convert_gguf -> bfloat16, 13.9 s for the 1.5 GB target-shaped Q8_0 GGUF (page cache), on the shared
# 2-core development machine at load average ~1.2: the table in docs/convert.md.
MEASURED_RATE = ConvertRate(
    bytes_per_second=108e6,
    basis="measured by benchmarks/bench_convert.py on a 2-core machine (Q8_0 -> bfloat16, input in page cache)",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConversionTarget:
    """What `modelformats convert` makes of one GGUF architecture, and what its proof covers."""

    gguf_architecture: str
    has_experts: bool
    hf_architecture: str
    model_type: str
    # Input quants whose conversion the proof checked (e.g. F32, F16, Q8_0); () = a layout without proof.
    proven_quants: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.gguf_architecture}{' with experts' if self.has_experts else ''}"

    def evidence(self) -> tuple[str, ...]:
        if not self.proven_quants:
            return (
                f"modelformats convert has a {self.name} layout ({self.hf_architecture}) but {PROOF_SESSION} does "
                "not prove it; vLLM's load of the converted directory not run",
            )
        return (
            f"{PROOF_SESSION}: {self.name} GGUFs ({', '.join(self.proven_quants)}) of tiny checkpoints convert to "
            f"{self.hf_architecture} with every tensor equal to the GGUF's dequantized values (F32: bit-exact) and "
            "transformers logits equal; vLLM's load of the converted directory not run",
        )


def _convert_layouts() -> ConversionLayouts:
    """`modelformats.convert`'s layout registry: the one `convert_gguf` uses (no numpy needed to read it)."""
    return default_layouts()


@cache
def _proven() -> Mapping[str, tuple[str, ...]]:
    """Proof layout name ("llama", "llama+experts") -> the input quants its passing conversions covered."""
    data: dict[str, Any] = json.loads(resources.files("modelformats.engines").joinpath(PROOF_FILE).read_text())
    found: dict[str, list[str]] = {}
    for case in data.get("cases", ()):
        if case.get("passed") and case.get("hf_architecture") and case.get("unpermute", True):
            quants = found.setdefault(str(case["layout"]), [])
            if case["quant"] not in quants:
                quants.append(str(case["quant"]))
    return {layout: tuple(quants) for layout, quants in found.items()}


def conversion_target(gguf_architecture: str, has_experts: bool) -> ConversionTarget | None:
    """What a GGUF of `general.architecture` (with or without experts) converts to; None: convert refuses it."""
    layout = _convert_layouts().find(gguf_architecture, has_experts)
    if layout is None:
        return None
    proof_layout = f"{gguf_architecture}{'+experts' if has_experts else ''}"
    return ConversionTarget(
        gguf_architecture=gguf_architecture,
        has_experts=has_experts,
        hf_architecture=layout.hf_architecture,
        model_type=layout.model_type,
        proven_quants=_proven().get(proof_layout, ()),
    )


def supported_conversions() -> list[str]:
    """The GGUF architectures `modelformats convert` supports, for messages ("llama", "llama with experts", ...)."""
    return _convert_layouts().supported()
