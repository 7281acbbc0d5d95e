"""choose_gpu on the headline target, overrides, multi-GPU/multi-node plans and pinned errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from gpu_fixture_requests import FIXTURES, TARGET_PARAMS, facts

from modelformats.engines.base import RuntimeSpec
from modelformats.errors import InvalidRequestError, NoFittingGpuError, UnknownGpuError
from modelformats.gpu import GpuRequest, GpuRule, RuleRegistry, RuleSettings, choose_gpu
from modelformats.gpu.estimate import GIB
from modelformats.traits import ModelTraits

BY_LABEL = {f.label: f.request for f in FIXTURES}
LISTING_ONLY = BY_LABEL["target GGUF Q8_0 (listing only)"]
HEADER_SHAPED = BY_LABEL["target GGUF Q8_0 (header-shaped)"]
SOURCE_BF16 = BY_LABEL["target source BF16 (listing only)"]
Q8_0_BYTES = TARGET_PARAMS * 34 // 32


def test_target_seed_is_the_users_rule_with_every_term_shown():
    d = choose_gpu(LISTING_ONLY)
    assert d.policy == "seed" and d.rule.name == "moe-18b-h100"
    assert d.gpu_dict() | {} == d.to_dict()["gpu"]
    g = d.gpu_dict()
    assert (g["name"], g["count"], g["nodes"], g["gpu_memory_utilization"], g["price_per_hour"]) == (
        "H100",
        1,
        1,
        0.75,
        3.95,
    )
    lim = d.limits
    assert (lim.max_model_len, lim.max_num_seqs, lim.tensor_parallel_size) == (4096, 4, 1)
    assert (lim.enable_chunked_prefill, lim.max_num_batched_tokens, lim.block_size) == (False, 4096, 16)
    terms = {t.name: t for t in d.memory.terms}
    assert list(terms) == ["weights", "kv_cache", "activations", "cuda_graphs", "non_torch", "cuda_context"]
    assert terms["weights"].bytes == Q8_0_BYTES == 19_555_253_952
    # No config.json/GGUF header recorded: the KV term is an assumed, labelled upper bound.
    kv = terms["kv_cache"]
    assert kv.assumed and kv.exact_with is not None and "num_key_value_heads" in kv.exact_with
    # An assumed (upper-bound) shape is sized for vLLM's startup minimum: one max_model_len sequence.
    assert kv.bytes == 2 * 4672 * 2 * 1 * 73 * 4096
    assert kv.formula == (
        "2 x 73 layers x 4,672 K/V width x 2 B x 4,096 max_model_len x 1 sequence (vLLM's startup minimum: "
        "the shape is an assumed upper bound, so the 4 max_num_seqs share what is left instead of being reserved)"
    )
    assert (terms["activations"].bytes, terms["cuda_graphs"].bytes) == (5 * GIB // 2, GIB)
    assert not terms["cuda_context"].in_budget
    assert "Memory kv_cache [ASSUMED]: 5.59 GB = 2 x 73 layers" in "\n".join(d.explanation)
    # The listing records no context length: the rule's cap is said to be unverified, with the fix.
    assert d.warnings[0].startswith("max_model_len 4,096 is unverified: the model's own context length is not known")
    assert d.warnings[1].startswith("KV cache sized from an assumption, not the model's shape: ASSUMED upper bound")
    assert d.explanation[-1] == (
        "The cost policy would choose L40S x1 at $1.95/h ($2.00/h less than this plan's $3.95/h)."
    )
    assert d.price_difference_per_hour == -2.0


def test_target_with_header_shapes_has_an_exact_kv_term():
    d = choose_gpu(HEADER_SHAPED)
    kv = d.memory.term("kv_cache")
    assert not kv.assumed and kv.exact_with is None
    # 2 x 28 layers x 8 KV heads x 128 head dim x 2 B x (4,096 x 4) tokens
    assert kv.bytes == 2 * 28 * 8 * 128 * 2 * 4096 * 4 == 1_879_048_192
    assert d.memory.kv_bytes_per_token == 114_688
    assert d.choice.modal_gpu == "H100" and d.gpu_dict()["gpu_memory_utilization"] == 0.75
    assert (
        "H100 x1 (policy 'seed', $3.95/h): 84.93 GB x 0.75 gpu_memory_utilization = 63.70 GB per GPU holds "
        "25.73 GB per GPU (40 %); compute capability 9.0 >= 6.0." in d.explanation
    )


def test_target_cost_is_the_cheapest_type_that_holds_it_with_the_saving():
    d = choose_gpu(LISTING_ONLY, policy="cost")
    # One L40S is the cheapest fit: two L4s as pipeline stages (no tensor parallelism for MoE; L4 has no
    # NVLink) would need about 17.5 GB each, above an L4's 23.08 GB (nvidia-smi's total less 1 GiB) x 0.75.
    assert (d.choice.gpu.name, d.choice.count, d.price_per_hour) == ("L40S", 1, 1.95)
    assert (d.limits.tensor_parallel_size, d.limits.pipeline_parallel_size) == (1, 1)
    assert d.other.choice.gpu.name == "H100"
    same = (d.other.limits.max_model_len, d.other.limits.max_num_seqs)
    assert (d.limits.max_model_len, d.limits.max_num_seqs) == same
    assert d.price_difference_per_hour == 2.0
    assert d.explanation[-1] == (
        "The seed policy would choose H100 x1 at $3.95/h ($2.00/h more than this plan's $1.95/h)."
    )
    # One L4 (24 GB x 0.75 = 18 GB) cannot hold the 19.56 GB of weights alone.
    assert d.memory.term("weights").bytes > 24 * 10**9 * 0.75


def test_runtime_spec_and_json():
    d = choose_gpu(HEADER_SHAPED)
    spec = d.runtime_spec(served_model_name="owner/name", port=9000)
    assert spec == RuntimeSpec(
        served_model_name="owner/name",
        max_model_len=4096,
        max_num_seqs=4,
        gpu_memory_utilization=0.75,
        enable_chunked_prefill=False,
        max_num_batched_tokens=4096,
        block_size=16,
        port=9000,
    )
    out = json.loads(json.dumps(d.to_dict()))
    assert set(out) >= {"gpu", "runtime", "memory", "warnings", "explanation", "other", "rule", "launch"}
    assert out["other"]["gpu"]["name"] == "L4" and out["price_difference_per_hour"] == -2.35
    assert out["memory"]["terms"][1]["name"] == "kv_cache"


def test_gpu_override_wins_and_the_other_policy_is_still_shown():
    d = choose_gpu(replace(HEADER_SHAPED, gpu="h100!:2"))
    assert d.gpu_from_override and d.choice.modal_gpu == "H100!:2" and d.choice.count == 2
    # The MoE rule keeps tensor parallelism off: two GPUs are two pipeline stages.
    assert (d.limits.tensor_parallel_size, d.limits.pipeline_parallel_size) == (1, 2)
    assert d.other is not None and not d.other.gpu_from_override and d.other.policy == "cost"
    assert d.parallel_options[0].reason == "pipeline stages only: rule 'moe-18b-h100' turns tensor parallelism off"
    ep = d.parallel_options[1]
    assert (ep.label, ep.tensor_parallel_size, ep.enable_expert_parallel) == ("expert parallel", 2, True)


def test_user_limits_override_the_rule_and_say_so():
    d = choose_gpu(replace(HEADER_SHAPED, max_model_len=16384, max_num_seqs=2))
    assert (d.limits.max_model_len, d.limits.max_num_seqs, d.limits.max_num_batched_tokens) == (
        16384,
        2,
        16384,
    )
    assert d.warnings == ("max_model_len 16,384 is above rule 'moe-18b-h100''s cap of 4,096.",)


def test_dense_model_tensor_parallel_divides_heads_on_nvlink():
    traits = ModelTraits(
        num_layers=80,
        hidden_size=8192,
        num_attention_heads=64,
        num_kv_heads=8,
        head_dim=128,
        max_position_embeddings=131072,
        params_total=70_553_706_496,
        torch_dtype="bfloat16",
    )
    request = GpuRequest(traits=traits, weights_bytes=130 * 10**9, weights_basis="test", max_num_seqs=4)
    d = choose_gpu(request, policy="cost")
    # 145 GB in budget: H200 (135.1 GB at 0.9) misses, two NVLinked A100-80GB ($5.00) beat a B200 ($6.25).
    assert (d.choice.modal_gpu, d.price_per_hour, d.limits.tensor_parallel_size) == ("A100-80GB:2", 5.0, 2)
    assert d.parallel_options[0].reason == "tensor parallel over NVLink"
    assert d.memory.per_gpu_in_budget_bytes == 65 * 10**9 + d.memory.term("kv_cache").bytes // 2 + int(4.5 * GIB)
    # Seed prefers fewer GPUs: one B200 (162 GB at 0.9).
    assert d.other is not None and d.other.choice.modal_gpu == "B200"
    # Without a weight size, bf16 weights are params x 2 bytes (torch_dtype), not assumed.
    sized = choose_gpu(GpuRequest(traits=traits, **facts("safetensors")))
    assert sized.memory.term("weights").bytes == 141_107_412_992 and not sized.memory.term("weights").assumed


def test_multi_node_plan_carries_launch_facts():
    traits = ModelTraits(
        num_layers=126,
        hidden_size=16384,
        num_attention_heads=128,
        num_kv_heads=8,
        head_dim=128,
        max_position_embeddings=131072,
        params_total=1_250_000_000_000,
    )
    d = choose_gpu(GpuRequest(traits=traits, weights_bytes=2_500_000_000_000, weights_basis="hypothetical"))
    assert (d.choice.modal_gpu, d.choice.nodes, d.price_per_hour) == ("B300:8", 2, 113.6)
    lim = d.limits
    assert (lim.tensor_parallel_size, lim.pipeline_parallel_size, lim.nnodes) == (8, 2, 2)
    launch = d.launch
    assert launch is not None
    assert launch.mp_head_args == ("--node-rank", "0", "--master-addr", "{master_addr}")
    assert launch.mp_worker_args[-1] == "--headless"
    assert launch.ray_serve_args == ("--distributed-executor-backend", "ray")
    assert launch.modal_cluster["decorator"] == "@modal.clustered(size=2, rdma=True)"
    assert d.runtime_spec(served_model_name="m").nnodes == 2


def test_llamacpp_counts_everything_and_splits_layers():
    d = choose_gpu(BY_LABEL["DeepSeek-R1 GGUF Q4_K_M on llama.cpp (9 shards)"])
    names = [t.name for t in d.memory.terms]
    assert names == ["weights", "kv_cache", "compute_buffers", "cuda_context"]
    assert all(t.in_budget for t in d.memory.terms)
    assert d.limits.enable_chunked_prefill is None and d.limits.block_size is None
    assert d.rule.name == "llamacpp" and d.memory.layout.layer_split == 2 and d.parallel_options == ()
    assert "llama.cpp: all layers on the GPU (-ngl all), F16 KV cache, --ctx-size 32,768 shared by --parallel 4" in (
        "\n".join(d.explanation)
    )


def test_compute_capability_filters_types():
    d = choose_gpu(BY_LABEL["Llama-3.1-8B FP8 (compressed-tensors)"], policy="cost")
    assert d.compute_capability.minimum == (8, 9)
    # T4 (7.5) and A100 (8.0) would be cheaper per GB, but lack native FP8.
    assert d.choice.gpu.compute_capability >= (8, 9)


# --- pinned errors ---------------------------------------------------------------------------------


def test_override_that_does_not_fit():
    with pytest.raises(NoFittingGpuError) as exc:
        choose_gpu(replace(SOURCE_BF16, gpu="L40S"))
    assert str(exc.value) == (
        "No GPU holds the memory estimate for your --gpu: weights 36.81 GB + kv_cache 5.59 GB + "
        "activations 2.68 GB + cuda_graphs 1.07 GB + non_torch 0.54 GB + cuda_context 1.07 GB = 47.77 GB. "
        "The biggest option tried, L40S x1 (47.23 GB x 0.75 = 35.42 GB per GPU), is 11.27 GB short per "
        "GPU. To make it fit: a smaller quant (weights are 36.81 GB); a shorter --max-model-len (now "
        "4,096; the KV cache is 5.59 GB); fewer --max-num-seqs (now 4); a larger --gpu (or more of them, "
        "e.g. 'H100:2'); recording config.json or the GGUF header, so assumed terms become exact."
    )


def test_nothing_fits_names_the_biggest_option_and_the_fixes():
    traits = ModelTraits(
        num_layers=126,
        hidden_size=16384,
        num_attention_heads=128,
        num_kv_heads=8,
        head_dim=128,
        max_position_embeddings=131072,
        params_total=1_250_000_000_000,
    )
    request = GpuRequest(traits=traits, weights_bytes=20 * 10**12, weights_basis="hypothetical", max_nodes=2)
    with pytest.raises(NoFittingGpuError) as exc:
        choose_gpu(request, policy="cost")
    assert str(exc.value) == (
        "No GPU holds the memory estimate for policy 'cost', rule 'default': weights 20,000.00 GB + "
        "kv_cache 67.65 GB + activations 42.95 GB + cuda_graphs 17.18 GB + non_torch 17.18 GB + "
        "cuda_context 17.18 GB = 20,162.14 GB. The biggest option tried, 2 nodes x B300:8 (287.43 GB x 0.9 "
        "= 258.69 GB per GPU), is 1,000.37 GB short per GPU. To make it fit: a smaller quant (weights are "
        "20,000.00 GB); a shorter --max-model-len (now 8,192; the KV cache is 67.65 GB); fewer "
        "--max-num-seqs (now 16); more GPUs: allow more than 2 nodes (max_nodes)."
    )


def test_request_errors_are_pinned():
    t = replace(
        SOURCE_BF16.traits,
        max_position_embeddings=131072,
        sources={**SOURCE_BF16.traits.sources, "max_position_embeddings": "config.json of x/y"},
    )
    with pytest.raises(InvalidRequestError) as exc:
        choose_gpu(replace(SOURCE_BF16, traits=t, max_model_len=1_000_000))
    assert str(exc.value) == (
        "--max-model-len 1,000,000 exceeds the model's context of 131,072 tokens (max_position_embeddings, "
        "config.json of x/y); vLLM refuses a longer one. Use at most 131,072."
    )
    with pytest.raises(InvalidRequestError) as exc:
        choose_gpu(replace(BY_LABEL["Llama-3.1-8B FP8 (compressed-tensors)"], gpu="A100-80GB"))
    assert str(exc.value).startswith(
        "--gpu 'A100-80GB': A100-80GB has compute capability 8.0; these weights need >= 8.9 (fp8: >= 8.9, "
        "native FP8 tensor cores (Ada/Hopper and newer) (vllm 0.33.0 vllm/platforms/cuda.py:587"
    )
    with pytest.raises(InvalidRequestError) as exc:
        choose_gpu(GpuRequest(traits=ModelTraits()))
    assert str(exc.value) == (
        "Cannot size the weights: no file sizes, no parameter count. Pass weights_bytes, or params with "
        "bytes_per_weight (a listing with sizes, the Hub's safetensors summary or a GGUF header gives them)."
    )
    with pytest.raises(InvalidRequestError) as exc:
        choose_gpu(HEADER_SHAPED, policy="cheapest")
    assert str(exc.value) == "GPU policy 'cheapest' is not one of: seed, cost."
    with pytest.raises(InvalidRequestError) as exc:
        GpuRequest(traits=ModelTraits(), engine="sglang")
    assert str(exc.value) == "Engine 'sglang' is not one of: vllm, llamacpp."
    with pytest.raises(UnknownGpuError) as exc:
        GpuRequest(traits=ModelTraits(), gpu="V100")
    assert str(exc.value) == (
        "Unknown GPU type 'V100'; Modal offers: T4, L4, A10, L40S, A100-40GB, A100-80GB, RTX-PRO-6000, "
        "H100, H200, B200, B300."
    )
    with pytest.raises(InvalidRequestError) as exc:
        choose_gpu(HEADER_SHAPED, rules=RuleRegistry())
    assert str(exc.value) == (
        "No GPU rule matches this model (MoE: True, 18404944896 parameters, 19.56 GB of weights); "
        "registered: none. Register a catch-all rule (GpuRule with an empty RuleMatch) last."
    )


def test_other_policy_failure_becomes_a_warning():
    rules = RuleRegistry(
        [
            GpuRule(
                name="t4-only",
                reason="test: one T4 for everything",
                settings=RuleSettings(gpu="T4", gpu_count=1),
            )
        ]
    )
    d = choose_gpu(HEADER_SHAPED, policy="cost", rules=rules)
    assert d.other is None and d.price_difference_per_hour is None
    assert d.warnings[-1].startswith(
        "The seed policy finds no GPU: No GPU holds the memory estimate for policy 'seed', rule 't4-only': "
    )
    with pytest.raises(NoFittingGpuError):
        choose_gpu(HEADER_SHAPED, policy="seed", rules=rules)


def test_without_any_size_weights_are_an_assumed_16_bit_upper_bound():
    request = replace(LISTING_ONLY, bytes_per_weight=None, bytes_per_weight_basis="")
    d = choose_gpu(request)
    weights = d.memory.term("weights")
    assert weights.assumed and weights.bytes == TARGET_PARAMS * 2
    assert (
        weights.exact_with == "the file sizes of the weights (a listing with sizes, or the GGUF header's tensor table)"
    )
    assert d.warnings[1].startswith(
        "Weights sized from an assumption, not the file sizes: ASSUMED upper bound: 18,404,944,896 "
    )
    # 36.8 GB of assumed 16-bit weights + one assumed-shape sequence of KV still fit one H100 at 0.75.
    assert (d.choice.modal_gpu, d.limits.pipeline_parallel_size) == ("H100", 1)
    assert d.memory.per_gpu_in_budget_bytes > 40 * 10**9


def test_forced_gpus_with_unknown_heads_become_pipeline_stages():
    # No head counts (no config.json): tensor parallelism cannot be checked, so 2 NVLink GPUs are 2 stages.
    request = GpuRequest(traits=ModelTraits(params_total=7_600_000_000), weights_bytes=5_600_000_000, gpu="H100:2")
    d = choose_gpu(request)
    assert (d.choice.modal_gpu, d.limits.tensor_parallel_size, d.limits.pipeline_parallel_size) == ("H100:2", 1, 2)
