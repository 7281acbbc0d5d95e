"""Parameters of the modules a quantization config keeps in 16-bit, sized from the model's shape.

Meta's FP8 Llama 3.1 405B, for one, quantizes only the MLP of layers 1..124: its `modules_to_not_convert`
lists every attention projection and the first and last layers' MLP (Meta's quantizer skips
`layer_id == 0 or layer_id == n_layers - 1` and converts only `feed_forward.w1/w2/w3`, llama-models
`quantization/loader.py`). Counting those at the quantized rate under-states the weights by ~17 %.

The modules are the linear layers of a standard decoder, named as transformers names them
(`model.layers.{i}.self_attn.q_proj`, ..., `model.layers.{i}.mlp.down_proj`). Attention shapes come
from hidden size, heads, KV heads and head dim; the dense MLP's from the parameter count (the rest of
a layer once attention and embeddings are taken out). A pattern that names no such module (a vision
tower, an MoE router, a GPTQ `+:` bit override) leaves the figure an assumption, as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from modelformats.traits import ModelTraits

__all__ = ["kept_module_params"]

_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def _attention_shapes(t: ModelTraits) -> dict[str, int] | None:
    """Parameters per attention projection of one layer: q and o are heads x head dim wide, k and v KV heads."""
    hidden, heads, kv_heads, head_dim = t.hidden_size, t.num_attention_heads, t.kv_heads, t.resolved_head_dim
    if not (hidden and heads and kv_heads and head_dim):
        return None
    q = hidden * heads * head_dim
    kv = hidden * kv_heads * head_dim
    return {"q_proj": q, "k_proj": kv, "v_proj": kv, "o_proj": q}


def _decoder_linears(t: ModelTraits, params: int) -> tuple[dict[str, int], bool] | None:
    """Every linear layer's parameters by its full name, and whether the MLP could be sized."""
    layers, attention = t.num_layers, _attention_shapes(t)
    if not layers or attention is None:
        return None
    per_layer = dict(attention)
    # A dense MLP is what a layer holds besides attention (norms are ~2 x hidden, negligible). An MoE's
    # layer also holds experts and a router, which this cannot split, so its MLP stays unsized.
    embeddings = (t.vocab_size or 0) * (t.hidden_size or 0) * (1 if t.tie_word_embeddings else 2)
    mlp = (params - embeddings) // layers - sum(attention.values())
    sized_mlp = not t.is_moe and bool(t.vocab_size) and mlp > 0
    if sized_mlp:
        per_layer.update(dict.fromkeys(_MLP, mlp // 3))
    names: dict[str, int] = {}
    for i in range(layers):
        for name, n in per_layer.items():
            block = "self_attn" if name in _ATTENTION else "mlp"
            names[f"model.layers.{i}.{block}.{name}"] = n
    return names, sized_mlp


def _matches(pattern: str, name: str) -> bool:
    """vLLM and transformers match module names by prefix or dotted part; `re:` (compressed-tensors) and
    GPTQModel's `-:` (skip) are regular expressions matched from the start."""
    for prefix in ("re:", "-:"):
        if pattern.startswith(prefix):
            return re.match(pattern[len(prefix) :], name) is not None
    return f".{pattern}." in f".{name}."


def kept_module_params(patterns: tuple[str, ...], traits: ModelTraits, params: int) -> tuple[int, str] | None:
    """(parameters, how) of the modules `patterns` keep in 16-bit; None when any pattern cannot be sized."""
    if any(p.startswith("+:") for p in patterns):  # another bit width, not 16-bit
        return None
    found = _decoder_linears(traits, params)
    if found is None:
        return None
    names, sized_mlp = found
    kept: dict[str, int] = {}
    for pattern in patterns:
        if pattern in names:  # the common case: a full module path (Meta's list has 511)
            kept[pattern] = names[pattern]
            continue
        hits: Mapping[str, int] = {n: v for n, v in names.items() if _matches(pattern, n)}
        if not hits:
            return None
        kept.update(hits)
    n = sum(kept.values())
    blocks = sorted({name.split(".")[-2] for name in kept})
    how = (
        f"{len(kept):,} {' and '.join(blocks)} linear layers the config keeps in 16-bit = {n:,} parameters "
        "(attention from hidden size x heads x head dim"
        + ("; MLP = (parameters - embeddings) / layers - attention" if sized_mlp else "")
        + ")"
    )
    return n, how
