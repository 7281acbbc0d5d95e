"""Resolve a `GpuRequest` once (weights, rule, limits, KV shape, capability floor) and size the
memory of one layout of GPUs (`build_option`): what every policy's search is built from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelformats.engines.base import EngineTraits
from modelformats.errors import InvalidRequestError
from modelformats.gpu.activations import ActivationShape
from modelformats.gpu.capability import CapabilityRequirement, required_compute_capability
from modelformats.gpu.catalogue import GpuType, format_compute_capability, parse_compute_capability
from modelformats.gpu.decision import GpuChoice, GpuRequest, RuntimeLimits
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
from modelformats.gpu.kept_modules import kept_module_params
from modelformats.gpu.mla_weights import mla_dequant_copy_bytes
from modelformats.gpu.moe_kernels import MOE_KERNELS, ExpertLayout, expert_layout_bytes
from modelformats.gpu.rules import GpuRule, RuleRegistry, RuleSubject
from modelformats.traits import ModelTraits

__all__ = [
    "GpuOption",
    "ResolvedRequest",
    "build_option",
    "plan_layout",
    "resolve_request",
    "tp_divides",
    "weights_on",
]

# Bytes per weight of unquantized checkpoints, by torch_dtype.
_DTYPE_BYTES = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp32": 4.0}
# Without any size: assume 16-bit weights, the largest any serving format here stores (except F32).
_ASSUMED_BYTES_PER_WEIGHT = 2.0
# Without a parameter count either, the KV bound is sized for this many parameters per weight byte
# (4-bit weights: the smallest common quant, so the most parameters and the largest bound).
_ASSUMED_PARAMS_PER_BYTE = 2.0

# --- resolution --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedRequest:
    """Everything resolved once per request; shared by both policies."""

    request: GpuRequest
    # The request's engine traits (never None once resolved).
    engine: EngineTraits
    rule: GpuRule
    weights: WeightsSize
    params: int | None
    params_basis: str
    kv: KvShape
    # What vLLM's profiled activation peak depends on; None: the shape is unknown (a constant is used).
    activations: ActivationShape | None
    limits: RuntimeLimits
    capability: CapabilityRequirement
    notes: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuOption:
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
    wb = request.weight_bytes
    if request.weights_bytes and wb is not None:
        n = math.floor(request.weights_bytes / wb.bytes_per_weight)
        return n, f"{format_bytes(request.weights_bytes)} / {wb.bytes_per_weight:.4g} bytes per weight ({wb.basis})"
    return None, ""


def _expert_params(traits: ModelTraits) -> tuple[int, str] | None:
    """Routed experts' MLP weights (gate, up, down): layers x experts x 3 x hidden x expert width."""
    t = traits
    if not (t.num_layers and t.num_experts and t.hidden_size and t.expert_intermediate_size):
        return None
    n = t.num_layers * t.num_experts * 3 * t.hidden_size * t.expert_intermediate_size
    what = f"{t.num_layers} layers x {t.num_experts} experts x 3 x {t.hidden_size:,} x {t.expert_intermediate_size:,}"
    return n, what


def _embedding_params(traits: ModelTraits) -> tuple[int, str] | None:
    """Token embeddings + (untied) output head: the tensors quantization methods keep in 16-bit."""
    if not traits.vocab_size or not traits.hidden_size:
        return None
    copies = 1 if traits.tie_word_embeddings else 2
    n = traits.vocab_size * traits.hidden_size * copies
    what = "tied embeddings" if copies == 1 else "embeddings and output head"
    return n, f"{what} {traits.vocab_size:,} x {traits.hidden_size:,}{' x 2' if copies == 2 else ''}"


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
    wb = request.weight_bytes
    experts = _expert_params(request.traits) if wb is not None and wb.experts_only else None
    if wb is not None and experts is not None and experts[0] < params:
        n_q, what = experts
        return WeightsSize(
            bytes=math.ceil(n_q * wb.bytes_per_weight + (params - n_q) * 2),
            basis=(
                f"{n_q:,} expert weights ({what}) x {wb.bytes_per_weight:.4g} B + the other "
                f"{params - n_q:,} of {params:,} parameters ({params_basis}) x 2 B ({wb.basis})"
            ),
        )
    if wb is not None:
        embed = _embedding_params(request.traits) if wb.embeddings_16bit else None
        kept = kept_module_params(wb.kept_modules, request.traits, params) if wb.kept_modules else None
        if embed is not None and kept is not None and wb.without_kept is not None:
            # The modules the config keeps in 16-bit are sized from the shape: the rate is no longer assumed.
            wb = wb.without_kept
            embed = (embed[0] + kept[0], f"{embed[1]}; {kept[1]}")
        if embed is not None and embed[0] < params:
            n16, what = embed
            total = math.ceil((params - n16) * wb.bytes_per_weight + n16 * 2)
            how = (
                f"({params:,} - {n16:,} 16-bit {what}) x {wb.bytes_per_weight:.4g} B + {n16:,} x 2 B"
                f" ({params_basis}; {wb.basis})"
            )
        else:
            total = math.ceil(params * wb.bytes_per_weight)
            left = " (the 16-bit embeddings are not counted: vocabulary or hidden size unknown)"
            how = f"{params:,} parameters ({params_basis}) x {wb.bytes_per_weight:.4g} B ({wb.basis})" + (
                left if wb.embeddings_16bit else ""
            )
            wb_assumed = wb.assumed or wb.embeddings_16bit or wb.experts_only
            return WeightsSize(
                bytes=total,
                basis=("ASSUMED: " if wb_assumed else "") + how,
                assumed=wb_assumed,
                exact_with="the file sizes of the weights (a listing with sizes)" if wb_assumed else None,
            )
        assumed = wb.assumed or wb.experts_only  # experts-only without the expert shape: all at the low rate
        return WeightsSize(
            bytes=total,
            basis=("ASSUMED: " if assumed else "") + how,
            assumed=assumed,
            exact_with="the file sizes of the weights (a listing with sizes)" if assumed else None,
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


def _with_mla_copy(request: GpuRequest, engine: EngineTraits, weights: WeightsSize) -> WeightsSize:
    """An engine that runs MLA on the latent (vLLM) keeps a 16-bit copy of a quantized kv_b_proj."""
    wb = request.weight_bytes
    if not (engine.mla_latent_always and wb is not None and wb.bytes_per_weight < 2):
        return weights
    copy = mla_dequant_copy_bytes(request.traits)
    if copy is None:
        return weights
    n, how = copy
    return WeightsSize(
        bytes=weights.bytes + n,
        basis=f"{weights.basis}; + {how} = {format_bytes(n)}",
        assumed=weights.assumed,
        exact_with=weights.exact_with,
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


def _resolve_limits(request: GpuRequest, engine: EngineTraits, rule: GpuRule) -> tuple[int, int, list[str], list[str]]:
    s = rule.settings
    native = request.traits.max_position_embeddings
    native_src = request.traits.sources.get("max_position_embeddings", "model traits")
    notes: list[str] = []
    warnings: list[str] = []
    if request.max_model_len is not None:
        length = request.max_model_len
        if native is not None and length > native:
            why = engine.longer_context
            raise InvalidRequestError(
                f"--max-model-len {length:,} exceeds the model's context of {native:,} tokens "
                f"(max_position_embeddings, {native_src}); {why}. "
                f"Use at most {native:,}."
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
        warnings.append(
            f"max_model_len {length:,} is unverified: the model's own context length is not known here (no "
            "max_position_embeddings in config.json, no GGUF context_length), and an engine refuses or degrades "
            "past it. Pass --max-model-len with the model's limit (its config.json max_position_embeddings), or "
            "plan online so config.json is read."
        )
    if request.max_num_seqs is not None:
        seqs = request.max_num_seqs
        notes.append(f"max_num_seqs {seqs} as requested")
        if seqs > s.max_num_seqs:
            warnings.append(f"max_num_seqs {seqs} is above rule '{rule.name}''s cap of {s.max_num_seqs}.")
    else:
        seqs = s.max_num_seqs
        notes.append(f"max_num_seqs {seqs}: the rule's cap")
    return length, seqs, notes, warnings


def resolve_request(request: GpuRequest, registry: RuleRegistry) -> ResolvedRequest:
    traits = request.traits
    engine = request.engine_traits
    assert engine is not None  # GpuRequest fills in the built-in engine's traits
    params, params_basis = _resolve_params(request)
    weights = _with_mla_copy(request, engine, _resolve_weights(request, params, params_basis))
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
    length, seqs, notes, warnings = _resolve_limits(request, engine, rule)
    shape_params, shape_basis = _shape_params(request, params, params_basis, weights)
    kv = resolve_kv_shape(
        traits,
        shape_params=shape_params,
        shape_params_basis=shape_basis,
        sliding_window_layers=request.sliding_window_layers,
        max_model_len=length,
        # vLLM always caches MLA's latent; llama.cpp only when the GGUF header records key_length_mla.
        latent_cache=engine.mla_latent_always or traits.mla_key_length is not None,
    )
    s = rule.settings
    scheduled = engine.scheduler_settings
    chunked = s.enable_chunked_prefill if scheduled else None
    batched: int | None = None
    if scheduled:
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
        block_size=s.block_size if scheduled else None,
        enforce_eager=request.enforce_eager if request.enforce_eager is not None else s.enforce_eager,
    )
    # Two floors, the higher wins: the engine's own minimum for these weights (what it refuses below) and
    # the table's (what its native kernels need, e.g. FP8 tensor cores at 8.9 where vLLM would fall back).
    capability = required_compute_capability(
        engine=request.engine,
        floor=request.capability_floor,
        weights_in_torch_dtype=request.weights_in_torch_dtype,
        torch_dtype=traits.torch_dtype,
        capability_floors=engine.capability_floors,
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
    return ResolvedRequest(
        request=request,
        engine=engine,
        rule=rule,
        weights=weights,
        params=params,
        params_basis=params_basis,
        kv=kv,
        activations=ActivationShape.from_traits(traits),
        limits=limits,
        capability=capability,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


# --- layouts and candidates ----------------------------------------------------------------------------


def tp_divides(ctx: ResolvedRequest, tp: int) -> bool:
    """vLLM: heads % tp == 0 (config/model.py:1559); KV heads split or copy evenly (models/llama.py:144)."""
    heads = ctx.request.traits.num_attention_heads
    kv_heads = ctx.kv.kv_heads
    if not heads or not kv_heads or ctx.kv.assumed:
        return False
    return heads % tp == 0 and (kv_heads % tp == 0 or tp % kv_heads == 0)


def plan_layout(ctx: ResolvedRequest, gpu: GpuType, count: int, nodes: int) -> Layout | None:
    """How `count x nodes` GPUs of `gpu` carry the model, or None when the engine cannot use them."""
    total = count * nodes
    if total == 1:
        return Layout()
    if nodes > 1 and not ctx.engine.multi_node:
        return None
    if not ctx.engine.tensor_parallel:
        # llama.cpp splits whole layers over the GPUs of one container.
        return Layout(layer_split=count)
    tp_allowed = ctx.rule.settings.tensor_parallel and gpu.nvlink
    if nodes == 1:
        # Tensor parallel needs the head counts to divide; unknown heads (or no NVLink) mean pipeline stages.
        split = tp_allowed and tp_divides(ctx, count)
        return Layout(tensor_parallel_size=count) if split else Layout(pipeline_parallel_size=count)
    if tp_allowed:
        for tp in range(count, 0, -1):
            if count % tp == 0 and tp_divides(ctx, tp):
                return Layout(tensor_parallel_size=tp, pipeline_parallel_size=total // tp, nodes=nodes)
    return Layout(pipeline_parallel_size=total, nodes=nodes)


def weights_on(
    ctx: ResolvedRequest, capability: tuple[int, int], layout: Layout, *, expert_layout: ExpertLayout | None = None
) -> WeightsSize:
    """The weights as the engine allocates them on GPUs of `capability`: MoE kernels that pad the experts
    (vLLM's MXFP4 backends) add to the stored size. `expert_layout` overrides the backend the capability picks."""
    wb = ctx.request.weight_bytes
    # Engines whose kernels follow the GPU's capability (vLLM) allocate experts at their kernel's shape.
    if wb is None or wb.moe_kernel is None or not ctx.engine.capability_floors:
        return ctx.weights
    chosen = expert_layout or MOE_KERNELS[wb.moe_kernel](capability)
    return expert_layout_bytes(
        ctx.weights, ctx.request.traits, wb.bytes_per_weight, chosen, layout.tensor_parallel_size
    )


def build_option(ctx: ResolvedRequest, gpu: GpuType, count: int, nodes: int, modifier: str = "") -> GpuOption | None:
    layout = plan_layout(ctx, gpu, count, nodes)
    if layout is None:
        return None
    lim = ctx.limits
    estimate = estimate_memory(
        engine=ctx.request.engine,
        weights=weights_on(ctx, gpu.compute_capability, layout),
        kv=ctx.kv,
        max_model_len=lim.max_model_len,
        max_num_seqs=lim.max_num_seqs,
        max_num_batched_tokens=lim.max_num_batched_tokens,
        activations=ctx.activations,
        kv_cache_bytes_per_element=ctx.request.kv_cache_bytes_per_element,
        layout=layout,
        enforce_eager=lim.enforce_eager,
        engine_traits=ctx.engine,
        block_size=lim.block_size,
    )
    choice = GpuChoice(
        gpu=gpu,
        count=count,
        nodes=nodes,
        gpu_memory_utilization=lim.gpu_memory_utilization,
        modifier=modifier,
    )
    return GpuOption(choice=choice, layout=layout, estimate=estimate)
