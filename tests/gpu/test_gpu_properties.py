"""Properties of choose_gpu over generated models (hypothesis).

"Larger" means the same model (same traits, so the same rule fires) with more bytes of weights or
more layers. Across rules the seed policy is deliberately not monotone: the user's rule gives an
~18B MoE a whole H100 where the generic MoE rule would start at an L40S.
"""

from __future__ import annotations

from dataclasses import replace

from gpu_fixture_requests import facts
from hypothesis import given, settings
from hypothesis import strategies as st

from modelformats.errors import NoFittingGpuError
from modelformats.gpu import GpuDecision, GpuRequest, choose_gpu
from modelformats.traits import ModelTraits

HEADS = st.sampled_from([(8, 8), (16, 4), (24, 8), (28, 4), (32, 8), (40, 8), (48, 8), (64, 8), (96, 8), (128, 128)])


@st.composite
def requests(draw: st.DrawFn) -> GpuRequest:
    heads, kv = draw(HEADS)
    traits = ModelTraits(
        is_moe=draw(st.booleans()),
        num_layers=draw(st.integers(8, 128)),
        num_attention_heads=heads,
        num_kv_heads=kv,
        head_dim=draw(st.sampled_from([64, 128, 256])),
        max_position_embeddings=draw(st.sampled_from([None, 4096, 32768, 131072])),
        params_total=draw(st.integers(10**8, 2 * 10**12)),
    )
    return GpuRequest(
        traits=traits,
        weights_bytes=draw(st.integers(10**8, 3 * 10**12)),
        weights_basis="generated",
        engine=draw(st.sampled_from(["vllm", "llamacpp"])),
        **facts(draw(st.sampled_from(["gguf", "safetensors", "awq", "fp8"]))),
        max_num_seqs=draw(st.sampled_from([None, 1, 4, 32])),
    )


def _decide(request: GpuRequest, policy: str) -> GpuDecision | None:
    try:
        return choose_gpu(request, policy=policy)
    except NoFittingGpuError:
        return None


def _total_memory(d: GpuDecision) -> int:
    return d.choice.gpu.usable_memory_bytes * d.choice.total_gpus


POLICY = st.sampled_from(["seed", "cost"])


@settings(max_examples=150, deadline=None)
@given(request=requests(), extra=st.integers(0, 10**12), more_layers=st.integers(0, 64), policy=POLICY)
def test_a_larger_model_never_gets_less_gpu_memory(request, extra, more_layers, policy):
    small = _decide(request, policy)
    traits = request.traits
    assert traits.num_layers is not None and request.weights_bytes is not None
    larger = replace(
        request,
        weights_bytes=request.weights_bytes + extra,
        traits=replace(traits, num_layers=traits.num_layers + more_layers),
    )
    big = _decide(larger, policy)
    if small is None:
        assert big is None
    elif big is not None:
        assert big.rule.name == small.rule.name
        assert _total_memory(big) >= _total_memory(small)


@settings(max_examples=150, deadline=None)
@given(request=requests(), policy=POLICY)
def test_decisions_are_valid(request, policy):
    d = _decide(request, policy)
    if d is None:
        return
    lim = d.limits
    assert 0 < lim.gpu_memory_utilization <= 1
    assert 0 < d.choice.gpu_memory_utilization <= 1
    heads, kv = request.traits.num_attention_heads, request.traits.num_kv_heads
    assert heads is not None and kv is not None
    tp = lim.tensor_parallel_size
    assert heads % tp == 0 and (kv % tp == 0 or tp % kv == 0)
    assert tp * lim.pipeline_parallel_size == (d.choice.total_gpus if request.engine == "vllm" else 1)
    assert d.choice.count <= d.choice.gpu.max_count
    assert d.choice.gpu.compute_capability >= d.compute_capability.minimum
    assert d.memory.fits(d.choice.gpu.usable_memory_bytes, d.choice.gpu_memory_utilization)
    if request.engine == "llamacpp":
        assert d.choice.nodes == 1
    if d.choice.nodes > 1:
        assert d.launch is not None and lim.nnodes == d.choice.nodes
    if d.rule.name in {"moe-18b-h100", "moe"}:
        assert tp == 1  # the user's MoE rules keep tensor parallelism off
    # Cost never pays more than seed for the same request.
    if d.other is not None:
        seed, cost = (d, d.other) if policy == "seed" else (d.other, d)
        assert cost.price_per_hour <= seed.price_per_hour
    for term in d.memory.terms:
        assert f"Memory {term.name}" in "\n".join(d.explanation)
