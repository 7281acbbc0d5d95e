"""What the adapter does to llama-architecture GGUFs, as data; free of torch and vLLM.

Three facts decide it, each read in the released wheels and proven by `nox -s gguf_plugin_proof`
(the name inversion and the Q/K permutation are shared with the converter: `modelformats.gguf.hf_names`):

1. llama.cpp's converter permutes `q_proj`/`k_proj` rows of every `llama`-architecture GGUF
   (`LlamaModel.permute`, conversion/llama.py in llama.cpp as vendored by llama-cpp-python 0.3.36),
   because llama.cpp rotates interleaved pairs; vLLM 0.33's llama.py and mixtral.py rotate halves
   (`is_neox_style=True`), i.e. HF order. The inverse permutation restores HF order.
2. A Mixtral converted by llama.cpp is `general.architecture = llama` with `llama.expert_count` and
   merged `blk.N.ffn_{gate,up,down}_exps` tensors plus the router `blk.N.ffn_gate_inp`.
3. How vLLM 0.33 builds each layer under the GGUF quant config decides the tensor names it accepts
   (`qweight` + `qweight_type`, or a plain `weight`) - see MODEL_LAYOUTS.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from modelformats.errors import GGUFLayoutMismatchError

__all__ = [
    "GGUF_ARCHITECTURE",
    "IGNORED_GGUF_TENSORS",
    "MODEL_LAYOUTS",
    "ModelLayout",
    "ModuleRule",
    "TensorForm",
    "check_layout",
]

# The GGUF architecture whose Q/K rows llama.cpp's converter permutes for the two layouts handled here.
GGUF_ARCHITECTURE = "llama"

# GGUF tensors vLLM does not take as weights. `rope_freqs` holds llama3 rope factors that vLLM
# recomputes from config.json `rope_parameters` (the proof's rotary check compares it with HF's).
IGNORED_GGUF_TENSORS: Mapping[str, str] = {
    "rope_freqs.weight": "vLLM derives llama3 rope scaling from config.json rope_parameters",
}


class TensorForm(enum.Enum):
    """The parameter names a vLLM 0.33 layer accepts under vllm-gguf-plugin's quant config."""

    # vllm-gguf-plugin's default: quantized -> `qweight` + `qweight_type`; F32/F16/BF16 -> `weight`.
    AS_STORED = "as-stored"
    # The layer always gets a GGUF method, so floats too must arrive as `qweight` + `qweight_type`.
    ALWAYS_GGUF = "always-gguf"
    # The layer is built without a quant config: a float `weight`, dequantized if stored quantized.
    ALWAYS_FLOAT = "always-float"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleRule:
    """How the adapter hands over the tensors of the HF modules matching `pattern`."""

    pattern: str  # full-match regex over the HF module name, e.g. r"model\.embed_tokens"
    form: TensorForm
    why: str  # the vLLM / plugin source that makes this necessary


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelLayout:
    """One HF model type whose GGUF (architecture `llama`) the adapter loads."""

    model_type: str
    has_experts: bool
    rules: tuple[ModuleRule, ...]

    def form_of(self, module: str) -> TensorForm:
        for rule in self.rules:
            if re.fullmatch(rule.pattern, module):
                return rule.form
        return TensorForm.AS_STORED


MODEL_LAYOUTS: Mapping[str, ModelLayout] = {
    "llama": ModelLayout(
        model_type="llama",
        has_experts=False,
        rules=(
            ModuleRule(
                pattern=r"model\.embed_tokens",
                form=TensorForm.ALWAYS_GGUF,
                why=(
                    "vllm/model_executor/models/llama.py:382-386 builds VocabParallelEmbedding without a "
                    "prefix, and vllm_gguf_plugin/quantization/utils.py:13-42 never skips prefix '', so an "
                    "F32/F16/BF16 token_embd arriving as `weight` fails ('no module or parameter named "
                    "embed_tokens.weight')"
                ),
            ),
        ),
    ),
    "mixtral": ModelLayout(
        model_type="mixtral",
        has_experts=True,
        rules=(
            ModuleRule(
                pattern=r"model\.embed_tokens",
                form=TensorForm.ALWAYS_FLOAT,
                why="vllm/model_executor/models/mixtral.py:316-319: embedding built without quant_config",
            ),
            ModuleRule(
                pattern=r"model\.layers\.\d+\.block_sparse_moe\.gate",
                form=TensorForm.ALWAYS_FLOAT,
                why="vllm/model_executor/models/mixtral.py:111-116: router GateLinear without quant_config",
            ),
            ModuleRule(
                pattern=r"model\.layers\.\d+\.block_sparse_moe\.experts\.\d+\.w[123]",
                form=TensorForm.ALWAYS_GGUF,
                why=(
                    "vllm_gguf_plugin/quantization/config.py:86-87 gives every RoutedExperts GGUFMoEMethod, "
                    "whose parameters are w13_qweight/w2_qweight (+ _type) for any tensor type"
                ),
            ),
        ),
    ),
}


def check_layout(
    *,
    path: str,
    layout: ModelLayout,
    config_experts: int,
    gguf_experts: int,
    file_tensors: Mapping[str, str],
    name_map: Mapping[str, str],
) -> None:
    """Refuse a GGUF whose tensors the HF config would leave unloaded (the plugin skips them silently)."""
    if layout.has_experts and gguf_experts != config_experts:
        raise GGUFLayoutMismatchError(
            path,
            f"the GGUF has llama.expert_count = {gguf_experts} but the HF config ({layout.model_type}) "
            f"has num_local_experts = {config_experts}",
            "Pass --hf-config-path with the config.json of the model this GGUF was converted from.",
        )
    if not layout.has_experts and gguf_experts > 0:
        raise GGUFLayoutMismatchError(
            path,
            f"the GGUF is a Mixture of Experts (llama.expert_count = {gguf_experts}, tensors "
            f"blk.N.ffn_*_exps) but the HF config is a dense {layout.model_type!r} model, so the experts "
            "would never be loaded",
            "Pass --hf-config-path with the base model's config.json (model_type 'mixtral', "
            "architectures ['MixtralForCausalLM']).",
        )
    # vllm_gguf_plugin/quantization/fused_moe.py keeps gate (w1) and up (w3) in one w13 tensor of one type.
    for gate, gate_type in sorted(file_tensors.items()):
        up = gate.replace(".ffn_gate_exps.", ".ffn_up_exps.")
        if up != gate and file_tensors.get(up, gate_type) != gate_type:
            raise GGUFLayoutMismatchError(
                path,
                f"{gate} is {gate_type} but {up} is {file_tensors[up]}; vLLM's GGUF MoE method stores "
                "both in one w13 tensor of one quant type",
                "Use a GGUF whose gate and up expert tensors share a quant type.",
            )
    unmapped = sorted(set(file_tensors) - set(name_map) - set(IGNORED_GGUF_TENSORS))
    if unmapped:
        shown = ", ".join(unmapped[:8]) + (f" (+{len(unmapped) - 8} more)" if len(unmapped) > 8 else "")
        raise GGUFLayoutMismatchError(
            path,
            f"{len(unmapped)} GGUF tensor(s) have no parameter in the {layout.model_type!r} model: {shown}",
            "Check that --hf-config-path names the model this GGUF was converted from.",
        )


def check_heads(
    *, path: str, gguf_head_counts: Mapping[str, int], num_attention_heads: int, num_key_value_heads: int | None
) -> None:
    """Refuse a GGUF whose attention head counts differ from the HF config's: the Q/K un-permute
    splits rows by head, so a wrong count would silently scramble every attention layer."""
    expected = {
        "attention.head_count": int(num_attention_heads),
        "attention.head_count_kv": int(num_key_value_heads or num_attention_heads),
    }
    if dict(gguf_head_counts) != expected:
        raise GGUFLayoutMismatchError(
            path,
            f"the GGUF's head counts {dict(gguf_head_counts)} differ from the HF config's {expected}",
            "Pass --hf-config-path with the config.json of the model this GGUF was converted from.",
        )
