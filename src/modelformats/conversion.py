"""The planner's view of `modelformats convert`: which GGUFs it converts, what proves it, how long it takes.

The route "GGUF converted -> safetensors on vLLM" (issue 18) is planned from three facts, each kept in
one place and only read here:

- what converts: `modelformats.convert`'s own layout registry (`default_layouts()`), the very one
  `convert_gguf` uses; its module imports only the standard library and `modelformats.gguf.hf_names`
  (the package loads its numpy-using parts lazily), so planning needs no numpy;
- what is proven: `nox -s gguf_convert_proof`'s committed results
  (src/modelformats/engines/data/gguf_convert_proof.json): per layout, the quants whose converted
  weights and transformers logits matched; and `nox -s vllm_cpu_generation`'s (data/vllm_cpu_generation.json,
  its `converted` results): per layout, the GGUF types whose converted directory plain vLLM (its CPU build,
  no GGUF plugin) loaded and generated transformers' greedy tokens from, its negative control failing;
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
from modelformats.engines.base import EvidenceLevel
from modelformats.gguf.quant import parse_quant

__all__ = [
    "CONVERTED_BYTES_PER_PARAM",
    "CONVERT_DTYPE",
    "MEASURED_RATE",
    "ConversionTarget",
    "ConvertRate",
    "conversion_target",
    "generation_evidence",
    "supported_conversions",
]

# The dtype the planned conversion writes (convert_gguf's default) and its bytes per parameter.
CONVERT_DTYPE = "bfloat16"
CONVERTED_BYTES_PER_PARAM = 2
PROOF_FILE = "data/gguf_convert_proof.json"
PROOF_SESSION = "nox -s gguf_convert_proof"
GENERATION_FILE = "data/vllm_cpu_generation.json"
GENERATION_SESSION = "nox -s vllm_cpu_generation"
_CONTROL_PREFIX = "negative control: converted with the "


@dataclass(frozen=True, kw_only=True, slots=True)
class ConvertRate:
    """GGUF bytes converted per second, and where the number comes from."""

    bytes_per_second: float
    basis: str

    def seconds(self, source_bytes: int) -> int:
        return math.ceil(source_bytes / self.bytes_per_second)

    def describe(self, source_bytes: int | None) -> str:
        """ "~N min at 176 MB/s measured by ..." for `source_bytes` of GGUF."""
        rate = f"{self.bytes_per_second / 1e6:.0f} MB/s {self.basis}"
        if source_bytes is None:
            return f"time unknown (the GGUF's size is not known); {rate}"
        return f"~{max(1, math.ceil(self.seconds(source_bytes) / 60))} min at {rate}"


# convert_gguf -> bfloat16, 20.0 s for a 3.51 GB target-shaped Q8_0 GGUF (4 blocks) read from disk and its
# 6.61 GB output flushed to disk, on the shared 2-core development machine: the table in docs/convert.md.
MEASURED_RATE = ConvertRate(
    bytes_per_second=176e6,
    basis="measured by benchmarks/bench_convert.py on a 2-core machine (Q8_0 -> bfloat16, disk to disk)",
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
    # The GGML tensor types those inputs held (F32, F16, Q8_0, Q4_K, Q6_K, ...).
    proven_tensor_types: frozenset[str] = frozenset()
    # vLLM's CPU generation from the converted directories of the layout (`nox -s vllm_cpu_generation`),
    # one line per GGUF type; () = not run, or not passed with its negative control failing as predicted.
    generated: tuple[str, ...] = ()
    # The GGUF types those conversions started from (F32, F16).
    generated_types: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.gguf_architecture}{' with experts' if self.has_experts else ''}"

    @property
    def level(self) -> EvidenceLevel:
        """`converted-cpu-generation` when both proofs cover the layout, else `converted`."""
        if self.proven_quants and self.generated:
            return EvidenceLevel.CONVERTED_CPU_GENERATION
        return EvidenceLevel.CONVERTED

    def evidence(self) -> tuple[str, ...]:
        if not self.proven_quants:
            return (
                f"modelformats convert has a {self.name} layout ({self.hf_architecture}) but {PROOF_SESSION} does "
                "not prove it; vLLM's load of the converted directory not run",
            )
        converted = (
            f"{PROOF_SESSION}: {self.name} GGUFs ({', '.join(self.proven_quants)}) of tiny checkpoints convert to "
            f"{self.hf_architecture} with every tensor equal to the GGUF's dequantized values (F32: bit-exact) and "
            "transformers logits equal"
        )
        if not self.generated:
            return (f"{converted}; vLLM's load of the converted directory not run",)
        return (converted, *self.generated)

    def warnings(self, quant: str | None) -> tuple[str, ...]:
        """What the proofs do not cover for a GGUF of `quant` (the planned conversion writes bfloat16)."""
        if not self.proven_quants or quant is None or quant in self.proven_quants:
            return ()
        tag = parse_quant(quant)
        if tag is not None and tag.tensor_type in self.proven_tensor_types:
            return ()  # e.g. Q6_K: its tensor type was in a proven file (Q4_K_M's)
        return (
            f"the conversion proof covered {', '.join(self.proven_quants)} GGUFs (tensor types "
            f"{', '.join(sorted(self.proven_tensor_types))}); {quant} is dequantized by the gguf package's "
            "reference dequantizer, not proven here",
        )


def _convert_layouts() -> ConversionLayouts:
    """`modelformats.convert`'s layout registry: the one `convert_gguf` uses (no numpy needed to read it)."""
    return default_layouts()


@cache
def _proven_cases() -> tuple[Mapping[str, Any], ...]:
    """The conversion proof's passing cases, negative controls and refusals left out."""
    data: dict[str, Any] = json.loads(resources.files("modelformats.engines").joinpath(PROOF_FILE).read_text())
    return tuple(
        case
        for case in data.get("cases", ())
        if case.get("passed") and case.get("hf_architecture") and not case.get("negative_control")
    )


@cache
def _proven() -> Mapping[str, tuple[str, ...]]:
    """Proof layout name ("llama", "llama+experts") -> the input quants its passing conversions covered."""
    found: dict[str, list[str]] = {}
    for case in _proven_cases():
        quants = found.setdefault(str(case["layout"]), [])
        if case["quant"] not in quants:
            quants.append(str(case["quant"]))
    return {layout: tuple(quants) for layout, quants in found.items()}


@cache
def _proven_tensor_types() -> Mapping[str, frozenset[str]]:
    """Proof layout name -> the GGML tensor types its passing conversions read (a Q4_K_M file holds Q4_K and
    Q6_K tensors, so a Q6_K GGUF's type is proven by it)."""
    found: dict[str, set[str]] = {}
    for case in _proven_cases():
        found.setdefault(str(case["layout"]), set()).update(case.get("tensor_types", {}))
    return {layout: frozenset(types) for layout, types in found.items()}


@cache
def _generated() -> Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    path = resources.files("modelformats.engines").joinpath(GENERATION_FILE)
    return generation_evidence(json.loads(path.read_text())) if path.is_file() else {}


def generation_evidence(data: Mapping[str, Any]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Proof layout name -> (evidence lines, GGUF types) of plain vLLM generating from its converted tiny
    checkpoints, read from vllm_cpu_generation.json's `converted` results; only layouts whose every
    converted case passed with its negative control failing as predicted."""
    build = f"vllm-cpu {data.get('versions', {}).get('vllm-cpu')}"
    by_layout: dict[str, list[dict[str, Any]]] = {}
    for case in data.get("converted", ()):
        by_layout.setdefault(str(case["layout"]), []).append(case)
    found: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for layout, cases in by_layout.items():
        if not all(c.get("passed") and c.get("negative_control_failed_as_predicted") for c in cases):
            continue
        lines = []
        for c in cases:
            run = c["vllm on the converted checkpoint"]
            exact = run["vs transformers"]
            # "negative control: converted with the Q/K un-permute off" (llama) or "... forced on" (qwen).
            control = next((k.removeprefix(_CONTROL_PREFIX) for k in c if k.startswith(_CONTROL_PREFIX)), None)
            lines.append(
                f"{GENERATION_SESSION} ({layout}, {c['gguf_type']} GGUF): vLLM's engine ({build} on CPU, no GGUF "
                f"plugin) loaded the directory modelformats convert wrote ({c['convert']['dtype']}) as "
                f"{run['vllm_architecture']} and generated greedy tokens identical to transformers' on the original "
                f"checkpoint holding the GGUF's values, {exact['identical_tokens']} "
                f"(max |top-1 logprob diff| {exact['max_top1_logprob_diff']})"
                + (f"; converted with the {control}, they differ as predicted" if control else "")
            )
        found[layout] = (tuple(lines), tuple(str(c["gguf_type"]) for c in cases))
    return found


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
        proven_tensor_types=_proven_tensor_types().get(proof_layout, frozenset()),
        generated=_generated().get(proof_layout, ((), ()))[0],
        generated_types=_generated().get(proof_layout, ((), ()))[1],
    )


def supported_conversions() -> list[str]:
    """The GGUF architectures `modelformats convert` supports, for messages ("llama", "llama with experts", ...)."""
    return _convert_layouts().supported()
