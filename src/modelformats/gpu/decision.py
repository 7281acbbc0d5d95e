"""The GPU policy's answer and question as values: `GpuRequest` in, `GpuDecision` out.

`GpuDecision` carries the GPUs (`GpuChoice`), the engine limits (`RuntimeLimits`, the one record of
them; `RuntimeSpec` adds only how the server listens), the memory estimate, the rule that fired,
the parallel layouts offered and multi-node launch facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelformats.engines.base import EngineTraits, RuntimeLimits, RuntimeSpec
from modelformats.errors import InvalidRequestError
from modelformats.gpu.capability import CapabilityFloor, CapabilityRequirement
from modelformats.gpu.catalogue import (
    GpuSelection,
    GpuType,
    format_compute_capability,
    parse_compute_capability,
    parse_gpu,
)
from modelformats.gpu.estimate import MemoryEstimate
from modelformats.gpu.rules import GpuRule
from modelformats.traits import ModelTraits
from modelformats.weightbytes import WeightBytes

__all__ = [
    "ENGINES",
    "MAX_NODES",
    "GpuChoice",
    "GpuDecision",
    "GpuRequest",
    "GpuSummary",
    "LaunchFacts",
    "ParallelOption",
    "PolicyComparison",
    "RuntimeLimits",
]

# The built-in engines a request may name without passing their `engine_traits`.
ENGINES = ("vllm", "llamacpp")
# Nodes a multi-node plan may span unless the request says otherwise (our limit, not Modal's).
MAX_NODES = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuRequest:
    """What the GPU policy is asked: the model, its weights, the engine, and the user's overrides."""

    traits: ModelTraits
    weights_bytes: int | None = None
    weights_basis: str = ""
    # Fallback when `weights_bytes` is None: parameters (else traits.params_total) x bytes per weight.
    params: int | None = None
    bytes_per_weight: float | None = None
    bytes_per_weight_basis: str = ""
    # Bytes per weight as the format stores them (its strategy's FileSelection.weight_bytes): sizes the
    # weights without file sizes, and counts parameters from file sizes when nothing else does.
    weight_bytes: WeightBytes | None = None
    engine: str = "vllm"
    # What the engine declares about sizing and layout (`Engine.traits`); None: the built-in engine `engine`'s.
    # Filled in on construction, so it is never None on a request.
    engine_traits: EngineTraits | None = None
    # The format's name (for rules and messages) and its facts (its strategy's `serving`).
    format: str | None = None
    quantization: str | None = None
    capability_floor: CapabilityFloor | None = None
    weights_in_torch_dtype: bool = True
    # The engine's own floor: "8.9", 8.9 or (8, 9); both this and the format's apply.
    min_compute_capability: tuple[int, int] | str | float | None = None
    # User overrides.
    gpu: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    enforce_eager: bool | None = None
    # KV cache element size: 2 for bf16/f16 (vLLM 'auto', llama.cpp's default f16), 1 for fp8.
    kv_cache_bytes_per_element: float = 2.0
    # How many layers use traits.sliding_window (Gemma 3: 5 of every 6); None = unknown.
    sliding_window_layers: int | None = None
    max_nodes: int = MAX_NODES

    def __post_init__(self) -> None:
        if self.engine_traits is None:
            from modelformats.engines.builtin import engine_traits

            object.__setattr__(self, "engine_traits", engine_traits(self.engine))
        for name in ("weights_bytes", "params", "max_model_len", "max_num_seqs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (0 if name == "weights_bytes" else 1)):
                raise InvalidRequestError(f"{name} must be a positive integer, got {value!r}.")
        if self.bytes_per_weight is not None and not self.bytes_per_weight > 0:
            raise InvalidRequestError(f"bytes_per_weight must be > 0, got {self.bytes_per_weight!r}.")
        if not self.kv_cache_bytes_per_element > 0:
            raise InvalidRequestError(
                f"kv_cache_bytes_per_element must be > 0, got {self.kv_cache_bytes_per_element!r}."
            )
        if self.max_nodes < 1:
            raise InvalidRequestError(f"max_nodes must be >= 1, got {self.max_nodes}.")
        if self.gpu is not None:
            parse_gpu(self.gpu)  # fail early on an unknown type or a bad count
        if self.min_compute_capability is not None:
            parse_compute_capability(self.min_compute_capability)


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuChoice:
    """The GPUs: type, count per node, nodes, utilization and price (all GPUs, per hour)."""

    gpu: GpuType
    count: int
    nodes: int = 1
    gpu_memory_utilization: float
    modifier: str = ""

    @property
    def total_gpus(self) -> int:
        return self.count * self.nodes

    @property
    def price_per_hour(self) -> float:
        return round(self.gpu.price_per_hour * self.total_gpus, 2)

    @property
    def usable_bytes(self) -> int:
        return self.gpu.usable_memory_bytes * self.total_gpus

    @property
    def modal_gpu(self) -> str:
        return GpuSelection(gpu=self.gpu, count=self.count, modifier=self.modifier).modal_string

    def describe(self) -> str:
        """`H100 x1`, `L40S x2`, `2 nodes x H100:8`."""
        if self.nodes > 1:
            return f"{self.nodes} nodes x {self.gpu.name}:{self.count}"
        return f"{self.gpu.name} x{self.count}"

    def same_hardware(self, other: GpuChoice) -> bool:
        return (self.gpu.name, self.count, self.nodes) == (other.gpu.name, other.count, other.nodes)


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuSummary:
    """The plan's view of a GPU decision (its `gpu` object): exactly the fields the JSON carries.

    `GpuDecision` holds the catalogue's `GpuType` and the rule itself, which a plan file does not; this
    record is what a plan keeps of them, and `from_dict(to_dict())` gives it back unchanged.
    """

    name: str
    count: int
    nodes: int
    gpu_memory_utilization: float
    # All GPUs, per hour.
    price_per_hour: float
    policy: str
    rule: str
    # Modal's GPU string ("H100:2").
    modal: str
    # Usable memory of one GPU.
    memory_bytes_per_gpu: int
    price_per_gpu_hour: float
    price_source: str
    price_date: str
    price_secondary: bool
    # "8.9"
    compute_capability: str
    # True when the user's --gpu replaced the policy's choice.
    from_override: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "nodes": self.nodes,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "price_per_hour": self.price_per_hour,
            "policy": self.policy,
            "rule": self.rule,
            "modal": self.modal,
            "memory_bytes_per_gpu": self.memory_bytes_per_gpu,
            "price_per_gpu_hour": self.price_per_gpu_hour,
            "price_source": self.price_source,
            "price_date": self.price_date,
            "price_secondary": self.price_secondary,
            "compute_capability": self.compute_capability,
            "from_override": self.from_override,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GpuSummary:
        return cls(
            name=str(d["name"]),
            count=int(d["count"]),
            nodes=int(d.get("nodes", 1)),
            gpu_memory_utilization=d["gpu_memory_utilization"],
            price_per_hour=d["price_per_hour"],
            policy=str(d["policy"]),
            rule=str(d["rule"]),
            modal=str(d["modal"]),
            memory_bytes_per_gpu=int(d["memory_bytes_per_gpu"]),
            price_per_gpu_hour=d["price_per_gpu_hour"],
            price_source=str(d["price_source"]),
            price_date=str(d["price_date"]),
            price_secondary=bool(d["price_secondary"]),
            compute_capability=str(d["compute_capability"]),
            from_override=bool(d.get("from_override", False)),
            notes=tuple(d.get("notes", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ParallelOption:
    """A way to spread the model over the chosen GPUs; the first one in a decision is the one planned."""

    label: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    enable_expert_parallel: bool = False
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "enable_expert_parallel": self.enable_expert_parallel,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParallelOption:
        return cls(
            label=str(d["label"]),
            tensor_parallel_size=int(d["tensor_parallel_size"]),
            pipeline_parallel_size=int(d["pipeline_parallel_size"]),
            enable_expert_parallel=bool(d.get("enable_expert_parallel", False)),
            reason=str(d["reason"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class LaunchFacts:
    """What a distributed runtime needs to start vLLM on several nodes.

    `{master_addr}` and `{node_rank}` are placeholders filled at launch (rank 0's IPv4, the node's rank).
    """

    nodes: int
    gpus_per_node: int
    modal_gpu: str
    # vLLM's own multi-process launcher: one `vllm serve` per node with these extra arguments.
    mp_head_args: tuple[str, ...]
    mp_worker_args: tuple[str, ...]
    # The Ray backend: start a Ray cluster, then one `vllm serve` on the head with `ray_serve_args`.
    ray_head_command: tuple[str, ...]
    ray_worker_command: tuple[str, ...]
    ray_serve_args: tuple[str, ...]
    ray_requirements: tuple[str, ...]
    modal_cluster: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "modal_gpu": self.modal_gpu,
            "mp": {"head_args": list(self.mp_head_args), "worker_args": list(self.mp_worker_args)},
            "ray": {
                "head_command": list(self.ray_head_command),
                "worker_command": list(self.ray_worker_command),
                "serve_args": list(self.ray_serve_args),
                "requirements": list(self.ray_requirements),
            },
            "modal_cluster": dict(self.modal_cluster),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LaunchFacts:
        mp, ray = d.get("mp") or {}, d.get("ray") or {}
        return cls(
            nodes=int(d["nodes"]),
            gpus_per_node=int(d["gpus_per_node"]),
            modal_gpu=str(d["modal_gpu"]),
            mp_head_args=tuple(mp.get("head_args", ())),
            mp_worker_args=tuple(mp.get("worker_args", ())),
            ray_head_command=tuple(ray.get("head_command", ())),
            ray_worker_command=tuple(ray.get("worker_command", ())),
            ray_serve_args=tuple(ray.get("serve_args", ())),
            ray_requirements=tuple(ray.get("requirements", ())),
            modal_cluster=dict(d.get("modal_cluster") or {}),
            notes=tuple(d.get("notes", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyComparison:
    """The other policy's answer for the same request, as a plan reports it."""

    policy: str
    rule: str
    gpu: str
    modal_gpu: str
    price_per_hour: float
    # other - this, when the hardware differs; None when both chose the same GPUs.
    price_difference_per_hour: float | None
    memory_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "rule": self.rule,
            "gpu": self.gpu,
            "modal_gpu": self.modal_gpu,
            "price_per_hour": self.price_per_hour,
            "price_difference_per_hour": self.price_difference_per_hour,
            "memory_bytes": self.memory_bytes,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicyComparison:
        diff = d.get("price_difference_per_hour")
        return cls(
            policy=str(d["policy"]),
            rule=str(d["rule"]),
            gpu=str(d["gpu"]),
            modal_gpu=str(d["modal_gpu"]),
            price_per_hour=float(d["price_per_hour"]),
            price_difference_per_hour=float(diff) if diff is not None else None,
            memory_bytes=int(d["memory_bytes"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuDecision:
    """The answer: GPUs, limits, the memory estimate with its terms, the rule, the other policy's answer."""

    policy: str
    rule: GpuRule
    choice: GpuChoice
    limits: RuntimeLimits
    memory: MemoryEstimate
    engine: str
    compute_capability: CapabilityRequirement
    explanation: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    # True when the user's --gpu replaced the policy's choice.
    gpu_from_override: bool = False
    parallel_options: tuple[ParallelOption, ...] = ()
    launch: LaunchFacts | None = None
    other: GpuDecision | None = None
    # other.price - this price, when the other policy chose different hardware.
    price_difference_per_hour: float | None = None
    # One-line notes for people: the rule vs the other policy, a forced --gpu larger than needed.
    notes: tuple[str, ...] = ()

    @property
    def price_per_hour(self) -> float:
        return self.choice.price_per_hour

    @property
    def comparison(self) -> PolicyComparison | None:
        """The other policy's answer, as the plan reports it."""
        o = self.other
        if o is None:
            return None
        return PolicyComparison(
            policy=o.policy,
            rule=o.rule.name,
            gpu=o.choice.describe(),
            modal_gpu=o.choice.modal_gpu,
            price_per_hour=o.price_per_hour,
            price_difference_per_hour=self.price_difference_per_hour,
            memory_bytes=o.memory.total_bytes,
        )

    def runtime_spec(
        self,
        *,
        served_model_name: str,
        port: int = 8000,
        host: str | None = None,
        experts_per_token: int | None = None,
        experts_per_token_key: str | None = None,
    ) -> RuntimeSpec:
        """The engine's `RuntimeSpec`: these limits plus how the server listens (llama.cpp ignores the
        utilization; it is only our fit budget there) and the user's expert override."""
        extra = {"host": host} if host is not None else {}
        return RuntimeSpec.from_limits(
            self.limits,
            served_model_name=served_model_name,
            port=port,
            experts_per_token=experts_per_token,
            experts_per_token_key=experts_per_token_key,
            **extra,
        )

    def gpu_summary(self) -> GpuSummary:
        """The plan's `gpu` object, typed."""
        c = self.choice
        return GpuSummary(
            name=c.gpu.name,
            count=c.count,
            nodes=c.nodes,
            gpu_memory_utilization=c.gpu_memory_utilization,
            price_per_hour=c.price_per_hour,
            policy=self.policy,
            rule=self.rule.name,
            modal=c.modal_gpu,
            memory_bytes_per_gpu=c.gpu.usable_memory_bytes,
            price_per_gpu_hour=c.gpu.price_per_hour,
            price_source=c.gpu.price.source,
            price_date=c.gpu.price.date,
            price_secondary=c.gpu.price.secondary,
            compute_capability=format_compute_capability(c.gpu.compute_capability),
            from_override=self.gpu_from_override,
            notes=self.notes,
        )

    def gpu_dict(self) -> dict[str, Any]:
        """The plan's `gpu` object."""
        return self.gpu_summary().to_dict()

    def to_dict(self) -> dict[str, Any]:
        other: dict[str, Any] | None = None
        if self.other is not None:
            other = {
                "policy": self.other.policy,
                "rule": self.other.rule.name,
                "gpu": self.other.gpu_dict(),
                "runtime": self.other.limits.to_dict(),
                "memory_bytes": self.other.memory.total_bytes,
                "price_per_hour": self.other.price_per_hour,
            }
        return {
            "gpu": self.gpu_dict(),
            "runtime": self.limits.to_dict(),
            "memory": self.memory.to_dict(),
            "policy": self.policy,
            "rule": self.rule.to_dict(),
            "engine": self.engine,
            "compute_capability": self.compute_capability.to_dict(),
            "explanation": list(self.explanation),
            "warnings": list(self.warnings),
            "parallel_options": [p.to_dict() for p in self.parallel_options],
            "launch": self.launch.to_dict() if self.launch is not None else None,
            "other": other,
            "price_difference_per_hour": self.price_difference_per_hour,
        }
