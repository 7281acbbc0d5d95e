"""The GGUF layouts the probe writes: one per architecture family modelformats plans for.

Each layout is data: the GGUF architecture, the metadata keys llama.cpp's converter writes for it,
the tensors it writes (name template + shape), and the HF `config.json` of the same model (what
`--hf-config-path` would point to). Shapes are numpy (row-major) order, as the HF tensor and as
`gguf.GGUFReader` returns it; the GGUF header stores them reversed (ggml order).

Dimensions are tiny (hidden 64, 2 blocks) so the whole probe runs on CPU in seconds, but every
row length is a multiple of 32 so Q8_0 (32-weight blocks) can quantize every matrix.
Needs only numpy and gguf (both present in every vLLM environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

HIDDEN = 64
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS  # 16
FFN = 128
VOCAB = 256
BLOCKS = 2
EXPERTS = 4
EXPERTS_USED = 2
EXPERT_FFN = 64
CONTEXT = 2048
RMS_EPS = 1e-5
ROPE_THETA = 10000.0
# DeepSeek-V2-Lite style MLA: no q LoRA, kv LoRA rank 32, 16 nope + 16 rope dims per head.
KV_LORA = 32
QK_NOPE = 16
QK_ROPE = 16
V_HEAD = 16

Shape = tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """One tiny model: its GGUF form (as llama.cpp writes it) and its HF config.json."""

    name: str
    description: str
    arch: str  # general.architecture
    metadata: Mapping[str, Any]  # keys after "<arch>." plus "general.*" / "tokenizer.*" given in full
    global_tensors: Mapping[str, Shape]
    block_tensors: Callable[[int], Mapping[str, Shape]]  # block index -> {name without "blk.N.": shape}
    hf_config: Mapping[str, Any]
    tokenizer_model: str = "llama"  # tokenizer.ggml.model
    # Other config.json files --hf-config-path may point at for the same GGUF, by model_type: a base
    # repo whose model_type is not the GGUF's (Mistral stored as llama), or a wrong, dense config.
    alt_hf_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _attention(*, bias: bool = False, qk_norm: bool = False) -> dict[str, Shape]:
    out: dict[str, Shape] = {
        "attn_norm.weight": (HIDDEN,),
        "attn_q.weight": (HEADS * HEAD_DIM, HIDDEN),
        "attn_k.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
        "attn_v.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
        "attn_output.weight": (HIDDEN, HEADS * HEAD_DIM),
    }
    if bias:
        out |= {
            "attn_q.bias": (HEADS * HEAD_DIM,),
            "attn_k.bias": (KV_HEADS * HEAD_DIM,),
            "attn_v.bias": (KV_HEADS * HEAD_DIM,),
        }
    if qk_norm:
        out |= {"attn_q_norm.weight": (HEAD_DIM,), "attn_k_norm.weight": (HEAD_DIM,)}
    return out


def _dense_ffn(width: int = FFN) -> dict[str, Shape]:
    return {
        "ffn_norm.weight": (HIDDEN,),
        "ffn_gate.weight": (width, HIDDEN),
        "ffn_up.weight": (width, HIDDEN),
        "ffn_down.weight": (HIDDEN, width),
    }


def _experts(width: int = EXPERT_FFN) -> dict[str, Shape]:
    # llama.cpp merges the experts of a block into one 3-D tensor per projection.
    return {
        "ffn_norm.weight": (HIDDEN,),
        "ffn_gate_inp.weight": (EXPERTS, HIDDEN),
        "ffn_gate_exps.weight": (EXPERTS, width, HIDDEN),
        "ffn_up_exps.weight": (EXPERTS, width, HIDDEN),
        "ffn_down_exps.weight": (EXPERTS, HIDDEN, width),
    }


def _shared_expert(width: int) -> dict[str, Shape]:
    return {
        "ffn_gate_shexp.weight": (width, HIDDEN),
        "ffn_up_shexp.weight": (width, HIDDEN),
        "ffn_down_shexp.weight": (HIDDEN, width),
    }


_LLAMA_META: Mapping[str, Any] = {
    "context_length": CONTEXT,
    "embedding_length": HIDDEN,
    "block_count": BLOCKS,
    "feed_forward_length": FFN,
    "attention.head_count": HEADS,
    "attention.head_count_kv": KV_HEADS,
    "attention.layer_norm_rms_epsilon": RMS_EPS,
    "rope.dimension_count": HEAD_DIM,
    "rope.freq_base": ROPE_THETA,
    "vocab_size": VOCAB,
}
_DENSE_LLAMA_HF: Mapping[str, Any] = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "intermediate_size": FFN,
    "hidden_act": "silu",
}
_LLAMA_GLOBAL: Mapping[str, Shape] = {
    "token_embd.weight": (VOCAB, HIDDEN),
    "output_norm.weight": (HIDDEN,),
    "output.weight": (VOCAB, HIDDEN),
}
_HF_COMMON: Mapping[str, Any] = {
    "hidden_size": HIDDEN,
    "num_hidden_layers": BLOCKS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "max_position_embeddings": CONTEXT,
    "rms_norm_eps": RMS_EPS,
    "rope_theta": ROPE_THETA,
    "vocab_size": VOCAB,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="llama",
        description="dense llama (Llama 3.x, Mistral-as-llama GGUFs)",
        arch="llama",
        metadata=_LLAMA_META,
        global_tensors=_LLAMA_GLOBAL,
        block_tensors=lambda _: _attention() | _dense_ffn(),
        hf_config={**_HF_COMMON, **_DENSE_LLAMA_HF},
        # llama.cpp converts MistralForCausalLM to `llama`; its base repo's config says "mistral".
        alt_hf_configs={
            "mistral": {
                **_HF_COMMON,
                "model_type": "mistral",
                "architectures": ["MistralForCausalLM"],
                "intermediate_size": FFN,
                "hidden_act": "silu",
                "head_dim": HEAD_DIM,
                "sliding_window": None,
            }
        },
    ),
    Layout(
        name="llama+experts",
        description="Mixtral-type MoE stored as llama + expert_count (the target's layout)",
        arch="llama",
        metadata={
            **_LLAMA_META,
            "feed_forward_length": EXPERT_FFN,
            "expert_count": EXPERTS,
            "expert_used_count": EXPERTS_USED,
        },
        global_tensors=_LLAMA_GLOBAL,
        block_tensors=lambda _: _attention() | _experts(),
        hf_config={
            **_HF_COMMON,
            "model_type": "mixtral",
            "architectures": ["MixtralForCausalLM"],
            "intermediate_size": EXPERT_FFN,
            "hidden_act": "silu",
            "num_local_experts": EXPERTS,
            "num_experts_per_tok": EXPERTS_USED,
            "router_aux_loss_coef": 0.02,
            "output_router_logits": False,
        },
        # A dense Llama config.json (e.g. the 3B model the experts were merged from) on the MoE GGUF.
        alt_hf_configs={"llama": {**_HF_COMMON, **_DENSE_LLAMA_HF, "intermediate_size": EXPERT_FFN}},
    ),
    Layout(
        name="qwen2moe",
        description="Qwen1.5/2-MoE: routed experts + a gated shared expert",
        arch="qwen2moe",
        metadata={
            **_LLAMA_META,
            "expert_count": EXPERTS,
            "expert_used_count": EXPERTS_USED,
            "expert_feed_forward_length": EXPERT_FFN,
            "expert_shared_feed_forward_length": FFN,
        },
        global_tensors=_LLAMA_GLOBAL,
        block_tensors=lambda _: (
            _attention(bias=True) | _experts() | _shared_expert(FFN) | {"ffn_gate_inp_shexp.weight": (1, HIDDEN)}
        ),
        hf_config={
            **_HF_COMMON,
            "model_type": "qwen2_moe",
            "architectures": ["Qwen2MoeForCausalLM"],
            "intermediate_size": FFN,
            "moe_intermediate_size": EXPERT_FFN,
            "shared_expert_intermediate_size": FFN,
            "num_experts": EXPERTS,
            "num_experts_per_tok": EXPERTS_USED,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "norm_topk_prob": False,
            "hidden_act": "silu",
        },
        tokenizer_model="gpt2",
    ),
    Layout(
        name="qwen3moe",
        description="Qwen3-MoE: routed experts, q/k norms, no shared expert",
        arch="qwen3moe",
        metadata={
            **_LLAMA_META,
            "expert_count": EXPERTS,
            "expert_used_count": EXPERTS_USED,
            "expert_feed_forward_length": EXPERT_FFN,
            "attention.key_length": HEAD_DIM,
            "attention.value_length": HEAD_DIM,
        },
        global_tensors=_LLAMA_GLOBAL,
        block_tensors=lambda _: _attention(qk_norm=True) | _experts(),
        hf_config={
            **_HF_COMMON,
            "model_type": "qwen3_moe",
            "architectures": ["Qwen3MoeForCausalLM"],
            "head_dim": HEAD_DIM,
            "intermediate_size": FFN,
            "moe_intermediate_size": EXPERT_FFN,
            "num_experts": EXPERTS,
            "num_experts_per_tok": EXPERTS_USED,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "norm_topk_prob": True,
            "hidden_act": "silu",
        },
        tokenizer_model="gpt2",
    ),
    Layout(
        name="gemma3",
        description="Gemma 3 text model (gemma-3-1b-it; the LLM part of gemma-3-27b-it)",
        arch="gemma3",
        metadata={
            **_LLAMA_META,
            "attention.key_length": HEAD_DIM,
            "attention.value_length": HEAD_DIM,
            "attention.sliding_window": 512,
            "attention.layer_norm_rms_epsilon": 1e-6,
        },
        # Gemma ties the output projection to the embedding: llama.cpp writes no `output.weight`.
        global_tensors={"token_embd.weight": (VOCAB, HIDDEN), "output_norm.weight": (HIDDEN,)},
        block_tensors=lambda _: (
            _attention(qk_norm=True)
            | _dense_ffn()
            | {"post_attention_norm.weight": (HIDDEN,), "post_ffw_norm.weight": (HIDDEN,)}
        ),
        hf_config={
            **_HF_COMMON,
            "model_type": "gemma3_text",
            "architectures": ["Gemma3ForCausalLM"],
            "head_dim": HEAD_DIM,
            "intermediate_size": FFN,
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": HEAD_DIM,
            "sliding_window": 512,
            "sliding_window_pattern": 6,
            "rms_norm_eps": 1e-6,
            "rope_local_base_freq": 10000.0,
            "tie_word_embeddings": True,
        },
    ),
    Layout(
        name="deepseek2",
        description="DeepSeek-V2-Lite/R1 style: MLA attention, 1 dense block, then shared + routed experts",
        arch="deepseek2",
        metadata={
            **_LLAMA_META,
            "attention.head_count_kv": HEADS,
            "attention.key_length": QK_NOPE + QK_ROPE,
            "attention.value_length": V_HEAD,
            "attention.kv_lora_rank": KV_LORA,
            "rope.dimension_count": QK_ROPE,
            "leading_dense_block_count": 1,
            "expert_feed_forward_length": EXPERT_FFN,
            "expert_count": EXPERTS,
            "expert_shared_count": 1,
            "expert_used_count": EXPERTS_USED,
            "expert_weights_scale": 1.0,
        },
        global_tensors=_LLAMA_GLOBAL,
        block_tensors=lambda bid: (
            {
                "attn_norm.weight": (HIDDEN,),
                "attn_q.weight": (HEADS * (QK_NOPE + QK_ROPE), HIDDEN),
                "attn_kv_a_mqa.weight": (KV_LORA + QK_ROPE, HIDDEN),
                "attn_kv_a_norm.weight": (KV_LORA,),
                "attn_kv_b.weight": (HEADS * (QK_NOPE + V_HEAD), KV_LORA),
                "attn_output.weight": (HIDDEN, HEADS * V_HEAD),
            }
            | (_dense_ffn() if bid == 0 else _experts() | _shared_expert(EXPERT_FFN))
        ),
        hf_config={
            **_HF_COMMON,
            "model_type": "deepseek_v2",
            "architectures": ["DeepseekV2ForCausalLM"],
            "num_key_value_heads": HEADS,
            "intermediate_size": FFN,
            "moe_intermediate_size": EXPERT_FFN,
            "n_routed_experts": EXPERTS,
            "n_shared_experts": 1,
            "num_experts_per_tok": EXPERTS_USED,
            "first_k_dense_replace": 1,
            "moe_layer_freq": 1,
            "kv_lora_rank": KV_LORA,
            "q_lora_rank": None,
            "qk_nope_head_dim": QK_NOPE,
            "qk_rope_head_dim": QK_ROPE,
            "v_head_dim": V_HEAD,
            "routed_scaling_factor": 1.0,
            "topk_method": "greedy",
            "n_group": 1,
            "topk_group": 1,
            "scoring_func": "softmax",
            "norm_topk_prob": False,
            "hidden_act": "silu",
        },
        tokenizer_model="gpt2",
    ),
)


def layout_tensors(layout: Layout) -> dict[str, Shape]:
    """Every tensor of a layout, in llama.cpp's order (globals first, then blocks)."""
    out = dict(layout.global_tensors)
    for bid in range(BLOCKS):
        out |= {f"blk.{bid}.{name}": shape for name, shape in layout.block_tensors(bid).items()}
    return out
