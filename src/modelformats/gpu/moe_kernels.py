"""How vLLM lays MXFP4 experts out in GPU memory: the MoE kernel it picks pads the expert matrices.

A checkpoint stores each expert as it was trained (gpt-oss: hidden 2880, expert width 2880). vLLM
allocates the experts at the shape its MXFP4 MoE kernel needs, chosen by compute capability
(vllm 0.33.0 `fused_moe/oracle/mxfp4.py`: `_get_priority_backends_for_gpt_oss`, each backend's
`_supports_current_device`, `mxfp4_round_up_hidden_size_and_intermediate_size`):

| capability      | backend                  | hidden rounded up to | expert width per TP rank |
|-----------------|--------------------------|----------------------|--------------------------|
| < 9.0, >= 12.0  | Marlin                   | 256                  | 128                      |
| 9.x, 11.x       | OAI Triton kernels       | (as is)              | 64                       |
| 10.x            | FlashInfer TRT-LLM       | 256                  | 128                      |

For gpt-oss on Marlin that is 3072 x 2944 instead of 2880 x 2880: +9 % on the experts, +5.1 GiB for
gpt-oss-120b, which is what vLLM reports loading. The Triton path of vLLM <= 0.23 also kept the
checkpoint's block scales beside their swizzled copy (one byte per 32 weights, 3.3 GiB for
gpt-oss-120b); 0.33 frees them ("drop the now-dead weight/scale Parameters"). Expert biases
(2 x width + hidden per expert, < 0.1 % of the weights) are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelformats.gpu.memory import WeightsSize, format_bytes
from modelformats.traits import ModelTraits

__all__ = ["MOE_KERNELS", "MXFP4_BACKENDS", "ExpertLayout", "expert_layout_bytes", "mxfp4_expert_layout"]

# MXFP4 stores one E8M0 scale byte per 32 weights.
_MXFP4_BLOCK = 32


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpertLayout:
    """The shape an MoE kernel allocates experts at: multiples the dimensions are rounded up to."""

    backend: str
    hidden_multiple: int
    # The expert width each tensor-parallel rank holds (width / TP) is rounded up to this.
    intermediate_multiple: int
    # The checkpoint's scales stay allocated beside the kernel's swizzled copy (Triton, vLLM <= 0.23).
    raw_scales_kept: bool = False


MXFP4_BACKENDS = {
    "marlin": ExpertLayout(backend="marlin", hidden_multiple=256, intermediate_multiple=128),
    "triton": ExpertLayout(backend="triton", hidden_multiple=1, intermediate_multiple=64),
    "flashinfer-trtllm": ExpertLayout(backend="flashinfer-trtllm", hidden_multiple=256, intermediate_multiple=128),
}


def mxfp4_expert_layout(capability: tuple[int, int]) -> ExpertLayout:
    """The backend vLLM 0.33 picks for MXFP4 experts on a GPU of `capability` (the table above)."""
    major = capability[0]
    if major == 10:
        return MXFP4_BACKENDS["flashinfer-trtllm"]
    if major in (9, 11):
        return MXFP4_BACKENDS["triton"]
    # Ampere/Ada, and consumer Blackwell (12.x), where vLLM orders Marlin before the Triton kernels.
    return MXFP4_BACKENDS["marlin"]


# WeightBytes.moe_kernel -> the layout its kernel family uses on a GPU of a compute capability.
MOE_KERNELS = {"mxfp4": mxfp4_expert_layout}


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def expert_layout_bytes(
    weights: WeightsSize,
    traits: ModelTraits,
    bytes_per_weight: float,
    layout: ExpertLayout,
    tensor_parallel_size: int,
) -> WeightsSize:
    """`weights` plus what the kernel's padding (and kept scales) add, over all tensor-parallel ranks."""
    t = traits
    if not (t.num_layers and t.num_experts and t.hidden_size and t.expert_intermediate_size):
        return weights
    tp = tensor_parallel_size
    hidden, width = t.hidden_size, t.expert_intermediate_size
    per_rank = math.ceil(width / tp)
    hidden_pad = _round_up(hidden, layout.hidden_multiple)
    width_pad = _round_up(per_rank, layout.intermediate_multiple)
    matrices = t.num_layers * t.num_experts * 3  # gate, up and down per expert
    stored = matrices * hidden * width
    allocated = matrices * hidden_pad * width_pad * tp
    extra = (allocated - stored) * bytes_per_weight
    scales = stored / _MXFP4_BLOCK if layout.raw_scales_kept else 0.0
    if extra <= 0 and not scales:
        return weights
    what = (
        f"vLLM's {layout.backend} MoE kernel allocates experts at hidden {hidden_pad:,} x width "
        f"{width_pad:,}{f' per TP rank (x {tp})' if tp > 1 else ''} instead of {hidden:,} x {width:,}: "
        f"+{format_bytes(extra)}"
    )
    if scales:
        what += f"; the checkpoint's block scales stay beside the swizzled copy: +{format_bytes(scales)}"
    return WeightsSize(
        bytes=weights.bytes + math.ceil(extra + scales),
        basis=f"{weights.basis}; {what}",
        assumed=weights.assumed,
        exact_with=weights.exact_with,
    )
