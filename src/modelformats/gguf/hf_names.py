"""HF checkpoint names <-> llama.cpp GGUF tensor names, and llama.cpp's Q/K row permutation.

Shared by the vLLM plugin (`modelformats.vllm_plugin`, which loads GGUFs on vLLM 0.33) and the
GGUF -> safetensors converter (`modelformats.convert`): one inversion of llama.cpp's naming, free
of torch, vLLM and the `gguf` package (the GGUF side of every name comes from a callable, in practice
gguf-py's `get_tensor_name_map(arch, n).get_name`, so it is llama.cpp's own table).

Facts, each read in llama.cpp's converter as vendored by llama-cpp-python 0.3.36 and proven by
`nox -s gguf_plugin_proof` and `nox -s gguf_convert_proof`:

1. llama.cpp permutes `q_proj`/`k_proj` rows of every `llama`-architecture GGUF (`LlamaModel.permute`,
   conversion/llama.py) because it rotates interleaved pairs; HF (and vLLM) rotate halves.
2. A Mixtral converted by llama.cpp is `general.architecture = llama` with `llama.expert_count`, the
   router `blk.N.ffn_gate_inp` and merged `blk.N.ffn_{gate,up,down}_exps` tensors (expert first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "MIXTRAL_EXPERT_SHARDS",
    "QK_PERMUTED_MODULES",
    "hf_name_map",
    "mixtral_name_map",
    "permute_qk",
    "split_tensor_name",
    "unpermute_qk",
]

T = TypeVar("T")

# HF module (name without the parameter suffix) -> GGUF header key holding its head count.
QK_PERMUTED_MODULES: Mapping[str, str] = {
    "self_attn.q_proj": "attention.head_count",
    "self_attn.k_proj": "attention.head_count_kv",
}

# Mixtral's checkpoint names, which vLLM 0.33's mixtral.py loads (transformers 5 saves this layout too).
_MIXTRAL_MODULES = ("model.embed_tokens", "model.norm", "lm_head")
_MIXTRAL_LAYER_MODULES = (
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "post_attention_layernorm",
    "block_sparse_moe.gate",
)
# gguf-py maps the merged `block_sparse_moe.experts.wN` to ffn_{gate,down,up}_exps (expert first);
# one HF tensor per expert is `block_sparse_moe.experts.<e>.wN.weight`.
MIXTRAL_EXPERT_SHARDS = ("w1", "w2", "w3")


def hf_name_map(
    *,
    architecture: str,
    num_layers: int,
    modules: Sequence[str],
    layer_modules: Sequence[str],
    gguf_name_of: Callable[[str], str | None],
    parameters: Sequence[str] = ("weight",),
    expert_modules: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """GGUF tensor name -> HF tensor name for the listed HF modules (`model.layers.{N}.` + layer_modules).

    `gguf_name_of` is gguf-py's `get_tensor_name_map(<architecture>, num_layers).get_name`.
    `expert_modules` maps the HF module gguf-py knows for a merged expert tensor (e.g.
    `block_sparse_moe.experts.w1`) to the HF name it is given here (e.g. `block_sparse_moe.experts.0.w1`
    for vLLM's splitter, or a `{expert}` template for the converter). A module gguf-py does not know is
    an error, not a silent skip.
    """
    pairs: list[tuple[str, str]] = [(module, module) for module in modules]
    for layer in range(num_layers):
        prefix = f"model.layers.{layer}"
        pairs += [(f"{prefix}.{module}", f"{prefix}.{module}") for module in layer_modules]
        pairs += [(f"{prefix}.{lookup}", f"{prefix}.{hf}") for lookup, hf in (expert_modules or {}).items()]
    name_map: dict[str, str] = {}
    for lookup, hf_module in pairs:
        gguf_module = gguf_name_of(lookup)
        if gguf_module is None:
            raise LookupError(f"gguf-py's tensor map for architecture {architecture!r} has no entry for {lookup!r}")
        for parameter in parameters:
            name_map[f"{gguf_module}.{parameter}"] = f"{hf_module}.{parameter}"
    return name_map


def mixtral_name_map(
    num_layers: int, gguf_name_of: Callable[[str], str | None], *, expert: str = "0"
) -> dict[str, str]:
    """GGUF tensor name -> HF name for a Mixtral stored as `llama`.

    `gguf_name_of` is gguf-py's `get_tensor_name_map(MODEL_ARCH.LLAMA, n).get_name`. Merged expert
    tensors map to `...experts.<expert>.wN.weight` (vllm-gguf-plugin splits a 3-D tensor named `.experts.0.`;
    the converter passes `{expert}` and fills it per expert).
    """
    return hf_name_map(
        architecture="llama",
        num_layers=num_layers,
        modules=_MIXTRAL_MODULES,
        layer_modules=_MIXTRAL_LAYER_MODULES,
        gguf_name_of=gguf_name_of,
        expert_modules={
            f"block_sparse_moe.experts.{shard}": f"block_sparse_moe.experts.{expert}.{shard}"
            for shard in MIXTRAL_EXPERT_SHARDS
        },
    )


def split_tensor_name(name: str) -> tuple[str, str]:
    """'model.layers.0.self_attn.q_proj.qweight' -> ('model.layers.0.self_attn.q_proj', 'qweight')."""
    module, _, parameter = name.rpartition(".")
    return module, parameter


def permute_qk(weights: T, n_head: int) -> T:
    """llama.cpp's `LlamaModel.permute` (conversion/llama.py): halves -> interleaved pairs, per head."""
    w: Any = weights
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)  # type: ignore[no-any-return]


def unpermute_qk(weights: T, n_head: int) -> T:
    """The inverse of `permute_qk`: interleaved pairs -> halves, i.e. back to HF's row order.

    It moves whole rows (dim 0 = output features). A quantized GGUF row is a run of blocks along the
    input dimension (Q8_0: 32 weights + one fp16 scale = 34 bytes), so moving raw rows is exact.
    """
    w: Any = weights
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)  # type: ignore[no-any-return]
