"""The 16-bit copies vLLM makes of a multi-head latent attention model's up-projections at load time.

vLLM runs MLA on the cached latent: it splits `kv_b_proj` into W_UK and W_UV (vllm 0.33
`layers/attention/mla_attention.py`: `split_kv_b_proj`, `MLAAttention.process_weights_after_loading`).
When `kv_b_proj` is quantized, `get_and_maybe_dequant_weights` materialises it in the activation dtype
and that copy stays beside the quantized layer, which prefill still uses: kv_lora_rank x heads x
(qk_nope_head_dim + v_head_dim) x 2 B per layer (heads split over tensor-parallel ranks, so the total
does not change with TP). 16-bit weights are viewed, not copied.

The V0 MLA of early-2025 vLLM (0.7.x; `VLLM_MLA_PERFORM_MATRIX_ABSORPTION=1`, its default then) also absorbed W_UK into
q_proj and W_UV into o_proj, "absorbed weights for decode and another copy of raw weights for prefill":
W_Q_UK (q input x heads x rank), W_UV_O (heads x rank x hidden) and W_QR (q input x heads x rope dims),
all in the activation dtype. `mla_absorbed_bytes` sizes them for logs of those versions.
"""

from __future__ import annotations

from modelformats.traits import ModelTraits

__all__ = ["mla_absorbed_bytes", "mla_dequant_copy_bytes"]

_ACT_BYTES = 2  # bf16/fp16 activations


def mla_dequant_copy_bytes(traits: ModelTraits) -> tuple[int, str] | None:
    """(bytes, how) of the 16-bit W_UK/W_UV copy of a quantized kv_b_proj, over all layers; None when unknown."""
    t = traits
    if not (t.kv_lora_rank and t.num_layers and t.num_attention_heads and t.qk_nope_head_dim and t.v_head_dim):
        return None
    n = t.num_layers * t.kv_lora_rank * t.num_attention_heads * (t.qk_nope_head_dim + t.v_head_dim)
    how = (
        f"vLLM's MLA keeps a 16-bit copy of the quantized kv_b_proj (W_UK, W_UV): {t.num_layers} layers x "
        f"kv_lora_rank {t.kv_lora_rank} x {t.num_attention_heads} heads x ({t.qk_nope_head_dim} + "
        f"{t.v_head_dim}) x {_ACT_BYTES} B"
    )
    return n * _ACT_BYTES, how


def mla_absorbed_bytes(traits: ModelTraits) -> tuple[int, str] | None:
    """(bytes, how) of V0's absorbed W_Q_UK, W_UV_O and W_QR (early-2025 vLLM 0.7.x); None when unknown."""
    t = traits
    if not (t.kv_lora_rank and t.num_layers and t.num_attention_heads and t.hidden_size and t.qk_rope_head_dim):
        return None
    q_in = t.q_lora_rank or t.hidden_size
    heads, rank = t.num_attention_heads, t.kv_lora_rank
    per_layer = q_in * heads * rank + heads * rank * t.hidden_size + q_in * heads * t.qk_rope_head_dim
    how = (
        f"V0 MLA matrix absorption: {t.num_layers} layers x (W_Q_UK {q_in} x {heads} x {rank} + W_UV_O "
        f"{heads} x {rank} x {t.hidden_size} + W_QR {q_in} x {heads} x {t.qk_rope_head_dim}) x {_ACT_BYTES} B"
    )
    return t.num_layers * per_layer * _ACT_BYTES, how
