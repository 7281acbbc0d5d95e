"""config.json and generation_config.json from a GGUF header, or from a base repo's config checked against it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelformats.convert._layouts import ConversionLayout
from modelformats.errors import ConversionError

__all__ = ["HeaderFacts", "check_llama3_rope", "config_from_base", "config_from_header", "generation_config"]


@dataclass(frozen=True, kw_only=True, slots=True)
class HeaderFacts:
    """The GGUF header values a config is built from (`arch.` prefix removed from model keys)."""

    source: str
    architecture: str
    values: Mapping[str, Any]  # every scalar header field, full key
    vocab_size: int
    tied_embeddings: bool
    has_rope_freqs: bool

    def model(self, key: str) -> Any:
        return self.values.get(f"{self.architecture}.{key}")

    def require(self, key: str) -> Any:
        value = self.model(key)
        if value is None:
            raise ConversionError(
                self.source,
                f"the GGUF header has no {self.architecture}.{key}",
                "use a GGUF written by llama.cpp's convert_hf_to_gguf.py, or pass --base with the model's config.json",
            )
        return value


def config_from_header(facts: HeaderFacts, layout: ConversionLayout, *, dtype: str) -> dict[str, Any]:
    """A transformers config.json for `layout` from the GGUF header alone."""
    scaling = facts.model("rope.scaling.type")
    if facts.has_rope_freqs or (scaling not in (None, "none")):
        kind = "llama3 (the rope_freqs tensor)" if facts.has_rope_freqs else repr(scaling)
        raise ConversionError(
            facts.source,
            f"the GGUF uses {kind} rope scaling, whose parameters llama.cpp does not store in the header",
            "pass --base DIR (or a repo id) with the original model's config.json; its rope parameters are "
            "checked against the GGUF",
        )
    heads = int(facts.require("attention.head_count"))
    hidden = int(facts.require("embedding_length"))
    head_dim = facts.model("attention.key_length") or facts.model("rope.dimension_count") or hidden // heads
    rope_theta = float(facts.model("rope.freq_base") or 10000.0)
    config: dict[str, Any] = {
        "architectures": [layout.hf_architecture],
        "model_type": layout.model_type,
        "vocab_size": facts.vocab_size,
        "hidden_size": hidden,
        "intermediate_size": int(facts.model("expert_feed_forward_length") or facts.require("feed_forward_length")),
        "num_hidden_layers": int(facts.require("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(facts.model("attention.head_count_kv") or heads),
        "head_dim": int(head_dim),
        "rms_norm_eps": float(facts.require("attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(facts.require("context_length")),
        # transformers >= 5 reads rope_parameters; older releases read rope_theta.
        "rope_theta": rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "tie_word_embeddings": facts.tied_embeddings,
        **dict(layout.fixed_config),
    }
    for key, gguf_key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id")):
        value = facts.values.get(f"tokenizer.ggml.{gguf_key}")
        if value is not None:
            config[key] = int(value)
    for key, gguf_key in layout.header_config.items():
        config[key] = int(facts.require(gguf_key))
    config["torch_dtype"] = config["dtype"] = dtype
    return config


# config.json key -> the header value it must equal (None: the header does not say).
def _header_view(facts: HeaderFacts, layout: ConversionLayout) -> dict[str, Any]:
    heads = facts.model("attention.head_count")
    view: dict[str, Any] = {
        "hidden_size": facts.model("embedding_length"),
        "num_hidden_layers": facts.model("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": facts.model("attention.head_count_kv") or heads,
        "vocab_size": facts.vocab_size,
    }
    for key, gguf_key in layout.header_config.items():
        view[key] = facts.model(gguf_key)
    return view


def config_from_base(
    facts: HeaderFacts, layout: ConversionLayout, base: Mapping[str, Any], *, base_name: str, dtype: str
) -> dict[str, Any]:
    """The base repo's config.json, refused unless its architecture and shapes are the GGUF's."""
    architectures: Sequence[str] = base.get("architectures") or []
    if not architectures or architectures[0] not in layout.base_architectures:
        raise ConversionError(
            facts.source,
            f"{base_name} config.json names architectures {list(architectures)}, but this "
            f"{layout.gguf_architecture!r} GGUF{' with experts' if layout.has_experts else ''} converts to "
            f"{' / '.join(layout.base_architectures)}",
            "pass --base with the model this GGUF was converted from, or omit --base",
        )
    for key, expected in _header_view(facts, layout).items():
        found = base.get(key, base.get("num_attention_heads") if key == "num_key_value_heads" else None)
        if expected is not None and found is not None and int(found) != int(expected):
            raise ConversionError(
                facts.source,
                f"{base_name} config.json has {key} = {found} but the GGUF has {expected}",
                "pass --base with the model this GGUF was converted from, or omit --base",
            )
    config = dict(base)
    config["tie_word_embeddings"] = facts.tied_embeddings
    config["torch_dtype"] = config["dtype"] = dtype
    config.pop("quantization_config", None)
    return config


def generation_config(facts: HeaderFacts) -> dict[str, Any] | None:
    """generation_config.json from the GGUF's special token ids, or None when it has none."""
    config: dict[str, Any] = {}
    for key in ("bos_token_id", "eos_token_id", "padding_token_id"):
        value = facts.values.get(f"tokenizer.ggml.{key}")
        if value is not None:
            config[key.replace("padding_", "pad_")] = int(value)
    return {**config, "_from_model_config": False} if config else None


def llama3_rope_factors(config: Mapping[str, Any], head_dim: int) -> list[float] | None:
    """llama.cpp's `rope_freqs` for a llama3-scaled config (conversion/llama.py), or None if not llama3."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if str(params.get("rope_type", params.get("type", ""))).lower() != "llama3":
        return None
    base = float(params.get("rope_theta", config.get("rope_theta", 10000.0)))
    factor = float(params.get("factor", 8.0))
    low = float(params.get("low_freq_factor", 1.0))
    high = float(params.get("high_freq_factor", 4.0))
    old = float(params.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old / low, old / high
    factors: list[float] = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (base ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return factors


def check_llama3_rope(source: str, config: Mapping[str, Any], stored: Sequence[float], *, base_name: str) -> None:
    """Refuse a base config whose llama3 rope parameters do not give the GGUF's rope_freqs."""
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // int(config["num_attention_heads"]))
    expected = llama3_rope_factors(config, head_dim)
    if (
        expected is None
        or len(expected) != len(stored)
        or any(not math.isclose(a, float(b), rel_tol=1e-5) for a, b in zip(expected, stored, strict=True))
    ):
        raise ConversionError(
            source,
            f"the GGUF's rope_freqs (llama3 rope scaling) do not match {base_name} config.json's rope parameters",
            "pass --base with the model this GGUF was converted from",
        )
