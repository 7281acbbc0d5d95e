"""vLLM's profiled activation peak, from the model's shape instead of one constant.

vLLM sizes the KV cache after a profiling run (v1/worker/gpu_model_runner.py `profile_run` in vllm
0.33.0: `_dummy_run(max_num_tokens)` then `_dummy_sampler_run` on one hidden state per request; V0's
`ModelRunner.profile_run` is the same shape: max_num_seqs dummy sequences sharing max_num_batched_tokens,
sampled with top-k and top-p). The peak it records is the larger of two moments:

- **forward**: the feed-forward of one layer over every batched token. Alive then, per token, in the
  activation dtype (2 bytes): the residual stream, the normed input and the attention output (3 x
  hidden), the fused gate/up projection's output (2 x ffn) and the activation's output (1 x ffn) - for a
  MoE layer, ffn is the routed experts' width times experts per token (fused_moe's intermediate caches).
  The ffn is split over tensor-parallel ranks, the residual stream is not.
- **sampler**: the logits of one token per dummy request (min(max_num_seqs, batched tokens) of them),
  upcast to float32 and pushed through top-k/top-p (sort values and int64 indices, softmax, cumulative
  sum, masks): `SAMPLER_BYTES_PER_LOGIT` bytes per (request, vocabulary entry). It runs on the rank that
  samples (TP rank 0), which is the fullest GPU the plan sizes for.

Checked against public logs in benchmarks/bench_memory_calibration.py (the forward term: Llama-3.1-8B's
peak grew 0.92 GiB from 20,000 to 29,000 batched tokens, 109,760 B per token; the formula gives 110,592).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelformats.traits import ModelTraits

__all__ = ["SAMPLER_BYTES_PER_LOGIT", "ActivationShape", "activation_peak"]

ACTIVATION_BYTES = 2  # bf16/fp16 activations, whatever the weights' quantization
# vLLM V0 0.7.x profiled "PyTorch activation peak memory" where the sampler is the peak: 0.94 GiB for
# DeepSeek-Coder-V2-Lite AWQ (256 requests x 102,400 logits: 38.5 B each; vllm-project/vllm#13109) and
# 1.42 GiB for Qwen2.5-7B bnb-4bit (256 x 152,064: 39.2 B; vllm#13882). Taken from the first; the
# second is the check (its forward is 0.52 GiB, below the sampler). V1 keeps the same cost: vLLM 0.10.2
# printed 'peak activation' 5.58 GiB for Qwen3-Next-80B at TP 2 on an H200 with the API server's defaults
# there (1,024 sequences, 8,192 batched tokens): 1,024 x 151,936 logits x 38.5 B = 5.579 GiB.
SAMPLER_BYTES_PER_LOGIT = 38.5
SAMPLER_SOURCE = (
    "vLLM's profiled activation peak where sampling dominates: 0.94 GiB for 256 requests x 102,400 logits "
    "(DeepSeek-Coder-V2-Lite AWQ, vllm-project/vllm#13109): 38.5 B per logit"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActivationShape:
    """What the activation peak depends on: widths per token, and the vocabulary the sampler sees."""

    hidden_size: int
    ffn_width: int  # per token, all ranks together (MoE: experts per token x expert width)
    vocab_size: int
    basis: str

    @classmethod
    def from_traits(cls, traits: ModelTraits) -> ActivationShape | None:
        """None when the config or header does not give the hidden size, the ffn width and the vocabulary."""
        t = traits
        if not (t.hidden_size and t.vocab_size):
            return None
        if t.is_moe and t.num_experts_per_tok and (t.expert_intermediate_size or t.intermediate_size):
            width = t.expert_intermediate_size or t.intermediate_size or 0
            return cls(
                hidden_size=t.hidden_size,
                ffn_width=t.num_experts_per_tok * width,
                vocab_size=t.vocab_size,
                basis=f"{t.num_experts_per_tok} experts per token x {width:,} expert width",
            )
        if t.is_moe or not t.intermediate_size:
            return None
        return cls(
            hidden_size=t.hidden_size,
            ffn_width=t.intermediate_size,
            vocab_size=t.vocab_size,
            basis=f"intermediate size {t.intermediate_size:,}",
        )


def activation_peak(shape: ActivationShape, *, tokens: int, sequences: int, tp: int = 1) -> tuple[int, str]:
    """The activation peak per GPU (bytes) and how it was computed."""
    per_token = (3 * shape.hidden_size + 3 * math.ceil(shape.ffn_width / tp)) * ACTIVATION_BYTES
    forward = tokens * per_token
    requests = min(sequences, tokens)
    sampler = math.ceil(requests * shape.vocab_size * SAMPLER_BYTES_PER_LOGIT)
    ffn = f"{shape.ffn_width:,}" + (f" / {tp} TP" if tp > 1 else "")
    formula = (
        f"max(forward {tokens:,} tokens x (3 x {shape.hidden_size:,} + 3 x {ffn}) x {ACTIVATION_BYTES} B, "
        f"sampler {requests:,} requests x {shape.vocab_size:,} logits x {SAMPLER_BYTES_PER_LOGIT} B)"
    )
    return max(forward, sampler), formula
