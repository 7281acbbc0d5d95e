"""Golden decisions for requests shaped like every shared fixture listing (see gpu_fixture_requests.py).

Each row: rule fired, seed GPUs and $/h, cost GPUs and $/h, max_model_len, max_num_seqs, and the
(tensor, pipeline) parallel sizes of both answers. Shapes are hand-written from the models' published
configs where the listings lack them; the fixture module says which.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpu_fixture_requests import FIXTURES, Fixture

from modelformats.gpu import choose_gpu

LISTINGS = Path(__file__).parents[1] / "data" / "listings"

GOLDEN = {
    "target GGUF Q8_0 (listing only)": ("moe-18b-h100 | H100 3.95 | L40S 1.95 | 4096x4 | tp1 pp1 | tp1 pp1"),
    "target GGUF Q8_0 (header-shaped)": "moe-18b-h100 | H100 3.95 | L4:2 1.60 | 4096x4 | tp1 pp1 | tp1 pp2",
    "target source BF16 (listing only)": ("moe-18b-h100 | H100 3.95 | A100-80GB 2.50 | 4096x4 | tp1 pp1 | tp1 pp1"),
    "4X3B 10B GGUF Q4_k_m": "moe | L40S 1.95 | L4 0.80 | 8192x8 | tp1 pp1 | tp1 pp1",
    "Mistral-Nemo EXL2 (as the GPU policy sees it; the planner refuses EXL2 first)": (
        "default | L40S 1.95 | L40S 1.95 | 8192x16 | tp1 pp1 | tp1 pp1"
    ),
    "Qwen2.5-7B AWQ": "default | L40S 1.95 | L4 0.80 | 8192x16 | tp1 pp1 | tp1 pp1",
    "Llama-2-7B GPTQ (MHA)": "default | A100-80GB 2.50 | L4:3 2.40 | 4096x16 | tp1 pp1 | tp1 pp3",
    "Mistral-7B v0.2 GGUF Q4_K_M": "default | L40S 1.95 | L4:2 1.60 | 8192x16 | tp1 pp1 | tp1 pp2",
    "Llama-3.1-8B BF16 (the planner refuses the incomplete upload first)": (
        "default | L40S 1.95 | L40S 1.95 | 8192x16 | tp1 pp1 | tp1 pp1"
    ),
    "Llama-3.1-8B GGUF Q4_K_M": "default | L40S 1.95 | L4:2 1.60 | 8192x16 | tp1 pp1 | tp1 pp2",
    "DeepSeek-V2-Lite BF16 (MoE, MLA)": "moe-18b-h100 | H100 3.95 | L4:3 2.40 | 4096x4 | tp1 pp1 | tp1 pp3",
    # vLLM 0.33 pages 52 sliding layers as 6 groups of 10 (8 padding layers) and admits the prefilling
    # sequence with window - 1 + 2 x 8,192 in-flight tokens (capped at 8,192): 17.72 -> 22.56 GB of KV.
    "gemma-3-27b GGUF Q4_K_M (5 of 6 layers sliding)": (
        "default | A100-80GB 2.50 | L4:3 2.40 | 8192x16 | tp1 pp1 | tp1 pp3"
    ),
    "unsloth Llama-3.1-8B GGUF Q4_K_M (not bnb)": ("llamacpp | L40S 1.95 | T4 0.59 | 8192x4 | tp1 pp1 | tp1 pp1"),
    "vicuna-7b fp16 .bin": "default | A100-80GB 2.50 | A100-80GB 2.50 | 4096x16 | tp1 pp1 | tp1 pp1",
    "Mistral-Nemo BF16 (no sizes)": "default | A100-80GB 2.50 | L4:3 2.40 | 8192x16 | tp1 pp1 | tp1 pp3",
    "Llama-3.1-8B MLX (as the GPU policy sees it; vLLM cannot load MLX)": (
        "default | L40S 1.95 | L40S 1.95 | 8192x16 | tp1 pp1 | tp1 pp1"
    ),
    "Mixtral-8x7B BF16 (no sizes)": "moe | H200 4.54 | H200 4.54 | 8192x8 | tp1 pp1 | tp1 pp1",
    "Llama-3-70Bx2 MoE GGUF Q8_0 (3 byte-split parts)": ("moe | B200 6.25 | B200 6.25 | 8192x8 | tp1 pp1 | tp1 pp1"),
    "Llama-3.1-8B FP8 (compressed-tensors)": "default | L40S 1.95 | L4:2 1.60 | 8192x16 | tp1 pp1 | tp1 pp2",
    "DeepSeek-R1 GGUF Q4_K_M on llama.cpp (9 shards)": (
        "llamacpp | B300:2 14.20 | B300:2 14.20 | 8192x4 | tp1 pp1 | tp1 pp1"
    ),
    "gemma-3-1b GGUF Q4_K_M": "default | L40S 1.95 | T4 0.59 | 8192x16 | tp1 pp1 | tp1 pp1",
}


def test_every_shared_listing_has_a_fixture_request():
    listed = {p.name for p in LISTINGS.glob("*.json")}
    assert listed == {f.listing for f in FIXTURES}
    assert set(GOLDEN) == {f.label for f in FIXTURES}


def _parallel(text: str) -> tuple[int, int]:
    tp, pp = text.split()
    return int(tp.removeprefix("tp")), int(pp.removeprefix("pp"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.label for f in FIXTURES])
def test_golden_decision(fixture: Fixture):
    rule, seed_text, cost_text, limits, seed_par, cost_par = (p.strip() for p in GOLDEN[fixture.label].split("|"))
    seed_gpu, seed_price = seed_text.split()[0], float(seed_text.split()[1])
    cost_gpu, cost_price = cost_text.split()[0], float(cost_text.split()[1])
    seed = choose_gpu(fixture.request, policy="seed")
    cost = choose_gpu(fixture.request, policy="cost")
    assert seed.rule.name == cost.rule.name == rule
    assert (seed.choice.modal_gpu, seed.price_per_hour) == (seed_gpu, seed_price)
    assert (cost.choice.modal_gpu, cost.price_per_hour) == (cost_gpu, cost_price)
    assert f"{seed.limits.max_model_len}x{seed.limits.max_num_seqs}" == limits
    assert (seed.limits.tensor_parallel_size, seed.limits.pipeline_parallel_size) == _parallel(seed_par)
    assert (cost.limits.tensor_parallel_size, cost.limits.pipeline_parallel_size) == _parallel(cost_par)
    # Each answer carries the other; the difference is shown exactly when the hardware differs.
    assert seed.other is not None and seed.other.choice.modal_gpu == cost_gpu
    assert cost.other is not None and cost.other.choice.modal_gpu == seed_gpu
    if seed_gpu == cost_gpu:
        assert seed.price_difference_per_hour is None
        assert seed.explanation[-1] == "The cost policy chooses the same GPUs."
    else:
        assert seed.price_difference_per_hour == round(cost_price - seed_price, 2)
        assert cost.price_difference_per_hour == round(seed_price - cost_price, 2)
    # Cost never pays more than seed for the same limits, and both answers fit their GPUs; a seed rule
    # naming its GPU may keep it when only an assumed KV bound overflows (and must then say so).
    assert cost.price_per_hour <= seed.price_per_hour
    for d in (seed, cost):
        assert d.memory.fits(d.choice.gpu.usable_memory_bytes, d.choice.gpu_memory_utilization)
    json.dumps(seed.to_dict())
