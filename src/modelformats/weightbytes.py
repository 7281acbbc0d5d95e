"""Bytes per weight of a checkpoint, as its format stores them: the fact a format strategy owns so the
GPU sizing never falls back to a 2-byte guess for a quantized checkpoint without file sizes.

Imports only `traits.positive_int` (how every metadata count is read). Each format strategy builds its
`WeightBytes` from its own metadata (config.json `quantization_config`, the GGUF quant tag);
`gpu/sizing.py` only multiplies.

Quantized linear layers store `bits / 8` bytes per weight plus their scales (and zero points) per group;
the tensors a method leaves in 16-bit (the token embeddings and, untied, the output head) are counted at
2 bytes when the model's vocabulary and hidden size are known. Other modules a config keeps in 16-bit
(`modules_to_not_convert`, `llm_int8_skip_modules`, compressed-tensors `ignore`, GPTQ `dynamic`) have no
shape here: the figure then counts them at the quantized rate and is labelled ASSUMED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from modelformats.traits import positive_int

__all__ = [
    "WeightBytes",
    "awq_bytes",
    "bitsandbytes_bytes",
    "compressed_tensors_bytes",
    "fp8_bytes",
    "gptq_bytes",
    "grouped_int_bytes",
    "mxfp4_bytes",
    "unclaimed_method_bytes",
]

# The scale of a group is stored as fp16/bf16 (AutoAWQ, AutoGPTQ, GPTQModel, llm-compressor W4A16).
_SCALE_BYTES = 2
# MXFP4 (OCP Microscaling): 32 FP4 values share one E8M0 scale byte -> 4.25 bits per weight.
_MXFP4_BYTES = (32 * 4 / 8 + 1) / 32
# NVFP4: 16 FP4 values share one FP8 scale -> 4.5 bits per weight (plus one fp32 per tensor, negligible).
_NVFP4_BYTES = (16 * 4 / 8 + 1) / 16
# bitsandbytes NF4/FP4: blocks of 64 weights share one absmax; with double quantization (the default in
# transformers' BitsAndBytesConfig for pre-quantized uploads) that absmax is 8-bit, else fp32.
_BNB4_BLOCK = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightBytes:
    """Bytes per quantized weight, which tensors stay 16-bit, and where the numbers came from."""

    bytes_per_weight: float
    basis: str
    # The token embeddings and (untied) output head stay in 16-bit: counted at 2 bytes when the shape is known.
    embeddings_16bit: bool = False
    # Part of the figure is an assumption (a mixed GGUF quant sized at its dominant tensor type, ...).
    assumed: bool = False
    # Only the routed experts' MLP weights are quantized (gpt-oss MXFP4); everything else stays 16-bit.
    experts_only: bool = False
    # Module patterns the config keeps out of the quantized rate (modules_to_not_convert, ignore, ...),
    # beyond the embeddings; the GPU sizing counts them at 2 B where the model's shape names them.
    kept_modules: tuple[str, ...] = ()
    # The same rate before those patterns made the figure an assumption (None: no such patterns).
    without_kept: WeightBytes | None = None
    # The vLLM MoE kernel family that allocates the experts ("mxfp4"): its padding depends on the GPU
    # (modelformats.gpu.moe_kernels). None: experts are allocated as stored.
    moe_kernel: str | None = None


def grouped_int_bytes(bits: int, group_size: int, *, zero_points: bool) -> float:
    """Integer weights in groups: bits/8 per weight + one 16-bit scale (+ a packed zero point) per group."""
    per_group = _SCALE_BYTES + (bits / 8 if zero_points else 0)
    return bits / 8 + per_group / group_size


# quantization_config keys listing modules a method leaves unquantized (transformers' HfQuantizer,
# bitsandbytes, llm-compressor); GPTQModel's `dynamic` marks skipped modules with a "-:" prefix and
# per-module bit overrides with "+:".
_KEPT_16BIT_KEYS = ("modules_to_not_convert", "llm_int8_skip_modules", "ignore")
# Last name segments of the tensors `embeddings_16bit` already counts at 2 bytes.
_EMBEDDING_NAMES = frozenset({"lm_head", "embed_tokens", "wte", "embed_in", "embed_out", "word_embeddings"})


def _other_kept_modules(qc: Mapping[str, Any]) -> tuple[str, ...]:
    """Modules the config keeps in 16-bit (or at other bits) beyond the embeddings and output head."""
    names: list[str] = []
    for key in _KEPT_16BIT_KEYS:
        value = qc.get(key)
        if isinstance(value, list):
            names += [n for n in value if isinstance(n, str)]
    dynamic = qc.get("dynamic")
    if isinstance(dynamic, Mapping):
        names += [k for k in dynamic if isinstance(k, str) and k[:2] in ("-:", "+:")]
    return tuple(n for n in names if _last_segment(n) not in _EMBEDDING_NAMES)


def _last_segment(name: str) -> str:
    plain = name.removeprefix("re:").removeprefix("-:").removeprefix("+:").rstrip("$")
    return plain.replace("\\", "").split(".")[-1].strip("*^$")


def _label_kept_modules(wb: WeightBytes, qc: Mapping[str, Any]) -> WeightBytes:
    """ASSUMED when the config keeps modules out of the quantized rate whose shape is not known here."""
    kept = _other_kept_modules(qc)
    if not kept:
        return wb
    shown = ", ".join(kept[:3]) + (f" and {len(kept) - 3} more" if len(kept) > 3 else "")
    return replace(
        wb,
        basis=(
            f"{wb.basis}; ASSUMED: {len(kept)} module pattern(s) kept out of the quantized rate ({shown}) are "
            "counted at it, their shapes are not known here"
        ),
        assumed=True,
        kept_modules=kept,
        without_kept=wb,
    )


def _grouped(qc: Mapping[str, Any], method: str, *, zero_points: bool) -> WeightBytes | None:
    wb = _grouped_rate(qc, method, zero_points=zero_points)
    return _label_kept_modules(wb, qc) if wb is not None else None


def _grouped_rate(qc: Mapping[str, Any], method: str, *, zero_points: bool) -> WeightBytes | None:
    bits = positive_int(qc.get("bits", qc.get("w_bit")))
    group = qc.get("group_size", qc.get("q_group_size"))
    if bits is None:
        return None
    sym = qc.get("sym")
    zeros = zero_points and sym is not True
    if isinstance(group, int) and group == -1:
        # One group per output channel: the scales are negligible (one per row of thousands of weights).
        return WeightBytes(
            bytes_per_weight=bits / 8,
            basis=f"{method} {bits}-bit, per-channel scales (config.json quantization_config)",
            embeddings_16bit=True,
        )
    g = positive_int(group) or 128
    bpw = grouped_int_bytes(bits, g, zero_points=zeros)
    scales = "16-bit scale" + (" and zero point" if zeros else "")
    return WeightBytes(
        bytes_per_weight=bpw,
        basis=(
            f"{method} {bits}-bit, group {g}: {bits}/8 B + one {scales} per {g} weights = {bpw:.4f} B per "
            "weight (config.json quantization_config)"
            + ("" if positive_int(group) else "; group size not recorded, 128 assumed")
        ),
        embeddings_16bit=True,
        assumed=positive_int(group) is None,
    )


def compressed_tensors_bytes(qc: Mapping[str, Any]) -> WeightBytes | None:
    """llm-compressor `config_groups`: the first group's weight scheme (FP8, NVFP4, int W4A16/W8A8)."""
    groups = qc.get("config_groups")
    first = next(iter(groups.values()), None) if isinstance(groups, Mapping) else None
    weights = first.get("weights") if isinstance(first, Mapping) else None
    if not isinstance(weights, Mapping) or (bits := positive_int(weights.get("num_bits"))) is None:
        return None
    kind, strategy = weights.get("type"), weights.get("strategy")
    if kind == "float":
        bpw = 1.0 if bits == 8 else _NVFP4_BYTES if bits == 4 else bits / 8
        what = {8: "FP8", 4: "NVFP4 (16 FP4 weights + one FP8 scale = 4.5 bits)"}.get(bits, f"float{bits}")
        basis = f"compressed-tensors {what} weights ({strategy} scales) (config.json config_groups)"
    elif strategy == "group":
        g = positive_int(weights.get("group_size")) or 128
        bpw = grouped_int_bytes(bits, g, zero_points=weights.get("symmetric") is False)
        basis = f"compressed-tensors int{bits}, group {g}: {bpw:.4f} B per weight (config.json config_groups)"
    else:
        bpw = bits / 8
        basis = f"compressed-tensors int{bits} ({strategy} scales, negligible) (config.json config_groups)"
    return _label_kept_modules(WeightBytes(bytes_per_weight=bpw, basis=basis, embeddings_16bit=True), qc)


def bitsandbytes_bytes(qc: Mapping[str, Any]) -> WeightBytes:
    """bitsandbytes pre-quantized: LLM.int8 or NF4/FP4 with (double-quantized) absmax per 64 weights."""
    if qc.get("load_in_8bit") is True:
        return _label_kept_modules(
            WeightBytes(
                bytes_per_weight=1.0,
                basis="bitsandbytes LLM.int8: 1 B per weight (per-row fp32 scales negligible)",
                embeddings_16bit=True,
            ),
            qc,
        )
    double = qc.get("bnb_4bit_use_double_quant") is True
    absmax = 1 if double else 4
    bpw = 0.5 + absmax / _BNB4_BLOCK
    four_bit = WeightBytes(
        bytes_per_weight=bpw,
        basis=(
            f"bitsandbytes 4-bit: 0.5 B per weight + one {'8-bit' if double else 'fp32'} absmax per "
            f"{_BNB4_BLOCK} weights = {bpw:.4f} B"
        ),
        embeddings_16bit=True,
    )
    return _label_kept_modules(four_bit, qc)


def awq_bytes(qc: Mapping[str, Any]) -> WeightBytes | None:
    """AutoAWQ: `bits`/`w_bit`, `group_size`/`q_group_size`, zero points unless `zero_point` is false."""
    return _grouped(qc, "AWQ", zero_points=qc.get("zero_point", True) is not False)


def gptq_bytes(qc: Mapping[str, Any]) -> WeightBytes | None:
    """GPTQ: `bits`, `group_size` (-1 = per channel), packed zero points unless `sym` is true."""
    return _grouped(qc, "GPTQ", zero_points=True)


def fp8_bytes(qc: Mapping[str, Any] | None, *, evidence: str = "the format") -> WeightBytes:
    """FP8 ('fp8', 'fbgemm_fp8'): one byte per weight; per-tensor, per-channel or block scales are negligible.

    Without config.json (`qc` None) the format still fixes 1 B per weight; which layers stay 16-bit is
    then unknown, so the figure is labelled assumed."""
    if qc is None:
        return WeightBytes(
            bytes_per_weight=1.0,
            basis=(
                f"FP8 weights: 1 B per weight (fixed by {evidence}); ASSUMED: no config.json, so which "
                "layers stay 16-bit is unknown"
            ),
            embeddings_16bit=True,
            assumed=True,
        )
    block = qc.get("weight_block_size")
    scales = f"block {block} scales" if block else "per-tensor/per-channel scales"
    wb = WeightBytes(
        bytes_per_weight=1.0,
        basis=f"FP8 weights: 1 B per weight ({scales}, negligible) (config.json quantization_config)",
        embeddings_16bit=True,
    )
    return _label_kept_modules(wb, qc)


def mxfp4_bytes() -> WeightBytes:
    """MXFP4 (gpt-oss): only the routed experts are MXFP4; attention, router and embeddings stay bf16
    (config.json modules_to_not_convert)."""
    return WeightBytes(
        bytes_per_weight=_MXFP4_BYTES,
        basis=(
            "MXFP4 experts: 32 FP4 weights + one E8M0 scale = 4.25 bits per weight; attention, router and "
            "embeddings stay bf16 (modules_to_not_convert)"
        ),
        embeddings_16bit=True,
        experts_only=True,
        moe_kernel="mxfp4",
    )


# quant_method values that no format strategy of their own claims (plain safetensors carrying them), and
# how their bytes per weight are read.
_UNCLAIMED_METHODS: Mapping[str, Callable[[Mapping[str, Any]], WeightBytes | None]] = {
    "mxfp4": lambda qc: mxfp4_bytes(),
}


def unclaimed_method_bytes(qc: Mapping[str, Any]) -> WeightBytes | None:
    """Bytes per weight for a quant_method without a format strategy of its own (gpt-oss MXFP4); None else."""
    read = _UNCLAIMED_METHODS.get(str(qc.get("quant_method", "")).lower())
    return read(qc) if read is not None else None
