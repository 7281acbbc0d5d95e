"""Choose the GPU type, count and memory-bound engine limits for a model, and explain every number.

`choose_gpu(request, policy=...)` resolves the weights' size, fires the first matching rule, sizes
the memory (`estimate.py`) for each candidate layout and keeps the first (seed) or cheapest (cost)
one that fits. The answer always carries the other policy's answer and the price difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from modelformats.engines.base import RuntimeSpec
from modelformats.errors import InvalidRequestError, NoFittingGpuError
from modelformats.gpu.capability import CapabilityFloor, CapabilityRequirement, required_compute_capability
from modelformats.gpu.catalogue import (
    GPU_CATALOGUE,
    GpuSelection,
    GpuType,
    format_compute_capability,
    get_gpu,
    parse_compute_capability,
    parse_gpu,
)
from modelformats.gpu.estimate import (
    ACTIVATION_REFERENCE_TOKENS,
    KvShape,
    Layout,
    MemoryEstimate,
    WeightsSize,
    estimate_memory,
    format_bytes,
    resolve_kv_shape,
)
from modelformats.gpu.rules import GpuRule, RuleRegistry, RuleSubject, default_registry
from modelformats.traits import ModelTraits

__all__ = [
    "ENGINES",
    "MAX_NODES",
    "POLICIES",
    "GpuChoice",
    "GpuDecision",
    "GpuPolicy",
    "GpuRequest",
    "LaunchFacts",
    "ParallelOption",
    "RuntimeLimits",
    "choose_gpu",
]

POLICIES = ("seed", "cost")
ENGINES = ("vllm", "llamacpp")
# Nodes a multi-node plan may span unless the request says otherwise (our limit, not Modal's).
MAX_NODES = 4
# Bytes per weight of unquantized checkpoints, by torch_dtype.
_DTYPE_BYTES = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp32": 4.0}
# Without any size: assume 16-bit weights, the largest any serving format here stores (except F32).
_ASSUMED_BYTES_PER_WEIGHT = 2.0
# Without a parameter count either, the KV bound is sized for this many parameters per weight byte
# (4-bit weights: the smallest common quant, so the most parameters and the largest bound).
_ASSUMED_PARAMS_PER_BYTE = 2.0


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
    engine: str = "vllm"
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
        if self.engine not in ENGINES:
            raise InvalidRequestError(f"Engine {self.engine!r} is not one of: {', '.join(ENGINES)}.")
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
class RuntimeLimits:
    """The memory-bound engine settings (the fields of `RuntimeSpec` the GPU policy owns)."""

    max_model_len: int
    max_num_seqs: int
    gpu_memory_utilization: float
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    enable_expert_parallel: bool = False
    enable_chunked_prefill: bool | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False
    nnodes: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "enable_expert_parallel": self.enable_expert_parallel,
            "enable_chunked_prefill": self.enable_chunked_prefill,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "block_size": self.block_size,
            "enforce_eager": self.enforce_eager,
            "nnodes": self.nnodes,
        }


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

    @property
    def price_per_hour(self) -> float:
        return self.choice.price_per_hour

    @property
    def gpu_name(self) -> str:
        return self.choice.gpu.name

    def runtime_spec(self, *, served_model_name: str, port: int = 8000, host: str | None = None) -> RuntimeSpec:
        """The engine's `RuntimeSpec`; llama.cpp ignores the utilization (it is only our fit budget there)."""
        lim = self.limits
        extra = {"host": host} if host is not None else {}
        return RuntimeSpec(
            served_model_name=served_model_name,
            max_model_len=lim.max_model_len,
            max_num_seqs=lim.max_num_seqs,
            gpu_memory_utilization=lim.gpu_memory_utilization,
            tensor_parallel_size=lim.tensor_parallel_size,
            pipeline_parallel_size=lim.pipeline_parallel_size,
            enable_expert_parallel=lim.enable_expert_parallel,
            enable_chunked_prefill=lim.enable_chunked_prefill,
            max_num_batched_tokens=lim.max_num_batched_tokens,
            block_size=lim.block_size,
            enforce_eager=lim.enforce_eager,
            port=port,
            nnodes=lim.nnodes,
            **extra,
        )

    def gpu_dict(self) -> dict[str, Any]:
        """The plan's `gpu` object."""
        c = self.choice
        return {
            "name": c.gpu.name,
            "count": c.count,
            "nodes": c.nodes,
            "gpu_memory_utilization": c.gpu_memory_utilization,
            "price_per_hour": c.price_per_hour,
            "policy": self.policy,
            "rule": self.rule.name,
            "modal": c.modal_gpu,
            "memory_bytes_per_gpu": c.gpu.usable_memory_bytes,
            "price_per_gpu_hour": c.gpu.price_per_hour,
            "price_source": c.gpu.price.source,
            "price_date": c.gpu.price.date,
            "price_secondary": c.gpu.price.secondary,
            "compute_capability": format_compute_capability(c.gpu.compute_capability),
            "from_override": self.gpu_from_override,
        }

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


# --- resolution --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Context:
    """Everything resolved once per request; shared by both policies."""

    request: GpuRequest
    rule: GpuRule
    weights: WeightsSize
    params: int | None
    params_basis: str
    kv: KvShape
    limits: RuntimeLimits
    capability: CapabilityRequirement
    notes: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Option:
    choice: GpuChoice
    layout: Layout
    estimate: MemoryEstimate

    @property
    def shortfall(self) -> int:
        return self.estimate.shortfall_bytes(self.choice.gpu.usable_memory_bytes, self.choice.gpu_memory_utilization)

    @property
    def fits(self) -> bool:
        return self.shortfall <= 0


def _dtype_bytes(traits: ModelTraits) -> float | None:
    return _DTYPE_BYTES.get((traits.torch_dtype or "").lower())


def _resolve_params(request: GpuRequest) -> tuple[int | None, str]:
    t = request.traits
    if t.params_total:
        return t.params_total, t.sources.get("params_total", "model traits")
    if request.params:
        return request.params, "the request"
    if request.weights_bytes and request.bytes_per_weight:
        n = math.floor(request.weights_bytes / request.bytes_per_weight)
        return n, f"{format_bytes(request.weights_bytes)} / {request.bytes_per_weight:g} bytes per weight"
    return None, ""


def _resolve_weights(request: GpuRequest, params: int | None, params_basis: str) -> WeightsSize:
    if request.weights_bytes is not None:
        return WeightsSize(bytes=request.weights_bytes, basis=request.weights_basis or "size given by the caller")
    bpw = request.bytes_per_weight
    basis = request.bytes_per_weight_basis
    if bpw is None and request.weights_in_torch_dtype:
        bpw = _dtype_bytes(request.traits)
        basis = f"torch_dtype {request.traits.torch_dtype}"
    if params is None:
        raise InvalidRequestError(
            "Cannot size the weights: no file sizes, no parameter count. Pass weights_bytes, or params "
            "with bytes_per_weight (a listing with sizes, the Hub's safetensors summary or a GGUF header "
            "gives them)."
        )
    if bpw is not None:
        return WeightsSize(
            bytes=math.ceil(params * bpw),
            basis=f"{params:,} parameters ({params_basis}) x {bpw:g} bytes per weight ({basis or 'given'})",
        )
    return WeightsSize(
        bytes=math.ceil(params * _ASSUMED_BYTES_PER_WEIGHT),
        basis=(
            f"ASSUMED upper bound: {params:,} parameters ({params_basis}) x {_ASSUMED_BYTES_PER_WEIGHT:g} "
            "bytes per weight (16-bit; quantized files are smaller)"
        ),
        assumed=True,
        exact_with="the file sizes of the weights (a listing with sizes, or the GGUF header's tensor table)",
    )


def _shape_params(request: GpuRequest, params: int | None, params_basis: str, weights: WeightsSize) -> tuple[int, str]:
    t = request.traits
    if t.is_moe and t.params_active:
        return t.params_active, "active parameters: attention is not replicated per expert"
    if params is not None:
        return params, params_basis + ("; an MoE total, so the experts inflate the bound" if t.is_moe else "")
    n = math.ceil(weights.bytes * _ASSUMED_PARAMS_PER_BYTE)
    return (
        n,
        f"ASSUMED {_ASSUMED_PARAMS_PER_BYTE:g} parameters per weight byte (4-bit weights) of "
        f"{format_bytes(weights.bytes)}",
    )


def _resolve_limits(request: GpuRequest, rule: GpuRule) -> tuple[int, int, list[str], list[str]]:
    s = rule.settings
    native = request.traits.max_position_embeddings
    native_src = request.traits.sources.get("max_position_embeddings", "model traits")
    notes: list[str] = []
    warnings: list[str] = []
    if request.max_model_len is not None:
        length = request.max_model_len
        if native is not None and length > native:
            raise InvalidRequestError(
                f"--max-model-len {length:,} exceeds the model's context of {native:,} tokens "
                f"(max_position_embeddings, {native_src}); vLLM refuses a longer one. Use at most {native:,}."
            )
        notes.append(f"max_model_len {length:,} as requested")
        if length > s.max_model_len:
            warnings.append(f"max_model_len {length:,} is above rule '{rule.name}''s cap of {s.max_model_len:,}.")
    elif native is not None:
        length = min(native, s.max_model_len)
        notes.append(
            f"max_model_len {length:,} = min(rule cap {s.max_model_len:,}, the model's context {native:,} "
            f"from {native_src})"
        )
    else:
        length = s.max_model_len
        notes.append(f"max_model_len {length:,}: the rule's cap (the model's own context length is not recorded)")
    if request.max_num_seqs is not None:
        seqs = request.max_num_seqs
        notes.append(f"max_num_seqs {seqs} as requested")
        if seqs > s.max_num_seqs:
            warnings.append(f"max_num_seqs {seqs} is above rule '{rule.name}''s cap of {s.max_num_seqs}.")
    else:
        seqs = s.max_num_seqs
        notes.append(f"max_num_seqs {seqs}: the rule's cap")
    return length, seqs, notes, warnings


def _resolve(request: GpuRequest, registry: RuleRegistry) -> _Context:
    traits = request.traits
    params, params_basis = _resolve_params(request)
    weights = _resolve_weights(request, params, params_basis)
    subject = RuleSubject(
        is_moe=traits.is_moe,
        params_total=params,
        params_active=traits.params_active,
        weights_bytes=weights.bytes,
        format=request.format,
        engine=request.engine,
    )
    rule = registry.match(subject)
    if rule is None:
        raise InvalidRequestError(
            f"No GPU rule matches this model (MoE: {traits.is_moe}, {params or 'unknown'} parameters, "
            f"{format_bytes(weights.bytes)} of weights); registered: {', '.join(registry.names) or 'none'}. "
            "Register a catch-all rule (GpuRule with an empty RuleMatch) last."
        )
    length, seqs, notes, warnings = _resolve_limits(request, rule)
    shape_params, shape_basis = _shape_params(request, params, params_basis, weights)
    kv = resolve_kv_shape(
        traits,
        shape_params=shape_params,
        shape_params_basis=shape_basis,
        sliding_window_layers=request.sliding_window_layers,
        max_model_len=length,
    )
    s = rule.settings
    vllm = request.engine == "vllm"
    chunked = s.enable_chunked_prefill if vllm else None
    batched: int | None = None
    if vllm:
        # With chunked prefill off vLLM needs a whole prompt in one step (config/scheduler.py:317).
        if chunked is False:
            batched = max(length, s.max_num_batched_tokens or 0)
        else:
            batched = s.max_num_batched_tokens or max(ACTIVATION_REFERENCE_TOKENS, seqs)
    limits = RuntimeLimits(
        max_model_len=length,
        max_num_seqs=seqs,
        gpu_memory_utilization=s.gpu_memory_utilization,
        enable_chunked_prefill=chunked,
        max_num_batched_tokens=batched,
        block_size=s.block_size if vllm else None,
        enforce_eager=request.enforce_eager if request.enforce_eager is not None else s.enforce_eager,
    )
    # Two floors, the higher wins: the engine's own minimum for these weights (what it refuses below) and
    # the table's (what its native kernels need, e.g. FP8 tensor cores at 8.9 where vLLM would fall back).
    capability = required_compute_capability(
        engine=request.engine,
        floor=request.capability_floor,
        weights_in_torch_dtype=request.weights_in_torch_dtype,
        torch_dtype=traits.torch_dtype,
    )
    if request.min_compute_capability is not None:
        cc = parse_compute_capability(request.min_compute_capability)
        if cc > capability.minimum:
            capability = CapabilityRequirement(
                minimum=cc, reasons=(f">= {format_compute_capability(cc)} as the engine requires",)
            )
    if weights.assumed:
        warnings.append(
            f"Weights sized from an assumption, not the file sizes: {weights.basis}. Exact with {weights.exact_with}."
        )
    if kv.assumed:
        warnings.append(
            f"KV cache sized from an assumption, not the model's shape: {kv.basis}. Exact with {kv.exact_with}."
        )
    warnings.extend(kv.notes)
    return _Context(
        request=request,
        rule=rule,
        weights=weights,
        params=params,
        params_basis=params_basis,
        kv=kv,
        limits=limits,
        capability=capability,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


# --- layouts and candidates ----------------------------------------------------------------------------


def _tp_divides(ctx: _Context, tp: int) -> bool:
    """vLLM: heads % tp == 0 (config/model.py:1559); KV heads split or copy evenly (models/llama.py:144)."""
    heads = ctx.request.traits.num_attention_heads
    kv_heads = ctx.kv.kv_heads
    if not heads or not kv_heads or ctx.kv.assumed:
        return False
    return heads % tp == 0 and (kv_heads % tp == 0 or tp % kv_heads == 0)


def _layout(ctx: _Context, gpu: GpuType, count: int, nodes: int) -> Layout | None:
    """How `count x nodes` GPUs of `gpu` carry the model, or None when the engine cannot use them."""
    total = count * nodes
    if total == 1:
        return Layout()
    if ctx.request.engine != "vllm":
        # llama.cpp splits whole layers over the GPUs of one container; it has no multi-node mode here.
        return Layout(layer_split=count) if nodes == 1 else None
    tp_allowed = ctx.rule.settings.tensor_parallel and gpu.nvlink
    if nodes == 1:
        # Tensor parallel needs the head counts to divide; unknown heads (or no NVLink) mean pipeline stages.
        if tp_allowed and _tp_divides(ctx, count):
            return Layout(tensor_parallel_size=count)
        return Layout(pipeline_parallel_size=count)
    if tp_allowed:
        for tp in range(count, 0, -1):
            if count % tp == 0 and _tp_divides(ctx, tp):
                return Layout(tensor_parallel_size=tp, pipeline_parallel_size=total // tp, nodes=nodes)
    return Layout(pipeline_parallel_size=total, nodes=nodes)


def _option(ctx: _Context, gpu: GpuType, count: int, nodes: int, modifier: str = "") -> _Option | None:
    layout = _layout(ctx, gpu, count, nodes)
    if layout is None:
        return None
    lim = ctx.limits
    estimate = estimate_memory(
        engine=ctx.request.engine,
        weights=ctx.weights,
        kv=ctx.kv,
        max_model_len=lim.max_model_len,
        max_num_seqs=lim.max_num_seqs,
        max_num_batched_tokens=lim.max_num_batched_tokens,
        kv_cache_bytes_per_element=ctx.request.kv_cache_bytes_per_element,
        layout=layout,
        enforce_eager=lim.enforce_eager,
    )
    choice = GpuChoice(
        gpu=gpu,
        count=count,
        nodes=nodes,
        gpu_memory_utilization=lim.gpu_memory_utilization,
        modifier=modifier,
    )
    return _Option(choice=choice, layout=layout, estimate=estimate)


def _capable(ctx: _Context, gpus: Iterable[GpuType]) -> list[GpuType]:
    return [g for g in gpus if g.compute_capability >= ctx.capability.minimum]


def _single_node(ctx: _Context, gpus: list[GpuType], counts_first: bool) -> Iterator[_Option]:
    fixed = ctx.rule.settings.gpu_count
    top = max((g.max_count for g in gpus), default=1)
    counts = [fixed] if fixed is not None else list(range(1, top + 1))
    if counts_first:
        pairs = [(g, n) for n in counts for g in gpus if n <= g.max_count]
    else:
        pairs = [(g, n) for g in gpus for n in counts if n <= g.max_count]
    for gpu, n in pairs:
        option = _option(ctx, gpu, n, 1)
        if option is not None:
            yield option


def _multi_node(ctx: _Context, gpus: list[GpuType]) -> Iterator[_Option]:
    if ctx.rule.settings.gpu_count is not None:
        return
    for nodes in range(2, ctx.request.max_nodes + 1):
        for gpu in gpus:
            if gpu.multi_node:
                option = _option(ctx, gpu, gpu.max_count, nodes)
                if option is not None:
                    yield option


def _seed_types(ctx: _Context) -> list[GpuType]:
    s = ctx.rule.settings
    if s.gpu is not None:
        return [get_gpu(s.gpu)]
    return [get_gpu(n) for n in s.prefer] or list(GPU_CATALOGUE)


def _cheapest(options: list[_Option]) -> _Option:
    index = {g.name: i for i, g in enumerate(GPU_CATALOGUE)}
    # Price, then fewer GPUs, then more memory, then catalogue order.
    return min(
        options,
        key=lambda o: (
            o.choice.price_per_hour,
            o.choice.total_gpus,
            -o.choice.usable_bytes,
            index[o.choice.gpu.name],
        ),
    )


def _search(ctx: _Context, policy: str, override: GpuSelection | None) -> tuple[_Option | None, list[_Option]]:
    """The chosen option (None if nothing fits) and every option tried."""
    tried: list[_Option] = []
    if override is not None:
        option = _option(ctx, override.gpu, override.count, 1, override.modifier)
        if option is not None:
            tried.append(option)
            if option.fits:
                return option, tried
        return None, tried
    if policy == "seed":
        gpus = _capable(ctx, _seed_types(ctx))
        for option in _single_node(ctx, gpus, counts_first=True):
            tried.append(option)
            if option.fits:
                return option, tried
        for option in _multi_node(ctx, gpus):
            tried.append(option)
            if option.fits:
                return option, tried
        return None, tried
    gpus = _capable(ctx, GPU_CATALOGUE)
    tried.extend(_single_node(ctx, gpus, counts_first=False))
    fitting = [o for o in tried if o.fits]
    if not fitting:
        # Beyond one node only when no single node holds the model.
        for option in _multi_node(ctx, gpus):
            tried.append(option)
            if option.fits:
                fitting.append(option)
                break
    return (_cheapest(fitting) if fitting else None), tried


# --- errors and explanations ----------------------------------------------------------------------------


def _no_fit(ctx: _Context, policy: str, tried: list[_Option], override: GpuSelection | None) -> NoFittingGpuError:
    lim = ctx.limits
    if not tried and override is not None:
        return NoFittingGpuError(
            f"Your --gpu {override.gpu.name}:{override.count} cannot carry these weights as one engine "
            f"({ctx.request.engine}: no layout of {override.count} GPUs on one node). Pick another count or type."
        )
    if not tried:
        cc = format_compute_capability(ctx.capability.minimum)
        return NoFittingGpuError(
            f"No GPU in the catalogue can run these weights under policy '{policy}' (rule "
            f"'{ctx.rule.name}'): "
            f"they need compute capability >= {cc} ({'; '.join(ctx.capability.reasons)}). "
            "Choose weights in another format, or a rule whose GPUs meet it."
        )
    biggest = max(tried, key=lambda o: (o.choice.usable_bytes, -o.choice.price_per_hour))
    est = biggest.estimate
    c = biggest.choice
    budget = math.floor(c.gpu.usable_memory_bytes * c.gpu_memory_utilization)
    what = "your --gpu" if override is not None else f"policy '{policy}', rule '{ctx.rule.name}'"
    fixes = [
        f"a smaller quant (weights are {format_bytes(ctx.weights.bytes)})",
        f"a shorter --max-model-len (now {lim.max_model_len:,}; the KV cache is "
        f"{format_bytes(est.term('kv_cache').bytes)})",
        f"fewer --max-num-seqs (now {lim.max_num_seqs})",
    ]
    if override is not None:
        fixes.append("a larger --gpu (or more of them, e.g. 'H100:2')")
    elif ctx.request.engine == "vllm" and c.nodes >= ctx.request.max_nodes and c.gpu.multi_node:
        fixes.append(f"more GPUs: allow more than {ctx.request.max_nodes} nodes (max_nodes)")
    else:
        fixes.append("more GPUs: a rule with a larger GPU type, or vLLM for multi-GPU/multi-node plans")
    if ctx.kv.assumed or ctx.weights.assumed:
        fixes.append("recording config.json or the GGUF header, so assumed terms become exact")
    return NoFittingGpuError(
        f"No GPU holds the memory estimate for {what}: {est.summary()}. The biggest option tried, "
        f"{c.describe()} ({format_bytes(c.gpu.usable_memory_bytes)} x {c.gpu_memory_utilization:g} = "
        f"{format_bytes(budget)} per GPU), is {format_bytes(biggest.shortfall)} short per GPU. "
        f"To make it fit: {'; '.join(fixes)}."
    )


def _layout_reason(ctx: _Context, option: _Option) -> str:
    tp, pp = option.layout.tensor_parallel_size, option.layout.pipeline_parallel_size
    if tp > 1:
        return "tensor parallel over NVLink" + (", pipeline parallel across nodes" if pp > 1 else "")
    if not ctx.rule.settings.tensor_parallel:
        why = f"rule '{ctx.rule.name}' turns tensor parallelism off"
    elif not option.choice.gpu.nvlink:
        why = "no NVLink between these GPUs (vLLM advises pipeline over tensor parallelism)"
    elif ctx.kv.assumed or not ctx.request.traits.num_attention_heads:
        why = "the attention heads are unknown, so no tensor-parallel size can be checked"
    else:
        why = "no tensor-parallel size divides the attention and KV heads"
    return f"pipeline stages only: {why}"


def _parallel_options(ctx: _Context, option: _Option) -> tuple[ParallelOption, ...]:
    layout = option.layout
    if layout.world_size == 1 or ctx.request.engine != "vllm":
        return ()
    planned = ParallelOption(
        label="planned",
        tensor_parallel_size=layout.tensor_parallel_size,
        pipeline_parallel_size=layout.pipeline_parallel_size,
        reason=_layout_reason(ctx, option),
    )
    out = [planned]
    per_node = option.choice.count
    if ctx.request.traits.is_moe and _tp_divides(ctx, per_node):
        experts = ctx.request.traits.num_experts
        out.append(
            ParallelOption(
                label="expert parallel",
                tensor_parallel_size=per_node,
                pipeline_parallel_size=option.choice.nodes,
                enable_expert_parallel=True,
                reason=(
                    f"--enable-expert-parallel: the {experts or 'routed'} experts are spread over the "
                    f"{per_node} GPUs of a node instead of being sliced (attention stays tensor parallel)"
                ),
            )
        )
    return tuple(out)


def _launch(option: _Option) -> LaunchFacts | None:
    c = option.choice
    if c.nodes == 1:
        return None
    n = str(c.nodes)
    return LaunchFacts(
        nodes=c.nodes,
        gpus_per_node=c.count,
        modal_gpu=c.modal_gpu,
        mp_head_args=("--nnodes", n, "--node-rank", "0", "--master-addr", "{master_addr}"),
        mp_worker_args=(
            "--nnodes",
            n,
            "--node-rank",
            "{node_rank}",
            "--master-addr",
            "{master_addr}",
            "--headless",
        ),
        ray_head_command=("ray", "start", "--head", "--node-ip-address={master_addr}"),
        ray_worker_command=("ray", "start", "--address={master_addr}:6379"),
        ray_serve_args=("--distributed-executor-backend", "ray"),
        ray_requirements=("ray[default]",),
        modal_cluster={
            "decorator": f"@modal.clustered(size={c.nodes}, rdma=True)",
            "size": c.nodes,
            "rdma": True,
            "gpu": c.modal_gpu,
            "apt_install": ["libibverbs1"],
            "node_rank": "modal.Cluster.from_context().container_rank()",
            "master_addr": "modal.Cluster.from_context().container_ips(family='ipv4')[0]",
            "http": "app.server (clustered web functions are not supported); requests reach rank 0",
        },
        notes=(
            "Every container requests all GPUs of its host (Modal clusters).",
            "Since vLLM 0.18 Ray is not a vLLM dependency: install ray[default] for the Ray backend; Ray needs IPv4.",
            "There is no official Modal multi-node vLLM example: this layout is plausible but unverified there.",
        ),
    )


def _explain(ctx: _Context, policy: str, option: _Option, override: GpuSelection | None) -> tuple[str, ...]:
    c = option.choice
    lim = ctx.limits
    est = option.estimate
    out = [f"GPU rule '{ctx.rule.name}' fired ({ctx.rule.match.describe()}): {ctx.rule.reason}"]
    out.append("Limits: " + "; ".join(ctx.notes) + ".")
    for t in est.terms:
        tag = " [ASSUMED]" if t.assumed else ""
        where = "" if t.in_budget else " (outside the utilization budget)"
        out.append(f"Memory {t.name}{tag}: {format_bytes(t.bytes)}{where} = {t.formula}.")
    budget = math.floor(c.gpu.usable_memory_bytes * c.gpu_memory_utilization)
    knob = "gpu_memory_utilization" if ctx.request.engine == "vllm" else "headroom (llama.cpp has no utilization knob)"
    how = "--gpu as given" if override is not None else f"policy '{policy}'"
    out.append(
        f"{c.describe()} ({how}, ${c.price_per_hour:.2f}/h): {format_bytes(c.gpu.usable_memory_bytes)} x "
        f"{c.gpu_memory_utilization:g} {knob} = {format_bytes(budget)} per GPU holds "
        f"{format_bytes(est.per_gpu_in_budget_bytes)} per GPU "
        f"({100 * est.per_gpu_in_budget_bytes / budget:.0f} %); compute capability "
        f"{format_compute_capability(c.gpu.compute_capability)} >= "
        f"{format_compute_capability(ctx.capability.minimum)}."
    )
    lay = option.layout
    if ctx.request.engine == "vllm":
        parts = [
            f"tensor_parallel_size {lay.tensor_parallel_size}",
            f"pipeline_parallel_size {lay.pipeline_parallel_size}",
        ]
        if not ctx.rule.settings.tensor_parallel:
            parts[0] += " (tensor parallelism off by rule)"
        if lim.enable_chunked_prefill is False:
            parts.append(
                f"chunked prefill off (max_num_batched_tokens {lim.max_num_batched_tokens:,} >= max_model_len)"
            )
        elif lim.max_num_batched_tokens is not None:
            parts.append(f"max_num_batched_tokens {lim.max_num_batched_tokens:,}")
        if lim.block_size is not None:
            parts.append(f"block size {lim.block_size}")
        out.append("vLLM: " + ", ".join(parts) + ".")
    else:
        out.append(
            "llama.cpp: all layers on the GPU (-ngl all), F16 KV cache, --ctx-size "
            f"{lim.max_model_len * lim.max_num_seqs:,}"
            f" shared by --parallel {lim.max_num_seqs} slots"
            + (f", layers split over {lay.layer_split} GPUs" if lay.layer_split > 1 else "")
            + "."
        )
    if c.nodes > 1:
        out.append(
            f"Multi-node: {c.nodes} nodes x {c.modal_gpu}, tensor parallel {lay.tensor_parallel_size} x "
            f"pipeline {lay.pipeline_parallel_size}; launch facts (vLLM --nnodes/--node-rank/--master-addr, "
            "or Ray) are in 'launch'."
        )
    return tuple(out)


# --- the entry point ----------------------------------------------------------------------------------


def _decide(ctx: _Context, policy: str, *, use_override: bool) -> GpuDecision:
    override = parse_gpu(ctx.request.gpu) if use_override and ctx.request.gpu is not None else None
    if override is not None and override.gpu.compute_capability < ctx.capability.minimum:
        raise InvalidRequestError(
            f"--gpu {ctx.request.gpu!r}: {override.gpu.name} has compute capability "
            f"{format_compute_capability(override.gpu.compute_capability)}; these weights need >= "
            f"{format_compute_capability(ctx.capability.minimum)} ({'; '.join(ctx.capability.reasons)}). "
            "Pick a newer GPU type."
        )
    option, tried = _search(ctx, policy, override)
    if option is None:
        raise _no_fit(ctx, policy, tried, override)
    layout = option.layout
    limits = replace(
        ctx.limits,
        tensor_parallel_size=layout.tensor_parallel_size,
        pipeline_parallel_size=layout.pipeline_parallel_size,
        nnodes=layout.nodes,
    )
    return GpuDecision(
        policy=policy,
        rule=ctx.rule,
        choice=option.choice,
        limits=limits,
        memory=option.estimate,
        engine=ctx.request.engine,
        compute_capability=ctx.capability,
        explanation=_explain(ctx, policy, option, override),
        warnings=ctx.warnings,
        gpu_from_override=override is not None,
        parallel_options=_parallel_options(ctx, option),
        launch=_launch(option),
    )


def choose_gpu(request: GpuRequest, *, policy: str = "seed", rules: RuleRegistry | None = None) -> GpuDecision:
    """GPUs and limits for `request` under `policy` ("seed": the rules; "cost": the cheapest that fits)."""
    if policy not in POLICIES:
        raise InvalidRequestError(f"GPU policy {policy!r} is not one of: {', '.join(POLICIES)}.")
    ctx = _resolve(request, rules if rules is not None else default_registry)
    decision = _decide(ctx, policy, use_override=True)
    other_policy = POLICIES[1 - POLICIES.index(policy)]
    try:
        other = _decide(ctx, other_policy, use_override=False)
    except NoFittingGpuError as exc:
        sentence = f"The {other_policy} policy finds no GPU: {exc}"
        return replace(decision, warnings=(*decision.warnings, sentence))
    difference: float | None = None
    if not other.choice.same_hardware(decision.choice):
        difference = round(other.price_per_hour - decision.price_per_hour, 2)
        if difference < 0:
            verdict = f"${-difference:.2f}/h less"
        elif difference > 0:
            verdict = f"${difference:.2f}/h more"
        else:
            verdict = "the same price"
        sentence = (
            f"The {other_policy} policy would choose {other.choice.describe()} at "
            f"${other.price_per_hour:.2f}/h "
            f"({verdict} than this plan's ${decision.price_per_hour:.2f}/h)."
        )
    else:
        sentence = f"The {other_policy} policy chooses the same GPUs."
    return replace(
        decision,
        other=other,
        price_difference_per_hour=difference,
        explanation=(*decision.explanation, sentence),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuPolicy:
    """A GPU policy over a rule registry: `seed` (the rules, the user's MoE rules first) or `cost`.

    GpuPolicy().choose(request)                      # the shipped rules, seed policy
    GpuPolicy(name="cost", rules=my_rules).choose(request)
    """

    name: str = "seed"
    rules: RuleRegistry = field(default_factory=lambda: default_registry)

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise InvalidRequestError(f"GPU policy {self.name!r} is not one of: {', '.join(POLICIES)}.")

    def choose(self, request: GpuRequest) -> GpuDecision:
        return choose_gpu(request, policy=self.name, rules=self.rules)
