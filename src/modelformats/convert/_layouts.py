"""Which HF checkpoint a GGUF architecture converts back to, as data (one `ConversionLayout` each).

A layout names the HF class, the HF modules (their GGUF names come from gguf-py's own tensor map
through `modelformats.gguf.hf_names`), whether llama.cpp permuted Q/K rows, how merged expert tensors
are split, and which config.json keys come from which GGUF header keys. `default_layouts()` builds
the registry a conversion uses; a caller (the proof's negative control) may pass another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from modelformats.gguf.hf_names import MIXTRAL_EXPERT_SHARDS, hf_name_map

__all__ = ["ConversionLayout", "ConversionLayouts", "default_layouts"]

_GLOBAL_MODULES = ("model.embed_tokens", "model.norm", "lm_head")
_ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
_NORMS = ("input_layernorm", "post_attention_layernorm")
_DENSE_MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
# Qwen-MoE experts: gguf-py maps the merged `mlp.experts.<m>` to ffn_{gate,up,down}_exps; one HF tensor per
# expert is `mlp.experts.<e>.<m>.weight` (what transformers 5 saves, un-fusing its gate_up_proj).
_EXPERT_MLP = ("gate_proj", "up_proj", "down_proj")

# The placeholder an expert tensor's HF name carries until it is split (one HF tensor per expert).
EXPERT = "{expert}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConversionLayout:
    """How one GGUF architecture (dense, or with experts) maps back to one HF architecture."""

    gguf_architecture: str  # general.architecture
    has_experts: bool  # <arch>.expert_count > 0
    hf_architecture: str  # config.json architectures[0] written
    model_type: str
    # HF architectures a --base config.json may name instead (same tensor names, e.g. Mistral as llama).
    base_architectures: tuple[str, ...]
    layer_modules: tuple[str, ...]
    parameters: tuple[str, ...] = ("weight",)
    # gguf-py's merged expert module -> the HF module with EXPERT in place of the expert index.
    expert_modules: Mapping[str, str] = field(default_factory=dict)
    # llama.cpp's `LlamaModel.permute` reordered Q/K rows (arch_map's `undo_permute`); undone here.
    qk_permuted: bool = False
    # config.json keys fixed for this layout (attention_bias, ...), beside the ones read from the header.
    fixed_config: Mapping[str, Any] = field(default_factory=dict)
    # config.json key -> the `<arch>.` header key it is read from, for this layout's own keys (expert counts,
    # expert feed-forward size); each is also checked against a --base config.json.
    header_config: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, bool]:
        return (self.gguf_architecture, self.has_experts)

    def name_map(self, num_layers: int, gguf_name_of: Callable[[str], str | None]) -> dict[str, str]:
        """GGUF tensor name -> HF tensor name (expert tensors keep EXPERT in their HF name)."""
        return hf_name_map(
            architecture=self.gguf_architecture,
            num_layers=num_layers,
            modules=_GLOBAL_MODULES,
            layer_modules=self.layer_modules,
            gguf_name_of=gguf_name_of,
            parameters=self.parameters,
            expert_modules=self.expert_modules,
        )


@dataclass(frozen=True, slots=True)
class ConversionLayouts:
    """A read-only registry of layouts keyed by (GGUF architecture, has experts)."""

    by_key: Mapping[tuple[str, bool], ConversionLayout]

    def find(self, architecture: str, has_experts: bool) -> ConversionLayout | None:
        return self.by_key.get((architecture, has_experts))

    def supported(self) -> list[str]:
        return sorted(f"{arch}{' with experts' if experts else ''}" for arch, experts in self.by_key)

    @classmethod
    def of(cls, *layouts: ConversionLayout) -> ConversionLayouts:
        return cls(MappingProxyType({layout.key: layout for layout in layouts}))


def default_layouts() -> ConversionLayouts:
    """The architectures `modelformats convert` supports (each proven by `nox -s gguf_convert_proof`)."""
    return ConversionLayouts.of(
        ConversionLayout(
            gguf_architecture="llama",
            has_experts=False,
            hf_architecture="LlamaForCausalLM",
            model_type="llama",
            base_architectures=("LlamaForCausalLM", "MistralForCausalLM"),
            layer_modules=(*_NORMS, *_ATTENTION, *_DENSE_MLP),
            qk_permuted=True,
            fixed_config={"attention_bias": False, "mlp_bias": False, "hidden_act": "silu"},
        ),
        ConversionLayout(
            gguf_architecture="llama",
            has_experts=True,
            hf_architecture="MixtralForCausalLM",
            model_type="mixtral",
            base_architectures=("MixtralForCausalLM",),
            layer_modules=(*_NORMS, *_ATTENTION, "block_sparse_moe.gate"),
            expert_modules={
                f"block_sparse_moe.experts.{shard}": f"block_sparse_moe.experts.{EXPERT}.{shard}"
                for shard in MIXTRAL_EXPERT_SHARDS
            },
            qk_permuted=True,
            fixed_config={"hidden_act": "silu"},
            header_config={"num_local_experts": "expert_count", "num_experts_per_tok": "expert_used_count"},
        ),
        ConversionLayout(
            gguf_architecture="qwen2",
            has_experts=False,
            hf_architecture="Qwen2ForCausalLM",
            model_type="qwen2",
            base_architectures=("Qwen2ForCausalLM",),
            layer_modules=(*_NORMS, *_ATTENTION, *_DENSE_MLP),
            parameters=("weight", "bias"),
            fixed_config={"hidden_act": "silu", "use_sliding_window": False},
        ),
        ConversionLayout(
            gguf_architecture="qwen3moe",
            has_experts=True,
            hf_architecture="Qwen3MoeForCausalLM",
            model_type="qwen3_moe",
            base_architectures=("Qwen3MoeForCausalLM",),
            layer_modules=(*_NORMS, *_ATTENTION, "self_attn.q_norm", "self_attn.k_norm", "mlp.gate"),
            expert_modules={f"mlp.experts.{m}": f"mlp.experts.{EXPERT}.{m}" for m in _EXPERT_MLP},
            # llama.cpp's qwen3moe graph renormalizes the top-k weights (build_moe_ffn's norm_w = true) and
            # has no dense layers (a dense `mlp.gate_proj` has no GGUF name there): what a header-built config says.
            fixed_config={
                "hidden_act": "silu",
                "attention_bias": False,
                "norm_topk_prob": True,
                "decoder_sparse_step": 1,
                "mlp_only_layers": (),
                "use_sliding_window": False,
            },
            header_config={
                "num_experts": "expert_count",
                "num_experts_per_tok": "expert_used_count",
                "intermediate_size": "feed_forward_length",
                "moe_intermediate_size": "expert_feed_forward_length",
            },
        ),
    )
