"""GPU requests shaped like every shared fixture listing (tests/data/listings/*.json).

The listings record no config.json and no GGUF header, so model shapes (layers, heads, context)
are written here BY HAND from each model's published config.json / GGUF metadata, and each entry
says so in `traits_source`. Weight sizes come from the listing where it has them (HF display sizes,
±0.5 %); otherwise from parameters x bytes per weight, with the basis spelled out. Two entries use
only what a listing really carries (`listing only`): the target's source repo and the target GGUF
with the base's parameter count, as the planner sees them today.

Used by tests/gpu/test_gpu_golden.py and benchmarks/bench_gpu_cost.py (until the planner can build
these requests from the listings themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelformats.gpu import GpuRequest
from modelformats.registry import default_registry
from modelformats.traits import ModelTraits


def facts(name: str, *, floor_of: str | None = None) -> dict[str, Any]:
    """GpuRequest fields for a format, from its strategy's serving facts (as the planner passes them)."""
    formats = default_registry().formats
    serving = formats[name].serving
    return {
        "format": name,
        "capability_floor": formats[floor_of or name].serving.capability_floor,
        "weights_in_torch_dtype": serving.weights_in_torch_dtype,
    }


HAND = "hand-written from the model's published config.json/GGUF metadata (not in the recorded listing)"
TARGET_PARAMS = 18_404_944_896  # the base listing's safetensors total (index total_size / 2 bytes)
Q8_0_BYTES_PER_WEIGHT = 34 / 32  # 32 int8 + one fp16 scale per 32-weight block


def _traits(source: str = HAND, **values: Any) -> ModelTraits:
    return ModelTraits(**values, sources=dict.fromkeys(values, source))


LLAMA32_3B = {
    "num_layers": 28,
    "hidden_size": 3072,
    "num_attention_heads": 24,
    "num_kv_heads": 8,
    "head_dim": 128,
}
LLAMA31_8B = {
    "num_layers": 32,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_kv_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 131072,
    "params_total": 8_030_261_248,
}
MISTRAL_NEMO = {
    "num_layers": 40,
    "hidden_size": 5120,
    "num_attention_heads": 32,
    "num_kv_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 1_024_000,
    "params_total": 12_247_782_400,
    "torch_dtype": "bfloat16",
}


@dataclass(frozen=True, kw_only=True)
class Fixture:
    listing: str
    label: str
    traits_source: str
    request: GpuRequest
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


FIXTURES: tuple[Fixture, ...] = (
    Fixture(
        listing="DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF.json",
        label="target GGUF Q8_0 (listing only)",
        traits_source="listing only: Hub tag 'mixtral' and safetensors total of the base repo",
        request=GpuRequest(
            traits=_traits(
                "the base listing (Hub tag 'mixtral', safetensors total)",
                model_type="mixtral",
                is_moe=True,
                params_total=TARGET_PARAMS,
            ),
            bytes_per_weight=Q8_0_BYTES_PER_WEIGHT,
            bytes_per_weight_basis="Q8_0: 34 bytes per 32 weights",
            engine="vllm",
            **facts("gguf"),
        ),
        notes="No size in the listing: weights = params x Q8_0's 1.0625 B; no dims: KV assumed.",
    ),
    Fixture(
        listing="DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF.json",
        label="target GGUF Q8_0 (header-shaped)",
        traits_source=HAND + "; shapes as shared/tools/make_target_like_gguf.py writes them",
        request=GpuRequest(
            traits=_traits(
                gguf_architecture="llama",
                is_moe=True,
                num_experts=8,
                num_experts_per_tok=2,
                params_total=TARGET_PARAMS,
                max_position_embeddings=131072,
                **LLAMA32_3B,
            ),
            bytes_per_weight=Q8_0_BYTES_PER_WEIGHT,
            bytes_per_weight_basis="Q8_0: 34 bytes per 32 weights",
            engine="vllm",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B.json",
        label="target source BF16 (listing only)",
        traits_source="listing only: Hub tag 'mixtral', safetensors total",
        request=GpuRequest(
            traits=_traits(
                "the listing (Hub tag 'mixtral', safetensors total)",
                model_type="mixtral",
                is_moe=True,
                params_total=TARGET_PARAMS,
            ),
            weights_bytes=36_809_889_792,
            weights_basis="model.safetensors.index.json total_size (listing notes)",
            engine="vllm",
            **facts("safetensors"),
        ),
    ),
    Fixture(
        listing="DavidAU__Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-GGUF.json",
        label="4X3B 10B GGUF Q4_k_m",
        traits_source=HAND + " (4 experts per the model card; params: Llama-3.2-3B + 3 expert MLPs + lm_head)",
        request=GpuRequest(
            traits=_traits(
                gguf_architecture="llama",
                is_moe=True,
                num_experts=4,
                num_experts_per_tok=2,
                params_total=9_948_883_968,
                max_position_embeddings=131072,
                **LLAMA32_3B,
            ),
            weights_bytes=6_080_000_000,
            weights_basis="listing size of the Q4_k_m file (HF display)",
            engine="vllm",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="DrNicefellow__Mistral-Nemo-Instruct-2407-exl2-7bpw-h8.json",
        label="Mistral-Nemo EXL2 (as the GPU policy sees it; the planner refuses EXL2 first)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(**MISTRAL_NEMO),
            weights_bytes=11_550_000_000,
            weights_basis="listing sizes of output-0000{1,2}-of-00002.safetensors",
            engine="vllm",
            **facts("exl2"),
        ),
    ),
    Fixture(
        listing="Qwen__Qwen2.5-7B-Instruct-AWQ.json",
        label="Qwen2.5-7B AWQ",
        traits_source=HAND + " (sliding_window 131072 with use_sliding_window false)",
        request=GpuRequest(
            traits=_traits(
                num_layers=28,
                hidden_size=3584,
                num_attention_heads=28,
                num_kv_heads=4,
                head_dim=128,
                sliding_window=131072,
                max_position_embeddings=32768,
                params_total=7_615_616_512,
                torch_dtype="float16",
            ),
            weights_bytes=5_570_000_000,
            weights_basis="listing sizes of the 2 shards",
            engine="vllm",
            **facts("awq"),
        ),
    ),
    Fixture(
        listing="TheBloke__Llama-2-7B-Chat-GPTQ.json",
        label="Llama-2-7B GPTQ (MHA)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                num_layers=32,
                hidden_size=4096,
                num_attention_heads=32,
                num_kv_heads=32,
                head_dim=128,
                max_position_embeddings=4096,
                params_total=6_738_415_616,
            ),
            weights_bytes=3_900_000_000,
            weights_basis="listing size of model.safetensors",
            engine="vllm",
            **facts("gptq"),
        ),
    ),
    Fixture(
        listing="TheBloke__Mistral-7B-Instruct-v0.2-GGUF.json",
        label="Mistral-7B v0.2 GGUF Q4_K_M",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                gguf_architecture="llama",
                num_layers=32,
                hidden_size=4096,
                num_attention_heads=32,
                num_kv_heads=8,
                head_dim=128,
                max_position_embeddings=32768,
                params_total=7_241_732_096,
            ),
            weights_bytes=4_370_000_000,
            weights_basis="listing size of the Q4_K_M file",
            engine="vllm",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="Yasar-02__LLAMA-3.1-8b-Instruct.json",
        label="Llama-3.1-8B BF16 (the planner refuses the incomplete upload first)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(torch_dtype="bfloat16", **LLAMA31_8B),
            engine="vllm",
            **facts("safetensors"),
        ),
        notes="Only 1 of 4 shards is listed: weights from params x bf16 instead.",
    ),
    Fixture(
        listing="bartowski__Meta-Llama-3.1-8B-Instruct-GGUF.json",
        label="Llama-3.1-8B GGUF Q4_K_M",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(gguf_architecture="llama", **LLAMA31_8B),
            weights_bytes=4_920_000_000,
            weights_basis="listing size of the Q4_K_M file",
            engine="vllm",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="deepseek-ai__DeepSeek-V2-Lite.json",
        label="DeepSeek-V2-Lite BF16 (MoE, MLA)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                model_type="deepseek_v2",
                is_moe=True,
                num_experts=64,
                num_experts_per_tok=6,
                num_layers=27,
                hidden_size=2048,
                num_attention_heads=16,
                num_kv_heads=16,
                max_position_embeddings=163840,
                params_total=15_706_484_224,
                torch_dtype="bfloat16",
            ),
            weights_bytes=31_410_000_000,
            weights_basis="listing sizes of the 4 shards",
            engine="vllm",
            **facts("safetensors"),
        ),
    ),
    Fixture(
        listing="ggml-org__gemma-3-27b-it-GGUF.json",
        label="gemma-3-27b GGUF Q4_K_M (5 of 6 layers sliding)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                gguf_architecture="gemma3",
                num_layers=62,
                hidden_size=5376,
                num_attention_heads=32,
                num_kv_heads=16,
                head_dim=128,
                sliding_window=1024,
                max_position_embeddings=131072,
                params_total=27_432_406_640,
            ),
            weights_bytes=16_500_000_000,
            weights_basis="listing size of the Q4_K_M file",
            engine="vllm",
            **facts("gguf"),
            sliding_window_layers=52,
        ),
    ),
    Fixture(
        listing="kbang2021__unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit.json",
        label="unsloth Llama-3.1-8B GGUF Q4_K_M (not bnb)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(gguf_architecture="llama", **LLAMA31_8B),
            weights_bytes=4_920_000_000,
            weights_basis="listing size of unsloth.Q4_K_M.gguf",
            engine="llamacpp",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="lmsys__vicuna-7b-v1.5.json",
        label="vicuna-7b fp16 .bin",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                num_layers=32,
                hidden_size=4096,
                num_attention_heads=32,
                num_kv_heads=32,
                head_dim=128,
                max_position_embeddings=4096,
                params_total=6_738_415_616,
                torch_dtype="float16",
            ),
            weights_bytes=13_480_000_000,
            weights_basis="listing sizes of the 2 .bin shards",
            engine="vllm",
            **facts("pytorch"),
        ),
    ),
    Fixture(
        listing="mistralai__Mistral-Nemo-Instruct-2407.json",
        label="Mistral-Nemo BF16 (no sizes)",
        traits_source=HAND,
        request=GpuRequest(traits=_traits(**MISTRAL_NEMO), engine="vllm", **facts("safetensors")),
        notes="No sizes in the listing: weights = params x 2 (torch_dtype bfloat16).",
    ),
    Fixture(
        listing="mlx-community__Llama-3.1-8B-Instruct.json",
        label="Llama-3.1-8B MLX (as the GPU policy sees it; vLLM cannot load MLX)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(torch_dtype="bfloat16", **LLAMA31_8B),
            weights_bytes=16_060_000_000,
            weights_basis="listing sizes of the 4 shards",
            engine="vllm",
            **facts("mlx"),
        ),
    ),
    Fixture(
        listing="model-hub__Mixtral-8x7B-v0.1.json",
        label="Mixtral-8x7B BF16 (no sizes)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                model_type="mixtral",
                is_moe=True,
                num_experts=8,
                num_experts_per_tok=2,
                num_layers=32,
                hidden_size=4096,
                num_attention_heads=32,
                num_kv_heads=8,
                head_dim=128,
                max_position_embeddings=32768,
                params_total=46_702_792_704,
                torch_dtype="bfloat16",
            ),
            engine="vllm",
            **facts("safetensors"),
        ),
    ),
    Fixture(
        listing="mradermacher__Llama-3-70Bx2-MOE-GGUF.json",
        label="Llama-3-70Bx2 MoE GGUF Q8_0 (3 byte-split parts)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                gguf_architecture="llama",
                is_moe=True,
                num_experts=2,
                num_experts_per_tok=2,
                num_layers=80,
                hidden_size=8192,
                num_attention_heads=64,
                num_kv_heads=8,
                head_dim=128,
                max_position_embeddings=8192,
            ),
            weights_bytes=134_900_000_000,
            weights_basis="listing sizes of the 3 .partXof3 files",
            bytes_per_weight=Q8_0_BYTES_PER_WEIGHT,
            bytes_per_weight_basis="Q8_0",
            engine="vllm",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="neuralmagic__Meta-Llama-3.1-8B-Instruct-FP8.json",
        label="Llama-3.1-8B FP8 (compressed-tensors)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(torch_dtype="bfloat16", **LLAMA31_8B),
            weights_bytes=9_080_000_000,
            weights_basis="listing sizes of the 2 shards",
            engine="vllm",
            **facts("compressed-tensors", floor_of="fp8"),
            quantization="fp8",
        ),
    ),
    Fixture(
        listing="unsloth__DeepSeek-R1-GGUF.json",
        label="DeepSeek-R1 GGUF Q4_K_M on llama.cpp (9 shards)",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                model_type="deepseek_v3",
                gguf_architecture="deepseek2",
                is_moe=True,
                num_experts=256,
                num_experts_per_tok=8,
                num_layers=61,
                hidden_size=7168,
                num_attention_heads=128,
                num_kv_heads=128,
                max_position_embeddings=163840,
                params_total=671_026_419_200,
            ),
            weights_bytes=404_300_000_000,
            weights_basis="listing sizes of the 9 Q4_K_M shards",
            engine="llamacpp",
            **facts("gguf"),
        ),
    ),
    Fixture(
        listing="unsloth__gemma-3-1b-it-GGUF.json",
        label="gemma-3-1b GGUF Q4_K_M",
        traits_source=HAND,
        request=GpuRequest(
            traits=_traits(
                gguf_architecture="gemma3",
                num_layers=26,
                hidden_size=1152,
                num_attention_heads=4,
                num_kv_heads=1,
                head_dim=256,
                sliding_window=512,
                max_position_embeddings=32768,
                params_total=999_885_952,
            ),
            weights_bytes=806_000_000,
            weights_basis="listing size of the Q4_K_M file",
            engine="vllm",
            **facts("gguf"),
            sliding_window_layers=22,
        ),
    ),
)
