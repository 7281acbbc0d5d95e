"""The memory estimate: each term, its formula, and what is assumed."""

from __future__ import annotations

import pytest

from modelformats.gpu import OVERHEAD_CONSTANTS, Layout, WeightsSize, estimate_memory, resolve_kv_shape
from modelformats.gpu.estimate import GIB, SHAPE_ASSUMPTION
from modelformats.traits import ModelTraits

LLAMA_3B = ModelTraits(
    num_layers=28,
    hidden_size=3072,
    num_attention_heads=24,
    num_kv_heads=8,
    head_dim=128,
    sources={"num_layers": "GGUF header of x/y.gguf", "num_kv_heads": "GGUF header of x/y.gguf"},
)
W = WeightsSize(bytes=10 * 10**9, basis="test weights")


def _estimate(traits=LLAMA_3B, *, length=4096, seqs=4, layout=None, engine="vllm", sliding=None, **kw):
    kv = resolve_kv_shape(
        traits, shape_params=None, shape_params_basis="", sliding_window_layers=sliding, max_model_len=length
    )
    return estimate_memory(
        engine=engine,
        weights=W,
        kv=kv,
        max_model_len=length,
        max_num_seqs=seqs,
        max_num_batched_tokens=kw.pop("batched", length),
        layout=layout,
        **kw,
    )


def test_kv_term_respects_grouped_query_attention():
    est = _estimate()
    kv = est.term("kv_cache")
    assert kv.bytes == 2 * 28 * 8 * 128 * 2 * 4096 * 4
    assert kv.basis.startswith("GGUF header of x/y.gguf; KV dtype bf16/f16")
    # Without a KV-head count every attention head has its own K/V (config.json semantics), 3x more.
    mha = _estimate(ModelTraits(num_layers=28, hidden_size=3072, num_attention_heads=24)).term("kv_cache")
    assert mha.bytes == 3 * kv.bytes and not mha.assumed
    assert est.kv_bytes_per_token == 2 * 28 * 8 * 128 * 2


def test_sliding_window_layers_hold_only_the_window():
    traits = ModelTraits(num_layers=26, num_attention_heads=4, num_kv_heads=1, head_dim=256, sliding_window=512)
    full = _estimate(traits, length=8192, seqs=1)
    assert full.notes == (
        "A sliding window of 512 tokens is recorded, but not which layers use it: every layer is counted at "
        "full "
        "length (an upper bound).",
    )
    # llama.cpp: each sliding layer holds the window.
    slid = _estimate(traits, length=8192, seqs=1, sliding=22, engine="llamacpp")
    assert slid.term("kv_cache").bytes == 2 * 256 * 2 * (4 * 8192 + 22 * 512)
    assert slid.term("kv_cache").bytes < full.term("kv_cache").bytes
    # vLLM 0.33 admits a request with cdiv(min(window - 1 + 2 x batched, len), 16) + 1 blocks per sliding
    # layer, in groups of 4 layers (the 4 full ones): 1 full group of 512 blocks + 6 sliding groups (2
    # padding layers) of 16,384-byte pages. With chunked prefill off (batched = 8,192) the window saves nothing.
    page = 16 * 256 * 2 * 2
    whole = _estimate(traits, length=8192, seqs=1, sliding=22)
    assert whole.term("kv_cache").bytes == 4 * page * (512 + 6 * (8192 // 16 + 1))
    chunked = _estimate(traits, length=8192, seqs=1, sliding=22, batched=512)
    assert chunked.term("kv_cache").bytes == 4 * page * (512 + 6 * (-(-(511 + 1024) // 16) + 1))
    assert chunked.term("kv_cache").bytes < full.term("kv_cache").bytes
    # Every layer sliding (Mistral-7B v0.1): one group, no full layers.
    every = _estimate(traits, length=8192, seqs=2, sliding=26, batched=512)
    held = -(-(511 + 1024) // 16) + 1
    assert every.term("kv_cache").bytes == 26 * page * (held + (-(-(511 + 2) // 16) + 1))
    # A window as long as the context changes nothing and is not mentioned (Qwen2.5 records 131,072).
    long_window = _estimate(ModelTraits(num_layers=2, num_attention_heads=2, head_dim=64, sliding_window=131072))
    assert long_window.notes == ()


def test_missing_shape_gives_a_labelled_upper_bound():
    kv = resolve_kv_shape(ModelTraits(is_moe=True), shape_params=18_404_944_896, shape_params_basis="Hub total")
    assert (kv.layers, kv.kv_width, kv.assumed) == (73, 73 * 64, True)
    assert SHAPE_ASSUMPTION in kv.basis and "num_key_value_heads" in (kv.exact_with or "")
    # The bound holds for the real shape it replaces (28 layers x 8 KV heads x 128): about 12x above it.
    assert 2 * kv.layers * kv.kv_width > 11 * (2 * 28 * 8 * 128)
    # Layers and hidden size known, heads not: K/V as wide as hidden, labelled.
    partial = resolve_kv_shape(ModelTraits(num_layers=28, hidden_size=3072), shape_params=None, shape_params_basis="")
    assert (partial.kv_width, partial.assumed) == (3072, True)
    with pytest.raises(ValueError, match="needs shape_params"):
        resolve_kv_shape(ModelTraits(), shape_params=None, shape_params_basis="")


def test_mla_models_say_the_kv_term_is_an_upper_bound():
    kv = resolve_kv_shape(
        ModelTraits(model_type="deepseek_v2", num_layers=27, hidden_size=2048, num_attention_heads=16, num_kv_heads=16),
        shape_params=None,
        shape_params_basis="",
    )
    assert not kv.assumed and kv.notes[0].startswith("Multi-head latent attention: engines cache one latent")


def test_overheads_in_and_outside_the_budget():
    est = _estimate()
    assert [t.name for t in est.terms] == [
        "weights",
        "kv_cache",
        "activations",
        "cuda_graphs",
        "non_torch",
        "cuda_context",
    ]
    assert est.per_gpu_outside_budget_bytes == OVERHEAD_CONSTANTS["cuda_context"].bytes == GIB
    assert est.per_gpu_in_budget_bytes == est.total_bytes - GIB
    # 8,192 tokens is the reference; 32,768 batched tokens (chunked prefill off) is 4x the activations.
    assert _estimate(length=32768, seqs=1, batched=32768).term("activations").bytes == 4 * (5 * GIB // 2)
    eager = _estimate(enforce_eager=True)
    assert "cuda_graphs" not in [t.name for t in eager.terms]
    for name in ("cuda_context", "non_torch", "activations", "cuda_graphs", "llamacpp_compute"):
        assert OVERHEAD_CONSTANTS[name].source


def test_fits_checks_both_sides_of_the_budget():
    est = _estimate()
    need = est.per_gpu_in_budget_bytes
    assert est.fits(need * 2, 0.5)
    assert not est.fits(need * 2 - 2, 0.5)
    # The CUDA context must fit in what the utilization leaves free: 1 GiB > 1 % of 50 GB.
    assert not est.fits(50 * 10**9, 0.99)
    assert est.shortfall_bytes(50 * 10**9, 0.99) == GIB - (50 * 10**9 - int(50 * 10**9 * 0.99))


def test_tensor_parallel_splits_and_copies_kv_heads():
    one = _estimate()
    tp2 = _estimate(layout=Layout(tensor_parallel_size=2))
    assert tp2.term("weights").per_gpu_bytes == 5 * 10**9
    assert tp2.term("kv_cache").bytes == one.term("kv_cache").bytes
    assert tp2.term("non_torch").per_gpu_bytes == GIB  # +0.5 GiB for collectives
    # 16 ranks over 8 KV heads: each head lives on 2 GPUs (vLLM keeps >= 1 KV head per GPU).
    tp16 = _estimate(layout=Layout(tensor_parallel_size=16))
    assert tp16.term("kv_cache").bytes == 2 * one.term("kv_cache").bytes
    assert tp16.term("kv_cache").formula.endswith("; each KV head copied to 2 of the 16 TP ranks")


def test_llamacpp_has_no_budget_split():
    est = _estimate(engine="llamacpp")
    assert [t.name for t in est.terms] == ["weights", "kv_cache", "compute_buffers", "cuda_context"]
    assert est.per_gpu_outside_budget_bytes == 0
    assert est.to_dict()["terms"][2]["bytes"] == 3 * GIB // 2


# (name, parameters, layers, K/V width per layer) from each model's published config.json: models
# without grouped-query attention are the hardest case for the bound (K/V as wide as the hidden size).
REAL_SHAPES = [
    ("gpt2", 124_439_808, 12, 768),
    ("Qwen1.5-0.5B", 619_570_176, 24, 1024),
    ("phi-2", 2_779_683_840, 32, 2560),
    ("Llama-2-7b", 6_738_415_616, 32, 4096),
    ("Llama-2-13b", 13_015_864_320, 40, 5120),
    ("gpt-neox-20b", 20_554_567_680, 44, 6144),
    ("mpt-30b", 29_958_000_000, 48, 7168),
    ("llama-65b", 65_285_660_672, 80, 8192),
    ("bloom", 176_247_271_424, 70, 14336),
    ("Llama-3.2-3B x8 MoE (target)", 18_404_944_896, 28, 8 * 128),
    ("gemma-3-1b", 999_885_952, 26, 1 * 256),
]


@pytest.mark.parametrize(("name", "params", "layers", "width"), REAL_SHAPES, ids=[r[0] for r in REAL_SHAPES])
def test_assumed_shape_bounds_real_models(name, params, layers, width):
    kv = resolve_kv_shape(ModelTraits(), shape_params=params, shape_params_basis="test")
    assert kv.layers * kv.kv_width >= layers * width, name
