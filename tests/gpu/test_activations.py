"""vLLM's activation peak from the model's shape (gpu/activations.py) and where the estimate uses it."""

from __future__ import annotations

import math

import pytest

from modelformats.gpu import GpuRequest
from modelformats.gpu.activations import SAMPLER_BYTES_PER_LOGIT, ActivationShape, activation_peak
from modelformats.gpu.catalogue import get_gpu
from modelformats.gpu.memory import Layout
from modelformats.gpu.rules import default_rules
from modelformats.gpu.sizing import build_option, resolve_request
from modelformats.traits import ModelTraits, traits_from_config, traits_from_gguf_header

GIB = 1024**3
LLAMA_8B = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 32,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


def _shape(config: dict[str, object]) -> ActivationShape:
    shape = ActivationShape.from_traits(traits_from_config(config, origin="test"))
    assert shape is not None
    return shape


def test_forward_peak_matches_the_logged_growth_per_token() -> None:
    # vllm#10517 (V0, 256 dummy sequences): Llama-3.1-8B's profiled peak 2.07 GiB at 20,000 batched tokens,
    # 2.99 GiB at 29,000; the feed-forward moment of the formula gives 2.06 and 2.99.
    shape = _shape(LLAMA_8B)
    low, formula = activation_peak(shape, tokens=20_000, sequences=256)
    high, _ = activation_peak(shape, tokens=29_000, sequences=256)
    assert low == 20_000 * (3 * 4096 + 3 * 14336) * 2
    assert abs(low / GIB - 2.07) < 0.02 and abs(high / GIB - 2.99) < 0.02
    assert formula.startswith("max(forward 20,000 tokens x (3 x 4,096 + 3 x 14,336) x 2 B")


def test_the_sampler_is_the_peak_for_many_requests_and_few_tokens() -> None:
    shape = _shape({**LLAMA_8B, "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944})
    peak, formula = activation_peak(shape, tokens=4096, sequences=256)
    assert peak == pytest.approx(256 * 152064 * SAMPLER_BYTES_PER_LOGIT, abs=1)
    assert abs(peak / GIB - 1.42) < 0.03  # vllm#13882: Qwen2.5-7B bnb-4bit, 1.42 GiB
    assert "sampler 256 requests x 152,064 logits" in formula


def test_requests_in_the_sampler_are_capped_by_the_batched_tokens() -> None:
    shape = _shape(LLAMA_8B)
    peak, formula = activation_peak(shape, tokens=4, sequences=256)
    assert "sampler 4 requests" in formula
    assert peak == max(4 * (3 * 4096 + 3 * 14336) * 2, math.ceil(4 * 128256 * SAMPLER_BYTES_PER_LOGIT))


def test_tensor_parallel_splits_the_feed_forward_not_the_residual_stream() -> None:
    shape = _shape(LLAMA_8B)
    one, _ = activation_peak(shape, tokens=65_536, sequences=1)
    two, formula = activation_peak(shape, tokens=65_536, sequences=1, tp=2)
    assert one == 65_536 * (3 * 4096 + 3 * 14336) * 2
    assert two == 65_536 * (3 * 4096 + 3 * 7168) * 2
    assert "14,336 / 2 TP" in formula


def test_moe_counts_the_routed_experts_per_token() -> None:
    mixtral = {**LLAMA_8B, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}
    shape = _shape(mixtral)
    assert shape.ffn_width == 2 * 14336
    assert "2 experts per token x 14,336 expert width" in shape.basis
    # A GGUF header: llama with experts, the expert width is feed_forward_length.
    header = {
        "metadata": {
            "general.architecture": "llama",
            "llama.embedding_length": 3072,
            "llama.feed_forward_length": 8192,
            "llama.expert_count": 8,
            "llama.expert_used_count": 2,
            "llama.vocab_size": 128256,
        }
    }
    gguf = ActivationShape.from_traits(traits_from_gguf_header(header, origin="test"))
    assert gguf is not None and gguf.ffn_width == 2 * 8192


@pytest.mark.parametrize("missing", ["hidden_size", "intermediate_size", "vocab_size"])
def test_an_incomplete_shape_keeps_the_assumed_constant(missing: str) -> None:
    config = {k: v for k, v in LLAMA_8B.items() if k != missing}
    traits = traits_from_config(config, origin="test")
    assert ActivationShape.from_traits(traits) is None
    ctx = resolve_request(GpuRequest(traits=traits, weights_bytes=16 * 10**9), default_rules())
    assert ctx.activations is None


def _option(traits: ModelTraits):  # type: ignore[no-untyped-def]
    ctx = resolve_request(GpuRequest(traits=traits, weights_bytes=16 * 10**9), default_rules())
    option = build_option(ctx, get_gpu("H100"), 1, 1)
    assert option is not None
    return ctx, option


def test_the_plan_sizes_activations_from_the_config_when_it_has_the_shape() -> None:
    ctx, option = _option(traits_from_config(LLAMA_8B, origin="test"))
    term = option.estimate.term("activations")
    tokens = ctx.limits.max_num_batched_tokens
    assert tokens is not None
    expected, formula = activation_peak(
        ActivationShape.from_traits(ctx.request.traits),  # type: ignore[arg-type]
        tokens=tokens,
        sequences=ctx.limits.max_num_seqs,
    )
    assert term.per_gpu_bytes == expected and term.formula == formula
    assert "from the model's shape" in term.basis and "ASSUMED" not in term.basis


def test_without_the_shape_the_term_says_it_is_assumed() -> None:
    bare = ModelTraits(params_total=8_000_000_000, sources={})
    _, option = _option(bare)
    term = option.estimate.term("activations")
    assert term.basis.startswith("ASSUMED") and term.formula.startswith("2.5 GiB x max(1, ")
    assert option.layout == Layout()
