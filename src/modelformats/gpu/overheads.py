"""Per-GPU runtime costs that metadata cannot give (CUDA context, activations, CUDA graphs, non-torch
allocations, llama.cpp's compute buffers), each with the measurements behind its number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ACTIVATION_REFERENCE_TOKENS", "GIB", "OVERHEAD_CONSTANTS", "OverheadConstant"]

GIB = 1024**3


@dataclass(frozen=True, kw_only=True, slots=True)
class OverheadConstant:
    """A per-GPU runtime cost we cannot compute from metadata, with why the number is what it is."""

    name: str
    bytes: int
    source: str


_CONSTANTS = (
    OverheadConstant(
        name="cuda_context",
        bytes=1 * GIB,
        source=(
            "The CUDA context created by the first CUDA call: 723 MiB reported on "
            "discuss.pytorch.org/t/73021, "
            "'~700+ MB depending on the CUDA version' on discuss.pytorch.org/t/81330; rounded up to 1 GiB. "
            "Outside vLLM's utilization budget (the budget is measured after it exists)."
        ),
    ),
    OverheadConstant(
        name="non_torch",
        bytes=GIB // 2,
        source=(
            "vLLM's profile line 'non_torch_memory takes 0.16GiB' on an H100 "
            "(kubernetes-sigs/gateway-api-inference-extension#550) and 0.33 GiB on an RTX 5090 "
            "(vllm-project/vllm#14452); rounded up to 0.5 GiB."
        ),
    ),
    OverheadConstant(
        name="non_torch_multi_gpu",
        bytes=GIB // 2,
        source="Our margin for NCCL/all-reduce buffers per GPU when several GPUs are used (not measured).",
    ),
    OverheadConstant(
        name="activations",
        bytes=5 * GIB // 2,
        source=(
            "vLLM's profiled 'PyTorch activation peak memory': 2.38 GiB for a 12.55 GiB model on an H100 "
            "(#550), 1.01-1.77 GiB for a 10.8 GiB model on an RTX 5090 (vllm#14452), 0.23 GiB for a 1.12 "
            "GiB model (generative-computing/mellea#416); taken as 2.5 GiB per 8,192 batched tokens "
            "(vLLM's API-server default on H100, engine/arg_utils.py:2979) and scaled up linearly above "
            "that."
        ),
    ),
    OverheadConstant(
        name="cuda_graphs",
        bytes=1 * GIB,
        source=(
            "vLLM logs: 'Graph capturing finished ..., took 0.13 GiB' (mellea#416), 0.21 GiB for "
            "Llama-3.2-1B (vllm#11349), 'Estimated CUDA graph memory: 0.36 GiB' (gpustack/runner#251); "
            "rounded up to 1 GiB. Counted inside the budget since vLLM 0.21 "
            "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1, envs.py:329). Zero with --enforce-eager."
        ),
    ),
    OverheadConstant(
        name="llamacpp_compute",
        bytes=3 * GIB // 2,
        source=(
            "llama.cpp reserves its compute graph for one 512-token ubatch (common/common.h:454 "
            "n_ubatch=512, llama-context.cpp graph_reserve); the logits alone are 512 x n_vocab x 4 B = "
            "0.26 GB for a 128k vocabulary, plus per-layer temporaries; 1.5 GiB is our margin above that "
            "(not measured here)."
        ),
    ),
)
OVERHEAD_CONSTANTS: Mapping[str, OverheadConstant] = MappingProxyType({c.name: c for c in _CONSTANTS})
# Activations are sized for this many tokens in one forward pass (see "activations" above).
ACTIVATION_REFERENCE_TOKENS = 8192
