"""Model traits the GPU policy and the engines decide on, each with where it came from.

Traits come from metadata only: config.json, a GGUF header, the Hub's safetensors/gguf summaries,
and (for `model_type` alone) the Hub's tags, which the Hub derives from config.json. A repo name is
never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelformats.listing import RepoListing

__all__ = [
    "EXPERT_COUNT_KEYS",
    "MOE_MODEL_TYPES",
    "ModelTraits",
    "merge_traits",
    "positive_int",
    "traits_from_config",
    "traits_from_gguf_header",
    "traits_from_listing",
]

# config.json keys that hold the number of routed experts, one per family (as vLLM's
# `get_num_experts()` lists them). The first present key wins.
EXPERT_COUNT_KEYS: tuple[str, ...] = (
    "num_local_experts",  # Mixtral, JetMoE, PhiMoE, MiniMax, GraniteMoE, gpt-oss
    "num_experts",  # Qwen2-MoE, Qwen3-MoE, OLMoE, DBRX (in ffn_config), Arctic
    "n_routed_experts",  # DeepSeek-V2/V3, Kimi-K2, GLM-4.5 MoE
    "moe_num_experts",  # ERNIE-4.5 MoE
)
# Keys for the number of experts each token is routed to (what vLLM's model reads as `config.<key>`,
# vllm/model_executor/models/*.py); looked up in text_config first, then at the top, then in ffn_config.
ACTIVE_EXPERT_KEYS: tuple[str, ...] = (
    "num_experts_per_tok",  # Mixtral, Qwen-MoE, DeepSeek, OLMoE, gpt-oss; Llama-4 in text_config
    "moe_topk",  # LongCat-Flash, Aria
    "moe_k",  # ERNIE-4.5
    "moe_top_k",  # DBRX, in ffn_config (dbrx.py: config.ffn_config.moe_top_k)
)
# model_type values whose architecture is always a routed MoE, with the key that counts experts.
# Used only when config.json itself was not read (the Hub's tags carry model_type).
MOE_MODEL_TYPES: Mapping[str, str] = {
    "mixtral": "num_local_experts",
    "qwen2_moe": "num_experts",
    "qwen3_moe": "num_experts",
    "olmoe": "num_experts",
    "deepseek_v2": "n_routed_experts",
    "deepseek_v3": "n_routed_experts",
    "minimax_m2": "num_local_experts",
    "gpt_oss": "num_local_experts",
    "phimoe": "num_local_experts",
    "dbrx": "num_experts",
    "jamba": "num_experts",
}
# GGUF key suffixes (after "<arch>.") mapped to trait names.
_GGUF_KEYS: Mapping[str, str] = {
    "block_count": "num_layers",
    "embedding_length": "hidden_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_kv_heads",
    "attention.key_length": "head_dim",
    "attention.sliding_window": "sliding_window",
    "context_length": "max_position_embeddings",
    "expert_count": "num_experts",
    "expert_used_count": "num_experts_per_tok",
    "vocab_size": "vocab_size",
    "feed_forward_length": "intermediate_size",
    "attention.kv_lora_rank": "kv_lora_rank",
    "attention.value_length": "v_head_dim",
    # Optional: present only when the converter kept MLA compact; llama.cpp then caches the latent
    # (src/models/deepseek2.cpp reads it, llama_hparams::is_mla()), otherwise full K and V per head.
    "attention.key_length_mla": "mla_key_length",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelTraits:
    """Facts about the model itself (not about one file), each optional."""

    model_type: str | None = None
    architecture: str | None = None
    gguf_architecture: str | None = None
    is_moe: bool | None = None
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    # Where config.json holds num_experts_per_tok, as a dotted path ("text_config.num_experts_per_tok" for
    # Llama-4, "ffn_config.moe_top_k" for DBRX, "moe_k" for ERNIE-4.5): what an engine override must set.
    experts_per_token_key: str | None = None
    # Width of one routed expert's MLP (moe_intermediate_size; intermediate_size in gpt-oss/Mixtral configs).
    expert_intermediate_size: int | None = None
    # The feed-forward width (config `intermediate_size`, GGUF `feed_forward_length`): sizes activations.
    intermediate_size: int | None = None
    params_total: int | None = None
    params_active: int | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    sliding_window: int | None = None
    max_position_embeddings: int | None = None
    vocab_size: int | None = None
    tie_word_embeddings: bool | None = None
    torch_dtype: str | None = None
    # Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): the cached latent is kv_lora_rank + rope dims.
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    # MLA's per-head widths of K without rope and of V, and the query's low-rank width (None: q_proj is
    # hidden x heads): what vLLM's 16-bit copies of the up-projections are sized by (gpu/mla_weights.py).
    qk_nope_head_dim: int | None = None
    q_lora_rank: int | None = None
    # V head width where it differs from K's (GGUF `<arch>.attention.value_length`).
    v_head_dim: int | None = None
    # GGUF `<arch>.attention.key_length_mla`: set only in MLA-compact conversions (llama.cpp caches the latent).
    mla_key_length: int | None = None
    # Per-layer attention kinds, when config.json records them (layer_types, full_attention_interval,
    # sliding_window_pattern, attn_layer_period): layers that keep a full-length KV cache, layers that keep
    # `sliding_window` tokens, and linear-attention / state-space layers that keep a fixed state instead.
    full_attention_layers: int | None = None
    sliding_attention_layers: int | None = None
    linear_attention_layers: int | None = None
    # Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5): the shape of each linear layer's per-sequence
    # conv and recurrent state, and the recurrent state's dtype where the config pins it (Qwen3.5 float32).
    linear_num_key_heads: int | None = None
    linear_num_value_heads: int | None = None
    linear_key_head_dim: int | None = None
    linear_value_head_dim: int | None = None
    linear_conv_kernel_dim: int | None = None
    mamba_ssm_dtype: str | None = None
    # The config describes per-layer attention kinds we do not model (a hybrid without a readable layout).
    unmodelled_attention: str | None = None
    # trait name -> where its value came from ("config.json of owner/name", "GGUF header", ...)
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def resolved_head_dim(self) -> int | None:
        if self.head_dim:
            return self.head_dim
        if self.hidden_size and self.num_attention_heads:
            return self.hidden_size // self.num_attention_heads
        return None

    @property
    def kv_heads(self) -> int | None:
        """KV heads; without grouped-query attention every attention head has its own K and V."""
        return self.num_kv_heads or self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
        out = {k: v for k, v in out.items() if v is not None}
        out["sources"] = dict(self.sources)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelTraits:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def positive_int(value: Any) -> int | None:
    """`value` when it is a positive int (not a bool); None otherwise. How every metadata count is read."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def traits_from_config(config: Mapping[str, Any], *, origin: str) -> ModelTraits:
    """Read traits from an HF config.json. Multimodal configs keep the LLM in `text_config`."""
    cfg: Mapping[str, Any] = config
    text = config.get("text_config")
    if isinstance(text, Mapping) and "num_hidden_layers" in text:
        cfg = {**config, **text}
    values: dict[str, Any] = {}
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        values["architecture"] = archs[0]
    if isinstance(config.get("model_type"), str):
        values["model_type"] = config["model_type"]
    values.update(_experts(cfg, values.get("model_type")))
    if (active := _active_experts(config)) is not None:
        values["num_experts_per_tok"], values["experts_per_token_key"] = active
    for trait, key in (
        ("num_layers", "num_hidden_layers"),
        ("hidden_size", "hidden_size"),
        ("num_attention_heads", "num_attention_heads"),
        ("num_kv_heads", "num_key_value_heads"),
        ("head_dim", "head_dim"),
        ("sliding_window", "sliding_window"),
        ("max_position_embeddings", "max_position_embeddings"),
        ("vocab_size", "vocab_size"),
        ("intermediate_size", "intermediate_size"),
    ):
        if (n := positive_int(cfg.get(key))) is not None:
            values[trait] = n
    if values.get("is_moe"):
        width = positive_int(cfg.get("moe_intermediate_size")) or positive_int(cfg.get("intermediate_size"))
        if width is not None:
            values["expert_intermediate_size"] = width
    for trait in (
        "kv_lora_rank",
        "qk_rope_head_dim",
        "qk_nope_head_dim",
        "v_head_dim",
        "q_lora_rank",
        "linear_num_key_heads",
        "linear_num_value_heads",
        "linear_key_head_dim",
        "linear_value_head_dim",
        "linear_conv_kernel_dim",
    ):
        if (n := positive_int(cfg.get(trait))) is not None:
            values[trait] = n
    tie = cfg.get("tie_word_embeddings")
    if isinstance(tie, bool):
        values["tie_word_embeddings"] = tie
    values.update(_layer_kinds(cfg, values.get("num_layers")))
    values.update(_dtypes(cfg))
    return ModelTraits(**values, sources=dict.fromkeys(values, origin))


def _dtypes(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The model dtype, and the recurrent state's where the config pins it (Qwen3.5 `mamba_ssm_dtype`)."""
    found = {"torch_dtype": cfg.get("torch_dtype", cfg.get("dtype")), "mamba_ssm_dtype": cfg.get("mamba_ssm_dtype")}
    return {k: v for k, v in found.items() if isinstance(v, str)}


# layer_types values (transformers' per-layer attention kinds) -> which count they add to.
_FULL_KINDS = frozenset({"full_attention", "attention", "global_attention", "global"})
_SLIDING_KINDS = frozenset({"sliding_attention", "local_attention", "sliding_window", "local"})
_LINEAR_KINDS = frozenset({"linear_attention", "mamba", "mamba2", "ssm", "conv", "recurrent", "gated_deltanet"})
# Keys that only hybrid (linear / state-space + attention) configs carry.
_HYBRID_KEYS = ("linear_num_key_heads", "mamba_d_state", "ssm_state_size", "mamba_expand", "attn_layer_indices")


def _layer_kinds(cfg: Mapping[str, Any], layers: int | None) -> dict[str, Any]:
    """Full / sliding / linear layer counts from whichever per-layer key the config uses."""
    kinds = cfg.get("layer_types", cfg.get("layers_block_type"))
    if isinstance(kinds, list) and kinds and all(isinstance(k, str) for k in kinds):
        if layers is not None and len(kinds) != layers:
            return {"unmodelled_attention": f"layer_types lists {len(kinds)} kinds for {layers} layers"}
        return _kinds_from_list(kinds)
    counts = _kinds_from_period(cfg, layers) if layers is not None else None
    if isinstance(counts, str):
        return {"unmodelled_attention": counts}
    if counts is not None:
        full, sliding = counts
        assert layers is not None
        return {
            "full_attention_layers": full,
            "sliding_attention_layers": sliding,
            "linear_attention_layers": layers - full - sliding,
        }
    present = [k for k in _HYBRID_KEYS if k in cfg]
    if present:
        return {"unmodelled_attention": f"config.json has hybrid-layer keys ({', '.join(present)}) but no layer layout"}
    return {}


def _kinds_from_list(kinds: list[str]) -> dict[str, Any]:
    full = sum(k in _FULL_KINDS for k in kinds)
    sliding = sum(k in _SLIDING_KINDS for k in kinds)
    linear = sum(k in _LINEAR_KINDS for k in kinds)
    if full + sliding + linear != len(kinds):
        unknown = sorted(set(kinds) - _FULL_KINDS - _SLIDING_KINDS - _LINEAR_KINDS)
        return {"unmodelled_attention": f"layer_types has kinds we do not model: {', '.join(unknown)}"}
    return {"full_attention_layers": full, "sliding_attention_layers": sliding, "linear_attention_layers": linear}


def _kinds_from_period(cfg: Mapping[str, Any], layers: int) -> tuple[int, int] | str | None:
    """(full, sliding) layers from a period key; the rest are linear. None when no such key is set; a
    reason (str) when the key leaves no attention layer at all, which is a broken config, not a design."""
    interval = positive_int(cfg.get("full_attention_interval"))
    if interval is not None:  # Qwen3-Next: every interval-th layer is full attention, the rest linear
        if interval > layers:
            return f"full_attention_interval {interval} is larger than the {layers} layers"
        return layers // interval, 0
    period = positive_int(cfg.get("attn_layer_period"))
    if period is not None:  # Jamba: one attention layer per period (at attn_layer_offset), the rest Mamba
        offset = cfg.get("attn_layer_offset", 0)
        offset = offset if isinstance(offset, int) else 0
        if not 0 <= offset < min(period, layers):
            return f"attn_layer_offset {offset} is outside attn_layer_period {period} ({layers} layers)"
        return sum(1 for i in range(layers) if i % period == offset), 0
    pattern = positive_int(cfg.get("sliding_window_pattern"))
    if (
        pattern is not None and positive_int(cfg.get("sliding_window")) is not None
    ):  # Gemma 3: every pattern-th is global
        full = layers // pattern
        return full, layers - full
    return None


def _active_experts(config: Mapping[str, Any]) -> tuple[int, str] | None:
    """Experts per token and the dotted config path that holds it (text_config, top level, ffn_config)."""
    scopes: list[tuple[str, Any]] = [("text_config.", config.get("text_config")), ("", config)]
    scopes.append(("ffn_config.", config.get("ffn_config")))
    for prefix, scope in scopes:
        if not isinstance(scope, Mapping):
            continue
        for key in ACTIVE_EXPERT_KEYS:
            if (n := positive_int(scope.get(key))) is not None:
                return n, prefix + key
    return None


def _experts(cfg: Mapping[str, Any], model_type: str | None) -> dict[str, Any]:
    """Routed expert count, experts per token and MoE-ness from the first key each family uses."""
    out: dict[str, Any] = {}
    for key in EXPERT_COUNT_KEYS:
        n = positive_int(cfg.get(key))
        if n is None and key == "num_experts" and isinstance(cfg.get("ffn_config"), Mapping):
            n = positive_int(cfg["ffn_config"].get("moe_num_experts"))  # DBRX keeps it one level down
        if n is not None:
            out["num_experts"] = n
            break
    out["is_moe"] = out["num_experts"] > 1 if "num_experts" in out else model_type in MOE_MODEL_TYPES
    return out


def traits_from_gguf_header(header: Mapping[str, Any], *, origin: str) -> ModelTraits:
    """Read traits from a GGUF header dict (`GGUFHeader.to_dict()`: {"metadata": {...}, ...})."""
    meta = header.get("metadata", header)
    arch = meta.get("general.architecture")
    values: dict[str, Any] = {}
    if isinstance(arch, str):
        values["gguf_architecture"] = arch
        for suffix, trait in _GGUF_KEYS.items():
            if (n := positive_int(meta.get(f"{arch}.{suffix}"))) is not None:
                values[trait] = n
        values.update(_gguf_layer_kinds(meta, arch, values))
    rope = positive_int(meta.get(f"{arch}.rope.dimension_count")) if isinstance(arch, str) else None
    if "kv_lora_rank" in values and rope is not None:
        values["qk_rope_head_dim"] = rope
    # A gguf-split shard's header counts only that shard's tensors, not the model's.
    split = positive_int(meta.get("split.count"))
    if (n := positive_int(header.get("parameter_count"))) is not None and (split is None or split == 1):
        values["params_total"] = n
    values["is_moe"] = (values.get("num_experts") or 0) > 1
    return ModelTraits(**values, sources=dict.fromkeys(values, origin))


def _gguf_layer_kinds(meta: Mapping[str, Any], arch: str, values: dict[str, Any]) -> dict[str, Any]:
    """Full-attention vs recurrent (linear / state-space) layers from a GGUF header, as llama.cpp reads them:
    `<arch>.attention.recurrent_layers` (per-layer flags), else `<arch>.full_attention_interval` (layer i is
    full when (i + 1) % interval == 0, src/models/qwen3next.cpp), else a per-layer `attention.head_count_kv`
    array whose zeros are recurrent layers (Jamba, Falcon-H1, Nemotron-H). State-space keys without any of
    these: the design is marked as not modelled."""
    layers = values.get("num_layers")
    recurrent: list[bool] | None = None
    flags = meta.get(f"{arch}.attention.recurrent_layers")
    interval = positive_int(meta.get(f"{arch}.full_attention_interval"))
    kv = meta.get(f"{arch}.attention.head_count_kv")
    if isinstance(flags, list) and flags and all(isinstance(f, bool) for f in flags):
        recurrent = list(flags[:layers] if layers else flags)
    elif interval is not None and layers:
        recurrent = [(i + 1) % interval != 0 for i in range(layers)]
    elif isinstance(kv, list) and kv and all(positive_int(n) is not None or n == 0 for n in kv):
        recurrent = [n == 0 for n in kv]
        if heads := [n for n in kv if n]:
            values["num_kv_heads"] = max(heads)
    if recurrent is not None:
        full = recurrent.count(False)
        return {
            "full_attention_layers": full,
            "sliding_attention_layers": 0,
            "linear_attention_layers": len(recurrent) - full,
        }
    ssm = sorted(k for k in meta if k.startswith(f"{arch}.ssm."))
    if ssm:
        return {
            "unmodelled_attention": f"GGUF header has state-space keys ({', '.join(ssm[:3])}, ...) but no layer layout"
        }
    return {}


def merge_traits(*layers: ModelTraits) -> ModelTraits:
    """Combine traits; earlier layers win for every field they know."""
    out = ModelTraits()
    for layer in reversed(layers):
        updates: dict[str, Any] = {}
        sources = dict(out.sources)
        for f in fields(layer):
            if f.name == "sources":
                continue
            value = getattr(layer, f.name)
            if value is not None:
                updates[f.name] = value
                if f.name in layer.sources:
                    sources[f.name] = layer.sources[f.name]
        out = replace(out, **updates, sources=sources)
    return out


def traits_from_listing(listing: RepoListing, *, prefer: str | None = None) -> ModelTraits:
    """Traits from everything a listing carries, strongest source first.

    One GGUF header is read: that of `prefer` (the chosen model file) when the listing has it, else
    the first by path.
    """
    layers: list[ModelTraits] = []
    if listing.config is not None:
        layers.append(traits_from_config(listing.config, origin=f"config.json of {listing.repo_id}"))
    for path, header in sorted(listing.gguf_headers.items(), key=lambda item: (item[0] != prefer, item[0]))[:1]:
        layers.append(traits_from_gguf_header(header, origin=f"GGUF header of {listing.repo_id}/{path}"))
    if listing.safetensors is not None:
        layers.append(
            ModelTraits(
                params_total=listing.safetensors.total,
                sources={"params_total": f"the Hub's safetensors parameter count of {listing.repo_id}"},
            )
        )
    summary = listing.gguf
    if summary is not None:
        values: dict[str, Any] = {}
        if (n := positive_int(summary.get("total"))) is not None:
            values["params_total"] = n
        if isinstance(summary.get("architecture"), str):
            values["gguf_architecture"] = summary["architecture"]
        if (n := positive_int(summary.get("context_length"))) is not None:
            values["max_position_embeddings"] = n
        layers.append(
            ModelTraits(**values, sources=dict.fromkeys(values, f"the Hub's GGUF summary of {listing.repo_id}"))
        )
    if listing.config is None and (tagged := _traits_from_model_type_tag(listing)) is not None:
        layers.append(tagged)
    return merge_traits(*layers)


def _traits_from_model_type_tag(listing: RepoListing) -> ModelTraits | None:
    """Without config.json: the model_type the Hub copied into the tags, and the class transformers maps it to.

    Used only when exactly one tag is a transformers model_type (a tag like 'llama' next to 'mistral' is
    ambiguous and decides nothing).
    """
    from modelformats.arch_map import hf_architecture_for

    found = [(t, arch) for t in sorted(listing.tag_set) if (arch := hf_architecture_for(t)) is not None]
    if len(found) != 1:
        return None
    model_type, architecture = found[0]
    origin = f"Hub tag {model_type!r} of {listing.repo_id} (the Hub copies config.json's model_type into tags)"
    return ModelTraits(
        model_type=model_type,
        architecture=architecture,
        # A model_type's config class either always routes experts or never does.
        is_moe=model_type in MOE_MODEL_TYPES,
        sources={
            "model_type": origin,
            "is_moe": origin,
            "architecture": f"transformers' causal-LM class for model_type {model_type!r} (Hub tag)",
        },
    )
