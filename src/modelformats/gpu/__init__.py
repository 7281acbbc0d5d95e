"""GPU policy: Modal's GPU catalogue, the memory estimate, the rule registry and `choose_gpu`.

    from modelformats.gpu import GpuRequest, choose_gpu

    decision = choose_gpu(GpuRequest(traits=traits, weights_bytes=19_555_253_952, weights_basis="Q8_0"))
    decision.gpu_dict()["name"], decision.limits.max_num_seqs  # ("H100", 4) for the ~18B MoE target

See docs/gpu-policy.md.
"""

from __future__ import annotations

from modelformats.gpu.capability import (
    DTYPE_CAPABILITY_FLOORS,
    CapabilityFloor,
    CapabilityRequirement,
    required_compute_capability,
)
from modelformats.gpu.catalogue import (
    GPU_CATALOGUE,
    GpuSelection,
    GpuType,
    PriceQuote,
    catalogue_dicts,
    format_compute_capability,
    get_gpu,
    parse_compute_capability,
    parse_gpu,
    render_catalogue,
)
from modelformats.gpu.decision import (
    MAX_NODES,
    GpuChoice,
    GpuDecision,
    GpuRequest,
    GpuSummary,
    LaunchFacts,
    ParallelOption,
    RuntimeLimits,
)
from modelformats.gpu.estimate import (
    OVERHEAD_CONSTANTS,
    KvShape,
    Layout,
    MemoryEstimate,
    MemorySummary,
    MemoryTerm,
    OverheadConstant,
    WeightsSize,
    estimate_memory,
    resolve_kv_shape,
)
from modelformats.gpu.policy import (
    POLICIES,
    GpuPolicy,
    PolicyRegistry,
    choose_gpu,
    cost_policy,
    default_policies,
    seed_policy,
)
from modelformats.gpu.rules import (
    GpuRule,
    RuleMatch,
    RuleRegistry,
    RuleSettings,
    RuleSubject,
    builtin_rules,
    default_rules,
)
from modelformats.gpu.search import GpuSearch, SearchSpace, cost_search, seed_search
from modelformats.gpu.sizing import GpuOption

__all__ = [
    "DTYPE_CAPABILITY_FLOORS",
    "GPU_CATALOGUE",
    "MAX_NODES",
    "OVERHEAD_CONSTANTS",
    "POLICIES",
    "CapabilityFloor",
    "CapabilityRequirement",
    "GpuChoice",
    "GpuDecision",
    "GpuOption",
    "GpuPolicy",
    "GpuRequest",
    "GpuRule",
    "GpuSearch",
    "GpuSelection",
    "GpuSummary",
    "GpuType",
    "KvShape",
    "LaunchFacts",
    "Layout",
    "MemoryEstimate",
    "MemorySummary",
    "MemoryTerm",
    "OverheadConstant",
    "ParallelOption",
    "PolicyRegistry",
    "PriceQuote",
    "RuleMatch",
    "RuleRegistry",
    "RuleSettings",
    "RuleSubject",
    "RuntimeLimits",
    "SearchSpace",
    "WeightsSize",
    "builtin_rules",
    "catalogue_dicts",
    "choose_gpu",
    "cost_policy",
    "cost_search",
    "default_policies",
    "default_rules",
    "estimate_memory",
    "format_compute_capability",
    "get_gpu",
    "parse_compute_capability",
    "parse_gpu",
    "render_catalogue",
    "required_compute_capability",
    "resolve_kv_shape",
    "seed_policy",
    "seed_search",
]
