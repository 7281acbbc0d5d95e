"""Issue 16: weights sized from the format's bytes per weight, KV per attention design (MLA, hybrid
linear/full, sliding window), and the calibration set's integrity."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from modelformats.formats.base import SelectionContext
from modelformats.gpu import GpuRequest
from modelformats.gpu.catalogue import get_gpu
from modelformats.gpu.estimate import Layout, WeightsSize, estimate_memory, resolve_kv_shape
from modelformats.gpu.kept_modules import kept_module_params
from modelformats.gpu.kv import hybrid_paging
from modelformats.gpu.rules import default_rules
from modelformats.gpu.sizing import resolve_request
from modelformats.listing import RepoFile, RepoListing
from modelformats.planner import PlanOptions, plan
from modelformats.registry import default_registry
from modelformats.sources.recorded import RecordedSource
from modelformats.traits import ModelTraits, traits_from_config, traits_from_gguf_header
from modelformats.weightbytes import WeightBytes, grouped_int_bytes

DATA = Path(__file__).resolve().parents[1] / "data"
LISTINGS = DATA / "listings"
CALIBRATION = DATA / "calibration" / "vllm_startup_logs.json"
GIB = 1024**3


def _weight_bytes(qc: dict[str, object]) -> WeightBytes | None:
    listing = RepoListing(
        repo_id="test/quantized",
        files=(RepoFile(path="config.json"), RepoFile(path="model.safetensors")),
        config={"model_type": "llama", "quantization_config": qc},
    )
    found = default_registry().detect(listing)
    return found.strategy.select_files(listing, found.detection, SelectionContext()).weight_bytes


@pytest.mark.parametrize(
    ("qc", "expected"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, 0.5 + (2 + 0.5) / 128),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True}, 0.5 + 2 / 128),
        ({"quant_method": "gptq", "bits": 8, "group_size": -1}, 1.0),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, 1.0),
        ({"quant_method": "mxfp4"}, 4.25 / 8),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_use_double_quant": True}, 0.5 + 1 / 64),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, 1.0),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "g": {"weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 64}}
                },
            },
            0.5 + 2 / 64,
        ),
    ],
)
def test_each_quantized_format_states_its_bytes_per_weight(qc: dict[str, object], expected: float) -> None:
    wb = _weight_bytes(qc)
    assert wb is not None
    assert wb.bytes_per_weight == pytest.approx(expected)
    assert wb.basis  # says where the number came from


def test_grouped_int_bytes() -> None:
    assert grouped_int_bytes(4, 128, zero_points=False) == pytest.approx(0.515625)


def test_awq_without_sizes_counts_embeddings_at_16_bit() -> None:
    traits = ModelTraits(params_total=8_000_000_000, vocab_size=128_000, hidden_size=4096, tie_word_embeddings=False)
    wb = WeightBytes(bytes_per_weight=0.5, basis="test", embeddings_16bit=True)
    ctx = resolve_request(GpuRequest(traits=traits, weight_bytes=wb, weights_in_torch_dtype=False), default_rules())
    embed = 128_000 * 4096 * 2
    assert ctx.weights.bytes == math.ceil((8_000_000_000 - embed) * 0.5 + embed * 2)
    assert not ctx.weights.assumed


def test_gguf_q8_0_counts_parameters_at_8_5_bits() -> None:
    # The same recording as the shared fixture (../shared/fixtures/listings, byte-identical).
    source = RecordedSource.from_paths([LISTINGS])
    p = plan("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", source=source, options=PlanOptions(policy="cost"))
    weights = next(t for t in p.memory.terms if t.name == "weights")
    kv = next(t for t in p.memory.terms if t.name == "kv_cache")
    assert weights.bytes == pytest.approx(8.54e9, rel=0.01)
    # 8.54 GB / (34 B per 32 weights) = 8.04 B parameters, not 17.08 B (2 per byte)
    assert "8,037,647,057 parameters" in kv.basis
    assert kv.assumed  # no header, no config: the shape is still a labelled bound
    assert (p.gpu.name, p.gpu.count) == ("L4", 2)  # was 3 x L4 with the 4-bit guess


def _mla_traits() -> ModelTraits:
    cfg = {
        "model_type": "deepseek_v2",
        "num_hidden_layers": 27,
        "hidden_size": 2048,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
    }
    return traits_from_config(cfg, origin="test")


def test_mla_caches_one_latent_per_layer() -> None:
    kv = resolve_kv_shape(_mla_traits(), shape_params=None, shape_params_basis="")
    assert (kv.layers, kv.kv_width, kv.tensors, kv.latent) == (27, 576, 1, True)
    est = estimate_memory(
        engine="vllm",
        weights=_no_weights(),
        kv=kv,
        max_model_len=32768,
        max_num_seqs=1,
        max_num_batched_tokens=None,
    )
    # vllm#15871: "0.95 GiB KV cache is needed" for 32,768 tokens of DeepSeek-V2-Lite
    assert est.kv_bytes_per_token == 27 * 576 * 2
    assert est.term("kv_cache").bytes / GIB == pytest.approx(0.95, abs=0.005)


def test_mla_latent_is_whole_on_every_tp_rank() -> None:
    kv = resolve_kv_shape(_mla_traits(), shape_params=None, shape_params_basis="")
    est = estimate_memory(
        engine="vllm",
        weights=_no_weights(),
        kv=kv,
        max_model_len=1024,
        max_num_seqs=1,
        max_num_batched_tokens=None,
        layout=Layout(tensor_parallel_size=2),
    )
    assert est.term("kv_cache").per_gpu_bytes == 27 * 576 * 2 * 1024


def _no_weights() -> WeightsSize:
    return WeightsSize(bytes=0, basis="none")


def test_hybrid_counts_only_full_attention_layers_and_warns_about_state() -> None:
    traits = traits_from_config(
        {
            "num_hidden_layers": 48,
            "num_key_value_heads": 2,
            "head_dim": 256,
            "num_attention_heads": 16,
            "full_attention_interval": 4,
        },
        origin="test",
    )
    assert (traits.full_attention_layers, traits.linear_attention_layers) == (12, 36)
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    assert kv.layers == 12
    assert any("linear-attention" in n for n in kv.notes)


_QWEN35_27B_LIKE = {
    "num_hidden_layers": 64,
    "num_key_value_heads": 4,
    "num_attention_heads": 24,
    "head_dim": 256,
    "full_attention_interval": 4,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 48,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "mamba_ssm_dtype": "float32",
    "torch_dtype": "bfloat16",
}


def test_gated_deltanet_state_shares_vllms_hybrid_page() -> None:
    """vLLM 0.33's arithmetic at TP 2 with an fp8 KV cache: a 1,603,584 B state (conv 3 x 5,120 x 2 B +
    recurrent 24 x 128 x 128 x 4 B) needs a 1,568-token attention block (1,024 B per token), and a
    131,072-token request takes cdiv(131,072, 1,568) = 84 attention blocks + 3 state groups x 2."""
    traits = traits_from_config(_QWEN35_27B_LIKE, origin="test")
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    assert (kv.layers, kv.linear_layers) == (16, 48)
    assert kv.linear_state is not None and not any("not modelled" in n for n in kv.notes)
    paging = hybrid_paging(kv, tp=2, kv_bytes_per_element=1.0, max_model_len=131_072, block_size=16)
    assert paging is not None
    assert (paging.state_bytes, paging.block_size, paging.page_bytes) == (1_603_584, 1_568, 1_605_632)
    assert (paging.group_size, paging.attention_groups, paging.state_groups) == (16, 1, 3)
    assert paging.blocks_per_sequence == 90
    est = estimate_memory(
        engine="vllm",
        weights=_no_weights(),
        kv=kv,
        max_model_len=131_072,
        max_num_seqs=1,
        max_num_batched_tokens=None,
        kv_cache_bytes_per_element=1.0,
        layout=Layout(tensor_parallel_size=2),
        block_size=16,
    )
    assert est.term("kv_cache").per_gpu_bytes == 16 * 1_605_632 * 90
    assert "Gated DeltaNet" in est.term("kv_cache").formula


def test_gated_deltanet_state_on_llamacpp_is_f32_per_sequence() -> None:
    traits = traits_from_config(_QWEN35_27B_LIKE, origin="test")
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    est = estimate_memory(
        engine="llamacpp",
        weights=_no_weights(),
        kv=kv,
        max_model_len=8_192,
        max_num_seqs=2,
        max_num_batched_tokens=None,
    )
    attention = 2 * 16 * 4 * 256 * 2 * 8_192 * 2
    state = 48 * 4 * (3 * 10_240 + 48 * 128 * 128) * 2
    assert est.term("kv_cache").bytes == attention + state


def test_gemma3_pattern_caps_sliding_layers_at_the_window() -> None:
    traits = traits_from_config(
        {
            "num_hidden_layers": 62,
            "num_key_value_heads": 16,
            "head_dim": 128,
            "num_attention_heads": 32,
            "sliding_window": 1024,
            "sliding_window_pattern": 6,
        },
        origin="test",
    )
    assert (traits.full_attention_layers, traits.sliding_attention_layers) == (10, 52)
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="", max_model_len=32768)
    assert (kv.layers, kv.sliding_layers, kv.sliding_window) == (62, 52, 1024)
    assert not kv.notes


def test_layer_types_are_read_and_unknown_kinds_warn() -> None:
    gpt_oss = traits_from_config(
        {"num_hidden_layers": 4, "layer_types": ["sliding_attention", "full_attention"] * 2}, origin="t"
    )
    assert (gpt_oss.full_attention_layers, gpt_oss.sliding_attention_layers) == (2, 2)
    odd = traits_from_config(
        {
            "num_hidden_layers": 2,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "layer_types": ["full_attention", "chunked_attention"],
        },
        origin="t",
    )
    assert odd.unmodelled_attention is not None
    kv = resolve_kv_shape(odd, shape_params=None, shape_params_basis="")
    assert any("not modelled" in n for n in kv.notes)


def test_hybrid_keys_without_a_layout_warn() -> None:
    traits = traits_from_config(
        {"num_hidden_layers": 8, "num_key_value_heads": 8, "head_dim": 64, "mamba_d_state": 16}, origin="t"
    )
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    assert any("not modelled" in n for n in kv.notes)


def test_fp8_kv_cache_halves_the_kv_term() -> None:
    traits = ModelTraits(num_layers=32, num_kv_heads=8, head_dim=128)
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    common = {"engine": "vllm", "weights": _no_weights(), "kv": kv, "max_model_len": 4096, "max_num_seqs": 1}
    bf16 = estimate_memory(**common, max_num_batched_tokens=None)  # type: ignore[arg-type]
    fp8 = estimate_memory(**common, max_num_batched_tokens=None, kv_cache_bytes_per_element=1.0)  # type: ignore[arg-type]
    assert fp8.term("kv_cache").bytes * 2 == bf16.term("kv_cache").bytes


def _number_strings(value: float) -> set[str]:
    return {f"{value}", f"{value:,}", f"{value:.2f}", f"{value:g}", f"{int(value):,}" if value == int(value) else ""}


def test_calibration_numbers_are_quoted_from_their_source() -> None:
    """Every observed number appears in the log lines quoted from its source (kv_tokens may be blocks x 16)."""
    data = json.loads(CALIBRATION.read_text())
    assert data["logs"]
    for log in data["logs"]:
        assert re.match(r"https://", log["source"]), log["id"]
        quoted = "\n".join(log["quoted"])
        assert log["shape"]["source"], log["id"]
        for key, value in log["observed"].items():
            if isinstance(value, bool):
                continue
            if key == "kv_tokens" and not any(s and s in quoted for s in _number_strings(value)):
                blocks = value // 16
                assert value == blocks * 16 and str(blocks) in quoted, (log["id"], key, value)
                continue
            assert any(s and s in quoted for s in _number_strings(value)), (log["id"], key, value)


def test_mxfp4_quantizes_only_the_experts() -> None:
    traits = traits_from_config(
        {
            "model_type": "gpt_oss",
            "num_hidden_layers": 24,
            "num_local_experts": 32,
            "hidden_size": 2880,
            "intermediate_size": 2880,
        },
        origin="t",
    )
    traits = ModelTraits(**{**traits.to_dict(), "params_total": 20_000_000_000, "sources": {}})
    wb = _weight_bytes({"quant_method": "mxfp4"})
    assert wb is not None and wb.experts_only
    ctx = resolve_request(GpuRequest(traits=traits, weight_bytes=wb, weights_in_torch_dtype=False), default_rules())
    experts = 24 * 32 * 3 * 2880 * 2880
    assert ctx.weights.bytes == math.ceil(experts * 4.25 / 8 + (20_000_000_000 - experts) * 2)
    assert not ctx.weights.assumed
    # Without the expert shape the whole model is sized at the MXFP4 rate, and labelled an assumption.
    bare = resolve_request(
        GpuRequest(traits=ModelTraits(params_total=20_000_000_000), weight_bytes=wb, weights_in_torch_dtype=False),
        default_rules(),
    )
    assert bare.weights.assumed and bare.weights.basis.startswith("ASSUMED")


def test_a_model_without_attention_layers_has_no_kv_cache() -> None:
    traits = traits_from_config(
        {"num_hidden_layers": 4, "num_key_value_heads": 8, "head_dim": 64, "layer_types": ["mamba"] * 4}, origin="t"
    )
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    assert (kv.layers, kv.assumed) == (0, False)


def _deepseek2_gguf(*, compact: bool) -> ModelTraits:
    """DeepSeek-V2-Lite GGUF headers: a compact-MLA conversion records key_length_mla, an older one does not."""
    meta: dict[str, object] = {
        "general.architecture": "deepseek2",
        "deepseek2.block_count": 27,
        "deepseek2.embedding_length": 2048,
        "deepseek2.attention.head_count": 16,
        "deepseek2.attention.kv_lora_rank": 512,
        "deepseek2.rope.dimension_count": 64,
    }
    if compact:  # convert_hf_to_gguf.py's MLA layout: one 576-wide "head", V 512, the real sizes under *_mla
        meta |= {
            "deepseek2.attention.head_count_kv": 1,
            "deepseek2.attention.key_length": 576,
            "deepseek2.attention.value_length": 512,
            "deepseek2.attention.key_length_mla": 192,
            "deepseek2.attention.value_length_mla": 128,
        }
    else:
        meta |= {
            "deepseek2.attention.head_count_kv": 16,
            "deepseek2.attention.key_length": 192,
            "deepseek2.attention.value_length": 128,
        }
    return traits_from_gguf_header({"metadata": meta}, origin="GGUF header")


@pytest.mark.parametrize(
    ("compact", "engine", "per_token"),
    [
        (True, "llamacpp", 27 * 576 * 2),
        # llama.cpp without key_length_mla: full K and V for every head (llama-kv-cache.cpp, !is_mla()).
        (False, "llamacpp", 27 * 16 * (192 + 128) * 2),
        # vLLM caches the latent for every MLA model.
        (False, "vllm", 27 * 576 * 2),
    ],
)
def test_mla_gguf_on_llamacpp_caches_the_latent_only_with_key_length_mla(
    compact: bool, engine: str, per_token: int
) -> None:
    traits = replace(_deepseek2_gguf(compact=compact), params_total=15_700_000_000)
    ctx = resolve_request(GpuRequest(traits=traits, engine=engine, max_model_len=4096), default_rules())
    est = estimate_memory(
        engine=engine,
        weights=_no_weights(),
        kv=ctx.kv,
        max_model_len=4096,
        max_num_seqs=1,
        max_num_batched_tokens=None,
    )
    assert est.kv_bytes_per_token == per_token
    assert not ctx.kv.assumed


def test_fp8_checkpoint_without_config_is_sized_at_one_byte_per_weight() -> None:
    # The shared fixture: compressed-tensors FP8 (Hub tags 'fp8', 'compressed-tensors'), config.json unread,
    # 2 shards of ~9.08 GB. 2 parameters per byte (the 4-bit guess) made it 18.2 B parameters.
    source = RecordedSource.from_paths([LISTINGS])
    p = plan("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", source=source, options=PlanOptions(policy="cost"))
    kv = next(t for t in p.memory.terms if t.name == "kv_cache")
    weights = next(t for t in p.memory.terms if t.name == "weights")
    m = re.search(r"([\d,]+) parameters", kv.basis)
    assert m is not None
    assert int(m.group(1).replace(",", "")) == pytest.approx(9.08e9, rel=0.01)
    assert "FP8 weights: 1 B per weight" in kv.basis and "ASSUMED" in kv.basis
    assert weights.bytes == pytest.approx(9.08e9, rel=0.01)


def _gguf(arch: str, **keys: object) -> ModelTraits:
    meta: dict[str, object] = {"general.architecture": arch, f"{arch}.block_count": 48}
    meta |= {f"{arch}.attention.head_count": 16, f"{arch}.attention.key_length": 256}
    meta |= {f"{arch}.{k.replace('__', '.')}": v for k, v in keys.items()}
    return traits_from_gguf_header({"metadata": meta}, origin="GGUF header")


def test_gguf_hybrid_layouts_count_only_attention_layers() -> None:
    # qwen3next: layer i is full attention when (i + 1) % full_attention_interval == 0 (src/models/qwen3next.cpp).
    qwen = _gguf("qwen3next", attention__head_count_kv=2, full_attention_interval=4, ssm__state_size=128)
    assert (qwen.full_attention_layers, qwen.linear_attention_layers) == (12, 36)
    assert resolve_kv_shape(qwen, shape_params=None, shape_params_basis="").layers == 12
    # Per-layer flags win over the interval.
    flags = [i != 0 for i in range(48)]
    assert _gguf("qwen3next", attention__recurrent_layers=flags, attention__head_count_kv=2).full_attention_layers == 1
    # Jamba / Nemotron-H: a per-layer head_count_kv array whose zeros are state-space layers.
    jamba = _gguf("jamba", attention__head_count_kv=[0, 0, 0, 8] * 12)
    assert (jamba.full_attention_layers, jamba.linear_attention_layers, jamba.num_kv_heads) == (12, 36, 8)


def test_gguf_state_space_keys_without_a_layout_warn() -> None:
    traits = _gguf("mamba_hybrid", attention__head_count_kv=2, ssm__state_size=128, ssm__conv_kernel=4)
    assert traits.unmodelled_attention is not None
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    assert kv.layers == 48 and any("not modelled" in n for n in kv.notes)


@pytest.mark.parametrize(
    "extra",
    [
        {"layer_types": ["full_attention", "linear_attention"]},  # 2 kinds for 8 layers
        {"full_attention_interval": 9},  # larger than the 8 layers: no attention layer at all
        {"attn_layer_period": 4, "attn_layer_offset": 4},  # offset outside the period
    ],
)
def test_config_layouts_that_do_not_fit_the_layers_warn_instead_of_dropping_the_kv_cache(
    extra: dict[str, object],
) -> None:
    traits = traits_from_config({"num_hidden_layers": 8, "num_key_value_heads": 8, "head_dim": 64, **extra}, origin="t")
    assert traits.unmodelled_attention is not None
    kv = resolve_kv_shape(traits, shape_params=None, shape_params_basis="")
    assert kv.layers == 8 and any("not modelled" in n for n in kv.notes)


@pytest.mark.parametrize(
    "qc",
    [
        {"quant_method": "awq", "bits": 4, "group_size": 128, "modules_to_not_convert": ["visual", "mlp.gate"]},
        {"quant_method": "bitsandbytes", "load_in_4bit": True, "llm_int8_skip_modules": ["mlp.router"]},
        {"quant_method": "fp8", "modules_to_not_convert": ["model.layers.0.self_attn"]},
        {"quant_method": "gptq", "bits": 4, "group_size": 128, "dynamic": {r"-:.*\.mlp\.gate": {}}},
        {
            "quant_method": "compressed-tensors",
            "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
            "ignore": ["lm_head", "re:.*mlp.gate$"],
        },
    ],
)
def test_modules_kept_16bit_without_a_shape_label_the_figure_assumed(qc: dict[str, object]) -> None:
    wb = _weight_bytes(qc)
    assert wb is not None and wb.assumed
    assert "kept out of the quantized rate" in wb.basis
    traits = ModelTraits(params_total=8_000_000_000, vocab_size=128_000, hidden_size=4096)
    ctx = resolve_request(GpuRequest(traits=traits, weight_bytes=wb, weights_in_torch_dtype=False), default_rules())
    assert ctx.weights.assumed and ctx.weights.basis.startswith("ASSUMED")


def test_embeddings_and_output_head_in_the_skip_list_are_already_counted() -> None:
    # lm_head is the 16-bit tensor the embeddings term counts at 2 B: listing it is not an unknown.
    wb = _weight_bytes(
        {
            "quant_method": "compressed-tensors",
            "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
            "ignore": ["lm_head"],
        }
    )
    assert wb is not None and not wb.assumed


_LOG_KEYS = {"id", "source", "family", "model", "vllm", "gpu", "settings", "quoted", "observed", "shape"}
_SETTINGS_KEYS = {
    "max_model_len_source",
    "cuda_graphs_in_budget",
    "max_model_len",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "kv_cache_dtype",
    "dtype",
    "block_size",
    "enforce_eager",
    "cpu_offload_gb",
    "max_num_batched_tokens",
    "max_num_seqs",
    "compute_capability",
    "moe_backend",
    "vllm_version",
    "mla_matrix_absorption",
    "kv_entry_alignment_bytes",
    "non_torch_counts_cached_blocks",
    "max_num_seqs_source",
    "gpu",
    "open",
    "gpu_memory_utilization_source",
    "vllm_version_source",
}
_OBSERVED_KEYS = {
    "activation_gib",
    "non_torch_gib",
    "peak_torch_gib",
    "weights_gib",
    "weights_gib_per_gpu",
    "kv_available_gib",
    "kv_tokens",
    "kv_needed_gib",
    "kv_needed_tokens",
    "total_gpu_gib",
    "started",
}
_SHAPE_KEYS = {
    "intermediate_size",
    "params",
    "layers",
    "kv_heads",
    "attention_heads",
    "head_dim",
    "hidden_size",
    "vocab_size",
    "tie_word_embeddings",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "full_attention_layers",
    "sliding_attention_layers",
    "linear_attention_layers",
    "sliding_window",
    "num_experts",
    "num_experts_per_tok",
    "expert_intermediate_size",
    "linear_num_key_heads",
    "linear_num_value_heads",
    "linear_key_head_dim",
    "linear_value_head_dim",
    "linear_conv_kernel_dim",
    "mamba_ssm_dtype",
    "torch_dtype",
    "bytes_per_weight",
    "quantization_config",
    "source",
}
# Issue 16's list of designs the set must cover, as parts of a log's `family` ("moe+fp8+tp").
_FAMILIES_REQUIRED = {"dense-gqa", "moe", "mla", "hybrid", "sliding", "fp8", "awq", "gptq", "mxfp4", "gguf", "tp"}


def test_calibration_file_schema() -> None:
    """At least 25 logs, each with the fields the benchmark reads and no field it would silently ignore."""
    data = json.loads(CALIBRATION.read_text())
    assert data["format"] == "modelformats-vllm-calibration/1"
    logs = data["logs"]
    assert len(logs) >= 25
    ids = [log["id"] for log in logs]
    assert len(ids) == len(set(ids))
    parts: set[str] = set()
    for log in logs:
        lid = log["id"]
        assert _LOG_KEYS <= set(log) <= _LOG_KEYS | {"note", "fit_note"}, lid
        assert all(isinstance(log[k], str) and log[k] for k in ("id", "source", "family", "model", "vllm", "gpu")), lid
        assert log["quoted"] and all(isinstance(q, str) and q.strip() for q in log["quoted"]), lid
        settings, observed, shape = log["settings"], log["observed"], log["shape"]
        assert set(settings) <= _SETTINGS_KEYS, (lid, set(settings) - _SETTINGS_KEYS)
        assert observed and set(observed) <= _OBSERVED_KEYS, (lid, set(observed) - _OBSERVED_KEYS)
        assert set(shape) <= _SHAPE_KEYS, (lid, set(shape) - _SHAPE_KEYS)
        assert isinstance(shape["source"], str) and shape["source"], lid
        tp = settings.get("tensor_parallel_size", 1)
        assert isinstance(tp, int) and tp >= 1, lid
        # Weights are per GPU in vLLM's log: say so when the model is split.
        assert "weights_gib" not in observed or tp == 1, lid
        assert "weights_gib_per_gpu" not in observed or tp > 1, lid
        util = settings.get("gpu_memory_utilization")
        assert util is None or 0 < util <= 1, lid
        assert isinstance(observed.get("started", False), bool), lid
        assert ("kv_needed_gib" in observed) == ("kv_needed_tokens" in observed), lid
        if "total_gpu_gib" in observed:
            assert 4 <= observed["total_gpu_gib"] <= 300, lid
        if "gpu" in settings:  # a catalogue GPU with the total vLLM sees, for logs that print none
            assert "total_gpu_gib" not in observed, lid
            assert get_gpu(settings["gpu"]).usable_memory_bytes, lid
        for key, values in settings.get("open", {}).items():  # each open setting: two or more candidates
            assert key in _SETTINGS_KEYS and key not in settings and len(set(values)) >= 2, (lid, key)
        for key in ("gpu_memory_utilization", "vllm_version", "max_num_seqs", "max_model_len"):
            assert f"{key}_source" not in settings or key in settings, (lid, key)
        assert "fit_note" not in log or "started" in observed, lid
        parts.update(log["family"].split("+"))
    assert parts >= _FAMILIES_REQUIRED, _FAMILIES_REQUIRED - parts


def _calibration_bench() -> Any:
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_memory_calibration.py"
    spec = importlib.util.spec_from_file_location("bench_memory_calibration", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
    finally:
        del sys.modules[spec.name]
    return bench


def test_the_calibration_benchmark_reads_every_log() -> None:
    """benchmarks/bench_memory_calibration.py runs over the whole set and renders its table."""
    bench = _calibration_bench()
    data = json.loads(CALIBRATION.read_text())
    rows, fits = bench.evaluate(data)
    assert rows and fits
    assert {r.log for r in rows} <= {log["id"] for log in data["logs"]}
    text = bench.render(rows, fits, data["logs"])
    assert "fit verdict agrees with vLLM" in text
    assert text.startswith(f"{len(data['logs'])} logs, by family: ")


def test_modules_kept_16bit_are_sized_from_the_shape_when_they_name_decoder_linears() -> None:
    # Meta's FP8 Llama 3.1 405B keeps every attention projection and the first and last layers' MLP in bf16.
    kept = [f"model.layers.{i}.self_attn.{m}" for i in range(126) for m in ("q_proj", "k_proj", "v_proj", "o_proj")]
    kept += [f"model.layers.{i}.mlp.{m}" for i in (0, 125) for m in ("gate_proj", "up_proj", "down_proj")]
    wb = _weight_bytes({"quant_method": "fbgemm_fp8", "modules_to_not_convert": [*kept, "lm_head"]})
    assert wb is not None and wb.assumed and len(wb.kept_modules) == len(kept)
    traits = ModelTraits(
        params_total=405_853_388_800,
        num_layers=126,
        hidden_size=16384,
        num_attention_heads=128,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=128256,
        tie_word_embeddings=False,
    )
    ctx = resolve_request(GpuRequest(traits=traits, weight_bytes=wb, weights_in_torch_dtype=False), default_rules())
    attention = 126 * 16384 * 128 * 128 * 2 + 126 * 16384 * 8 * 128 * 2
    mlp = 2 * 3 * 16384 * 53248
    embeddings = 2 * 128256 * 16384
    n16 = attention + embeddings + mlp
    assert not ctx.weights.assumed
    # The MLP width is derived from the parameter count: within a norm's worth of 3 x 16384 x 53248.
    assert abs(ctx.weights.bytes - (405_853_388_800 + n16)) < 126 * 16384 * 8
    assert "882 " not in ctx.weights.basis and "510 mlp and self_attn linear layers" in ctx.weights.basis


def test_kept_module_patterns_match_whole_name_parts() -> None:
    traits = ModelTraits(
        params_total=8_030_261_248,
        num_layers=32,
        hidden_size=4096,
        num_attention_heads=32,
        num_kv_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
    )
    attention = 4096 * 4096 * 2 + 4096 * 1024 * 2
    n, _ = kept_module_params(("self_attn",), traits, 8_030_261_248) or (0, "")
    assert n == 32 * attention
    n, _ = kept_module_params(("re:model\\.layers\\.1\\.self_attn\\.q_proj",), traits, 8_030_261_248) or (0, "")
    assert n == 4096 * 4096
    # "model.layers.1" is not a prefix of layer 10's names; "mlp.gate" (an MoE router) names no linear here.
    n, _ = kept_module_params(("model.layers.1.self_attn",), traits, 8_030_261_248) or (0, "")
    assert n == attention
    assert kept_module_params(("mlp.gate",), traits, 8_030_261_248) is None
    assert kept_module_params(("+:.*q_proj",), traits, 8_030_261_248) is None


_GPT_OSS_120B = ModelTraits(
    params_total=116_829_156_672,
    num_layers=36,
    hidden_size=2880,
    num_attention_heads=64,
    num_kv_heads=8,
    head_dim=64,
    vocab_size=201088,
    tie_word_embeddings=False,
    is_moe=True,
    num_experts=128,
    expert_intermediate_size=2880,
)


@pytest.mark.parametrize(
    ("capability", "tp", "extra_gib"),
    [
        # Marlin (Ampere): hidden 2880 -> 3072, width 2880 -> 2944: 36 x 128 x 3 x (3072 x 2944 - 2880^2) x 17/32 B.
        ((8, 0), 1, 36 * 128 * 3 * (3072 * 2944 - 2880 * 2880) * 17 / 32 / 2**30),
        # OAI Triton kernels (Hopper): 2880 is a multiple of 64, nothing is padded.
        ((9, 0), 1, 0.0),
        # Marlin at TP 2: each rank's width 1440 -> 1536.
        ((8, 0), 2, 36 * 128 * 3 * (3072 * 1536 * 2 - 2880 * 2880) * 17 / 32 / 2**30),
    ],
)
def test_vllm_allocates_mxfp4_experts_at_its_kernels_padded_shape(
    capability: tuple[int, int], tp: int, extra_gib: float
) -> None:
    from modelformats.gpu.sizing import weights_on
    from modelformats.weightbytes import mxfp4_bytes

    request = GpuRequest(traits=_GPT_OSS_120B, weight_bytes=mxfp4_bytes(), weights_in_torch_dtype=False)
    ctx = resolve_request(request, default_rules())
    padded = weights_on(ctx, capability, Layout(tensor_parallel_size=tp))
    assert (padded.bytes - ctx.weights.bytes) / 2**30 == pytest.approx(extra_gib, abs=1e-6)
    assert ("MoE kernel allocates experts" in padded.basis) == (extra_gib > 0)
    # llama.cpp stores and runs the experts as the GGUF has them.
    gguf = replace(request, engine="llamacpp", engine_traits=None)
    ctx = resolve_request(gguf, default_rules())
    assert weights_on(ctx, capability, Layout(tensor_parallel_size=tp)) is ctx.weights


@pytest.mark.parametrize(
    ("capability", "backend"),
    [((7, 5), "marlin"), ((8, 9), "marlin"), ((9, 0), "triton"), ((10, 0), "flashinfer-trtllm"), ((12, 0), "marlin")],
)
def test_the_mxfp4_kernel_follows_vllm_033s_order_by_capability(capability: tuple[int, int], backend: str) -> None:
    from modelformats.gpu.moe_kernels import mxfp4_expert_layout

    assert mxfp4_expert_layout(capability).backend == backend


def test_vllm_keeps_a_16bit_copy_of_a_quantized_mla_kv_b_proj() -> None:
    config = {
        "model_type": "deepseek_v3",
        "num_hidden_layers": 61,
        "hidden_size": 7168,
        "num_attention_heads": 128,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "vocab_size": 129280,
    }
    traits = replace(traits_from_config(config, origin="t"), params_total=671_026_419_200)
    assert (traits.qk_nope_head_dim, traits.v_head_dim, traits.q_lora_rank) == (128, 128, 1536)
    fp8 = _weight_bytes({"quant_method": "fp8", "weight_block_size": [128, 128]})
    quantized = resolve_request(
        GpuRequest(traits=traits, weight_bytes=fp8, weights_in_torch_dtype=False), default_rules()
    )
    plain = resolve_request(
        GpuRequest(traits=traits, weight_bytes=replace(fp8, bytes_per_weight=2.0), weights_in_torch_dtype=False),
        default_rules(),
    )
    copy = 61 * 512 * 128 * (128 + 128) * 2  # 2.05 GB over all GPUs
    raw = math.ceil((671_026_419_200 - 129280 * 7168 * 2) * 1.0 + 129280 * 7168 * 2 * 2)
    assert quantized.weights.bytes == raw + copy
    assert "16-bit copy of the quantized kv_b_proj" in quantized.weights.basis
    # 16-bit weights are viewed, not copied; llama.cpp does not split kv_b_proj at all.
    assert "kv_b_proj" not in plain.weights.basis
    gguf = resolve_request(
        GpuRequest(traits=traits, weight_bytes=fp8, weights_in_torch_dtype=False, engine="llamacpp"), default_rules()
    )
    assert gguf.weights.bytes == raw


def test_non_torch_of_the_cached_blocks_profiler_is_shown_but_not_held_against_the_estimate() -> None:
    """vllm#10511's profiler (until vllm#11809) counted torch's idle cached blocks as non-torch memory."""
    bench = _calibration_bench()
    data = json.loads(CALIBRATION.read_text())
    marked = {log["id"] for log in data["logs"] if log["settings"].get("non_torch_counts_cached_blocks")}
    assert marked == {"vllm-pr10511-llama3-8b-tp1"}
    rows, _ = bench.evaluate(data)
    by_key = {(r.log, r.term): r for r in rows}
    nt = by_key[("vllm-pr10511-llama3-8b-tp1", "non-torch")]
    assert not nt.counted and nt.note
    assert all(r.counted for r in rows if r.log not in marked)
    # The non-KV total leaves the 1.79 GiB out on vLLM's side and the constant out on the estimate's.
    log = next(log for log in data["logs"] if log["id"] in marked)
    obs = log["observed"]
    row = by_key[("vllm-pr10511-llama3-8b-tp1", "non-kv")]
    expected = (obs["total_gpu_gib"] * 0.9 - obs["kv_available_gib"] - obs["non_torch_gib"]) * GIB
    assert row.observed == pytest.approx(expected)
    assert row.note and abs(row.error) < 0.05
    text = bench.render(rows, [], data["logs"])
    assert "non-torch left out on both sides" in text


def test_the_v1_sampler_peak_matches_the_constant() -> None:
    """vLLM 0.10.2 (V1) printed 5.58 GiB of activation peak: 1,024 sequences x 151,936 logits x 38.5 B."""
    bench = _calibration_bench()
    rows, _ = bench.evaluate(json.loads(CALIBRATION.read_text()))
    row = next(r for r in rows if r.log == "sungwon-qwen3-next-80b-tp2-h200" and r.term == "act")
    assert row.estimated == pytest.approx(1024 * 151_936 * 38.5, rel=1e-6)
    assert abs(row.error) < 0.005


def test_every_log_with_a_known_gpu_total_gets_a_fit_verdict_and_each_miss_is_explained() -> None:
    """A log that says whether vLLM started, on a GPU whose total is printed or catalogued, is judged."""
    bench = _calibration_bench()
    data = json.loads(CALIBRATION.read_text())
    _, fits = bench.evaluate(data)
    expected = {
        log["id"]
        for log in data["logs"]
        if "started" in log["observed"]
        and ("total_gpu_gib" in log["observed"] or "gpu" in log["settings"])
        and "gpu_memory_utilization" in log["settings"]
    }
    assert {f.log for f in fits} == expected
    assert len(fits) >= 9
    assert all(f.judged for f in fits)
    by_id = {log["id"]: log for log in data["logs"]}
    misses = {f.log for f in fits if not f.agrees}
    # Every start-up the estimate does not predict says why, and no agreeing verdict carries such a note.
    assert misses == {f.log for f in fits if "fit_note" in by_id[f.log]}
    assert len(misses) <= 2
    assert sum(f.agrees for f in fits) > sum(f.baseline == f.started for f in fits)
    text = "\n".join(bench.render_fits(fits))
    assert f"fit verdict agrees with vLLM: {len(fits) - len(misses)}/{len(fits)}" in text
    assert text.count("MISS") == len(misses)


def test_the_catalogue_total_stands_in_where_the_log_prints_none() -> None:
    bench = _calibration_bench()
    data = json.loads(CALIBRATION.read_text())
    log = next(log for log in data["logs"] if log["id"] == "vllm-27508-gpt-oss-120b-h100")
    assert bench.gpu_total(log) == (get_gpu("H100").usable_memory_bytes, "H100")
    printed = next(log for log in data["logs"] if log["id"] == "vllm-13882-qwen25-7b-bnb4-rtx4060")
    assert bench.gpu_total(printed) == (8 * GIB, "log")


def test_a_verdict_that_turns_on_an_open_setting_is_not_judged() -> None:
    """gpt-oss-120b at 131,072 tokens on an H100 at 0.95: vLLM 0.33's Triton layout (60.8 GiB of weights) fits,
    Marlin's (65.9 GiB) does not; before 0.33 Triton kept the raw scales (64.1 GiB) and neither fits."""
    bench = _calibration_bench()
    data = json.loads(CALIBRATION.read_text())
    log = next(log for log in data["logs"] if log["id"] == "vllm-27508-gpt-oss-120b-h100")
    assert log["settings"]["open"] == {"moe_backend": ["triton", "marlin"]}
    args = (bench.traits_of(log["shape"]), bench.weight_bytes_of(log["shape"]), None)
    before = bench.fit_of(log, *args)
    assert before is not None and before.estimate is False and before.judged
    later = {**log, "settings": {**log["settings"], "vllm_version": "0.33.0"}}
    split = bench.fit_of(later, *args)
    assert split is not None and split.estimate is None and not split.judged
    assert "triton: fits" in split.detail and "marlin: no fit" in split.detail
    assert "not judged: 1" in "\n".join(bench.render_fits([split]))
