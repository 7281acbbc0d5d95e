"""GPU memory a deployment needs, as named terms: weights, KV cache and runtime overhead.

vLLM's budget per GPU is `total x gpu_memory_utilization` (vllm/v1/worker/utils.py:724 in vllm
0.33.0); weights, the profiled activation peak, non-torch allocations and (since 0.21) CUDA graphs
come out of it and the rest becomes KV cache (v1/worker/gpu_worker.py:641-756). The CUDA context
exists before vLLM's first memory snapshot (gpu_worker.py:541), so it sits *outside* that budget.
llama.cpp has no utilization knob: everything it allocates counts.

The KV term reserves `max_model_len x max_num_seqs` tokens: every sequence at full length at once,
which is stricter than vLLM's start-up check (one full-length sequence) on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from modelformats.engines.base import EngineTraits
from modelformats.traits import ModelTraits

__all__ = [
    "ACTIVATION_REFERENCE_TOKENS",
    "OVERHEAD_CONSTANTS",
    "SHAPE_ASSUMPTION",
    "KvShape",
    "Layout",
    "MemoryEstimate",
    "MemorySummary",
    "MemoryTerm",
    "OverheadConstant",
    "WeightsSize",
    "estimate_memory",
    "format_bytes",
    "resolve_kv_shape",
]

GIB = 1024**3


@dataclass(frozen=True, kw_only=True, slots=True)
class OverheadConstant:
    """A per-GPU runtime cost we cannot compute from metadata, with why the number is what it is."""

    name: str
    bytes: int
    source: str


_CONSTANTS = (
    OverheadConstant(
        name="cuda_context",
        bytes=1 * GIB,
        source=(
            "The CUDA context created by the first CUDA call: 723 MiB reported on "
            "discuss.pytorch.org/t/73021, "
            "'~700+ MB depending on the CUDA version' on discuss.pytorch.org/t/81330; rounded up to 1 GiB. "
            "Outside vLLM's utilization budget (the budget is measured after it exists)."
        ),
    ),
    OverheadConstant(
        name="non_torch",
        bytes=GIB // 2,
        source=(
            "vLLM's profile line 'non_torch_memory takes 0.16GiB' on an H100 "
            "(kubernetes-sigs/gateway-api-inference-extension#550) and 0.33 GiB on an RTX 5090 "
            "(vllm-project/vllm#14452); rounded up to 0.5 GiB."
        ),
    ),
    OverheadConstant(
        name="non_torch_multi_gpu",
        bytes=GIB // 2,
        source="Our margin for NCCL/all-reduce buffers per GPU when several GPUs are used (not measured).",
    ),
    OverheadConstant(
        name="activations",
        bytes=5 * GIB // 2,
        source=(
            "vLLM's profiled 'PyTorch activation peak memory': 2.38 GiB for a 12.55 GiB model on an H100 "
            "(#550), 1.01-1.77 GiB for a 10.8 GiB model on an RTX 5090 (vllm#14452), 0.23 GiB for a 1.12 "
            "GiB model (generative-computing/mellea#416); taken as 2.5 GiB per 8,192 batched tokens "
            "(vLLM's API-server default on H100, engine/arg_utils.py:2979) and scaled up linearly above "
            "that."
        ),
    ),
    OverheadConstant(
        name="cuda_graphs",
        bytes=1 * GIB,
        source=(
            "vLLM logs: 'Graph capturing finished ..., took 0.13 GiB' (mellea#416), 0.21 GiB for "
            "Llama-3.2-1B (vllm#11349), 'Estimated CUDA graph memory: 0.36 GiB' (gpustack/runner#251); "
            "rounded up to 1 GiB. Counted inside the budget since vLLM 0.21 "
            "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1, envs.py:329). Zero with --enforce-eager."
        ),
    ),
    OverheadConstant(
        name="llamacpp_compute",
        bytes=3 * GIB // 2,
        source=(
            "llama.cpp reserves its compute graph for one 512-token ubatch (common/common.h:454 "
            "n_ubatch=512, llama-context.cpp graph_reserve); the logits alone are 512 x n_vocab x 4 B = "
            "0.26 GB for a 128k vocabulary, plus per-layer temporaries; 1.5 GiB is our margin above that "
            "(not measured here)."
        ),
    ),
)
OVERHEAD_CONSTANTS: Mapping[str, OverheadConstant] = MappingProxyType({c.name: c for c in _CONSTANTS})
# Activations are sized for this many tokens in one forward pass (see "activations" above).
ACTIVATION_REFERENCE_TOKENS = 8192

# When config.json / the GGUF header did not give layers and heads, the KV cache is bounded from the
# parameter count with a deliberately generous dense shape (see docs/gpu-policy.md):
#   P = 12 x L x H^2 (4H^2 attention + 8H^2 MLP per layer; embeddings ignored, which makes L and H larger),
#   H = 64 x L (narrower than Llama, Mistral, Qwen and Gemma >= 1B, whose H/L is 44-128 -> more layers),
#   no grouped-query attention (K and V as wide as H).
SHAPE_ASSUMPTION = (
    "dense shape P = 12 x layers x hidden^2 with hidden = 64 x layers and no grouped-query attention "
    "(K/V width = hidden)"
)
_SHAPE_ASPECT = 64
_SHAPE_PARAMS_PER_LAYER_H2 = 12
_EXACT_WITH = (
    "config.json (num_hidden_layers, num_key_value_heads, head_dim or hidden_size/num_attention_heads) "
    "or the GGUF header (<arch>.block_count, <arch>.attention.head_count_kv, <arch>.attention.key_length)"
)
# Multi-head latent attention caches one compressed latent per layer (kv_lora_rank + rope dims, 576 for
# DeepSeek-V2/V3), far below 2 x heads x head_dim. With kv_lora_rank in the traits the latent is sized
# (_mla_shape); these model types without it keep the heads x head_dim figure as a labelled upper bound.
_MLA_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek2"})


def format_bytes(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsSize:
    """Bytes of weights on the GPU(s), and how that number was obtained."""

    bytes: int
    basis: str
    assumed: bool = False
    exact_with: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class KvShape:
    """What the KV cache formula multiplies: layers, K/V width per layer, and how we know."""

    layers: int
    # K (or V) elements per token per layer = KV heads x head dim.
    kv_width: int
    kv_heads: int | None
    head_dim: int | None
    assumed: bool
    basis: str
    exact_with: str | None = None
    sliding_window: int | None = None
    # Layers that keep only `sliding_window` tokens; 0 when unknown (counted as full attention).
    sliding_layers: int = 0
    notes: tuple[str, ...] = ()
    # Tensors cached per layer and token: 2 (K and V), 1 for multi-head latent attention (one latent).
    tensors: int = 2
    # Multi-head latent attention: every tensor-parallel rank keeps the whole latent (it has no heads to split).
    latent: bool = False
    # How the per-layer width reads in the formula when it is not KV heads x head dim (K and V of unequal width).
    width_label: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """How the model is spread: tensor parallel within a node, pipeline stages (across nodes too)."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    nodes: int = 1
    enable_expert_parallel: bool = False
    # llama.cpp's default split across GPUs of one container: whole layers per GPU.
    layer_split: int = 1

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.layer_split


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryTerm:
    """One named part of the estimate; `bytes` over all GPUs, `per_gpu_bytes` on the fullest GPU."""

    name: str
    bytes: int
    per_gpu_bytes: int
    formula: str
    basis: str
    assumed: bool = False
    exact_with: str | None = None
    # False: outside vLLM's gpu_memory_utilization budget (the CUDA context).
    in_budget: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "bytes": self.bytes,
            "per_gpu_bytes": self.per_gpu_bytes,
            "formula": self.formula,
            "basis": self.basis,
            "assumed": self.assumed,
            "in_budget": self.in_budget,
        }
        if self.exact_with is not None:
            out["exact_with"] = self.exact_with
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemoryTerm:
        return cls(
            name=str(d["name"]),
            bytes=int(d["bytes"]),
            per_gpu_bytes=int(d["per_gpu_bytes"]),
            formula=str(d["formula"]),
            basis=str(d["basis"]),
            assumed=bool(d.get("assumed", False)),
            exact_with=d.get("exact_with"),
            in_budget=bool(d.get("in_budget", True)),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class MemorySummary:
    """The plan's view of a memory estimate (its `memory` object): exactly the fields the JSON carries.

    `MemoryEstimate` holds the layout and computes its sums; a plan file keeps the sums and the GPU count
    only, so this record carries them as values, and `from_dict(to_dict())` gives it back unchanged.
    """

    engine: str
    total_bytes: int
    # On the fullest GPU: in and outside the gpu_memory_utilization budget, and both.
    per_gpu_bytes: int
    per_gpu_in_budget_bytes: int
    per_gpu_outside_budget_bytes: int
    # GPUs the model is spread over (the layout's world size).
    gpus: int
    max_model_len: int
    max_num_seqs: int
    kv_tokens: int
    kv_bytes_per_token: int
    assumed: bool
    terms: tuple[MemoryTerm, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "total_bytes": self.total_bytes,
            "per_gpu_bytes": self.per_gpu_bytes,
            "per_gpu_in_budget_bytes": self.per_gpu_in_budget_bytes,
            "per_gpu_outside_budget_bytes": self.per_gpu_outside_budget_bytes,
            "gpus": self.gpus,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "kv_tokens": self.kv_tokens,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "assumed": self.assumed,
            "terms": [t.to_dict() for t in self.terms],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemorySummary:
        return cls(
            engine=str(d["engine"]),
            total_bytes=int(d["total_bytes"]),
            per_gpu_bytes=int(d["per_gpu_bytes"]),
            per_gpu_in_budget_bytes=int(d["per_gpu_in_budget_bytes"]),
            per_gpu_outside_budget_bytes=int(d["per_gpu_outside_budget_bytes"]),
            gpus=int(d.get("gpus", 1)),
            max_model_len=int(d["max_model_len"]),
            max_num_seqs=int(d["max_num_seqs"]),
            kv_tokens=int(d["kv_tokens"]),
            kv_bytes_per_token=int(d["kv_bytes_per_token"]),
            assumed=bool(d.get("assumed", False)),
            terms=tuple(MemoryTerm.from_dict(t) for t in d.get("terms", ())),
            notes=tuple(d.get("notes", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryEstimate:
    """All terms for one layout, with the per-GPU sums a fit check compares against."""

    engine: str
    terms: tuple[MemoryTerm, ...]
    layout: Layout
    max_model_len: int
    max_num_seqs: int
    kv_tokens: int
    kv_bytes_per_token: int
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.terms)

    @property
    def per_gpu_in_budget_bytes(self) -> int:
        return sum(t.per_gpu_bytes for t in self.terms if t.in_budget)

    @property
    def per_gpu_outside_budget_bytes(self) -> int:
        return sum(t.per_gpu_bytes for t in self.terms if not t.in_budget)

    @property
    def assumed(self) -> bool:
        return any(t.assumed for t in self.terms)

    def term(self, name: str) -> MemoryTerm:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def shortfall_bytes(self, usable_bytes: int, utilization: float) -> int:
        """Bytes per GPU by which this misses a GPU of `usable_bytes` at `utilization` (<= 0: it fits)."""
        budget = math.floor(usable_bytes * utilization)
        inside = self.per_gpu_in_budget_bytes - budget
        outside = self.per_gpu_outside_budget_bytes - (usable_bytes - budget)
        return max(inside, outside)

    def fits(self, usable_bytes: int, utilization: float) -> bool:
        return self.shortfall_bytes(usable_bytes, utilization) <= 0

    def summary(self) -> str:
        """`weights 19.56 GB + kv_cache 21.78 GB + ... = 45.71 GB`."""
        parts = " + ".join(f"{t.name} {format_bytes(t.bytes)}" for t in self.terms)
        return f"{parts} = {format_bytes(self.total_bytes)}"

    def memory_summary(self) -> MemorySummary:
        """What a plan keeps of this estimate (its `memory` object), typed."""
        return MemorySummary(
            engine=self.engine,
            total_bytes=self.total_bytes,
            per_gpu_bytes=self.per_gpu_in_budget_bytes + self.per_gpu_outside_budget_bytes,
            per_gpu_in_budget_bytes=self.per_gpu_in_budget_bytes,
            per_gpu_outside_budget_bytes=self.per_gpu_outside_budget_bytes,
            gpus=self.layout.world_size,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            kv_tokens=self.kv_tokens,
            kv_bytes_per_token=self.kv_bytes_per_token,
            assumed=self.assumed,
            terms=self.terms,
            notes=self.notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.memory_summary().to_dict()


def _is_mla(traits: ModelTraits) -> bool:
    return traits.model_type in _MLA_MODEL_TYPES or traits.gguf_architecture in _MLA_MODEL_TYPES


def _layer_counts(
    traits: ModelTraits, sliding_window_layers: int | None, max_model_len: int | None, notes: list[str]
) -> tuple[int | None, int, int | None]:
    """(window, sliding layers, layers that keep a KV cache): linear-attention layers keep none."""
    window = traits.sliding_window
    if window is not None and max_model_len is not None and window >= max_model_len:
        window = None  # a window as long as the context changes nothing (Qwen2.5 records 131,072)
    if traits.full_attention_layers is not None:
        kv_layers = traits.full_attention_layers + (traits.sliding_attention_layers or 0)
        if traits.linear_attention_layers:
            notes.append(
                f"{traits.linear_attention_layers} linear-attention (or state-space) layers keep a fixed state "
                f"per sequence, not a KV cache: only the {kv_layers} attention layers are counted per token; "
                "their state is not modelled."
            )
        # A window covering the whole context makes sliding layers full ones.
        return window, (traits.sliding_attention_layers or 0) if window is not None else 0, kv_layers
    if window is None:
        return None, 0, traits.num_layers
    if sliding_window_layers is not None:
        return window, sliding_window_layers, traits.num_layers
    notes.append(
        f"A sliding window of {window:,} tokens is recorded, but not which layers use it: every "
        "layer is counted at full length (an upper bound)."
    )
    return window, 0, traits.num_layers


def _mla_shape(traits: ModelTraits) -> KvShape:
    """vLLM's MLA cache: one latent of kv_lora_rank + qk_rope_head_dim per layer and token, no V, no heads."""
    rank = traits.kv_lora_rank or 0
    rope = traits.qk_rope_head_dim or 0
    layers = traits.num_layers or 0
    src = traits.sources
    where = sorted({src[k] for k in ("kv_lora_rank", "qk_rope_head_dim", "num_layers") if k in src})
    notes: tuple[str, ...] = ()
    if not rope:
        notes = ("qk_rope_head_dim is not recorded: the latent is counted as kv_lora_rank alone (a lower bound).",)
    return KvShape(
        layers=layers,
        kv_width=rank + rope,
        kv_heads=traits.kv_heads,
        head_dim=None,
        assumed=not layers,
        basis=(
            f"multi-head latent attention: kv_lora_rank {rank} + qk_rope_head_dim {rope} = {rank + rope} "
            f"elements per layer and token ({'; '.join(where) or 'model traits'})"
        ),
        tensors=1,
        latent=True,
        notes=notes,
    )


def _uncompressed_mla_shape(traits: ModelTraits) -> KvShape | None:
    """llama.cpp without `key_length_mla`: K (key_length) and V (value_length) for every KV head
    (llama-kv-cache.cpp sizes K as n_embd_k_gqa and V as n_embd_v_gqa when !hparams.is_mla())."""
    layers, kv_heads, k = traits.num_layers, traits.kv_heads, traits.head_dim
    if not (layers and kv_heads and k):
        return None
    v = traits.v_head_dim or k
    src = traits.sources
    where = sorted({src[n] for n in ("num_layers", "num_kv_heads", "head_dim", "v_head_dim") if n in src})
    return KvShape(
        layers=layers,
        kv_width=kv_heads * (k + v),
        kv_heads=kv_heads,
        head_dim=k,
        assumed=False,
        basis=(
            f"multi-head latent attention without key_length_mla in the GGUF header: llama.cpp caches full "
            f"K and V per head, {kv_heads} KV heads x ({k} K + {v} V) ({'; '.join(where) or 'model traits'})"
        ),
        tensors=1,
        width_label=f"{kv_heads} KV heads x ({k} K + {v} V)",
    )


def resolve_kv_shape(
    traits: ModelTraits,
    *,
    shape_params: int | None,
    shape_params_basis: str,
    sliding_window_layers: int | None = None,
    max_model_len: int | None = None,
    latent_cache: bool = True,
) -> KvShape:
    """Layers and K/V width from the traits; a labelled upper bound from `shape_params` without them.

    `latent_cache`: the engine caches MLA's compact latent (vLLM always; llama.cpp only when the GGUF
    header records `key_length_mla`). Without it an MLA model caches full K and V per head.
    """
    notes: list[str] = []
    if traits.kv_lora_rank and latent_cache:
        return _mla_shape(traits)
    if traits.kv_lora_rank and (full := _uncompressed_mla_shape(traits)) is not None:
        return full
    if _is_mla(traits):
        notes.append(
            "Multi-head latent attention: engines cache one latent of kv_lora_rank + rope dims per layer "
            "(576 for DeepSeek-V2/V3), far less than this heads x head_dim figure, but kv_lora_rank is not "
            "recorded here; the KV term is an upper bound."
        )
    if traits.unmodelled_attention:
        notes.append(
            f"Attention design not modelled ({traits.unmodelled_attention}): every layer is counted as full "
            "attention, an upper bound."
        )
    window, sliding, kv_layers = _layer_counts(traits, sliding_window_layers, max_model_len, notes)
    layers = kv_layers
    head_dim = traits.resolved_head_dim
    kv_heads = traits.kv_heads
    if layers == 0:  # every layer is linear attention / state-space: no KV cache at all
        return KvShape(
            layers=0,
            kv_width=0,
            kv_heads=kv_heads,
            head_dim=head_dim,
            assumed=False,
            basis="no attention layers (config.json layer kinds)",
            notes=tuple(notes),
        )
    if layers and head_dim and kv_heads:
        src = traits.sources
        where = sorted({src[k] for k in ("num_layers", "num_kv_heads", "head_dim", "hidden_size") if k in src})
        gqa = "" if traits.num_kv_heads else " (no KV-head count: every attention head has its own K/V)"
        return KvShape(
            layers=layers,
            kv_width=kv_heads * head_dim,
            kv_heads=kv_heads,
            head_dim=head_dim,
            assumed=False,
            basis=("; ".join(where) or "model traits") + gqa,
            sliding_window=window,
            sliding_layers=min(sliding, layers),
            notes=tuple(notes),
        )
    if layers and traits.hidden_size:
        notes.append("KV heads unknown: K/V assumed as wide as the hidden size (no grouped-query attention).")
        return KvShape(
            layers=layers,
            kv_width=traits.hidden_size,
            kv_heads=None,
            head_dim=None,
            assumed=True,
            basis=f"{layers} layers and hidden size {traits.hidden_size:,} from the traits; KV heads assumed",
            exact_with=_EXACT_WITH,
            sliding_window=window,
            sliding_layers=min(sliding, layers),
            notes=tuple(notes),
        )
    if shape_params is None or shape_params <= 0:
        raise ValueError("resolve_kv_shape needs shape_params when the traits lack layers and heads")
    # P = 12 x L x (64 L)^2  ->  L = (P / (12 x 64^2))^(1/3); rounded up so the bound only grows.
    bound_layers = math.ceil((shape_params / (_SHAPE_PARAMS_PER_LAYER_H2 * _SHAPE_ASPECT**2)) ** (1 / 3))
    hidden = _SHAPE_ASPECT * bound_layers
    return KvShape(
        layers=bound_layers,
        kv_width=hidden,
        kv_heads=None,
        head_dim=None,
        assumed=True,
        basis=(
            f"ASSUMED upper bound from {shape_params:,} parameters ({shape_params_basis}): "
            f"{SHAPE_ASSUMPTION} -> {bound_layers} layers x {hidden:,} K/V width"
        ),
        exact_with=_EXACT_WITH,
        notes=tuple(notes),
    )


def _kv_replication(kv_heads: int | None, tp: int) -> int:
    """Copies of each KV head over TP ranks: vLLM keeps >= 1 KV head per GPU (config/model.py:1683)."""
    if kv_heads is None or tp <= kv_heads:
        return 1
    return tp // kv_heads


def _builtin_traits(engine: str) -> EngineTraits:
    from modelformats.engines.builtin import engine_traits

    return engine_traits(engine)


def estimate_memory(
    *,
    engine: str,
    weights: WeightsSize,
    kv: KvShape,
    max_model_len: int,
    max_num_seqs: int,
    max_num_batched_tokens: int | None,
    kv_cache_bytes_per_element: float = 2.0,
    kv_cache_dtype_basis: str = "bf16/f16 (vLLM 'auto' follows the model dtype; llama.cpp defaults to f16)",
    layout: Layout | None = None,
    enforce_eager: bool = False,
    engine_traits: EngineTraits | None = None,
) -> MemoryEstimate:
    """The estimate for one layout; every term says how it was computed.

    `engine` names the engine in the estimate; `engine_traits` says how it spends memory (None: the
    built-in engine `engine`'s): a utilization budget with profiled overheads, or everything up front.
    """
    layout = layout or Layout()
    world = layout.world_size
    budgeted = (engine_traits or _builtin_traits(engine)).utilization_budget
    c = OVERHEAD_CONSTANTS
    terms: list[MemoryTerm] = []

    terms.append(
        MemoryTerm(
            name="weights",
            bytes=weights.bytes,
            per_gpu_bytes=math.ceil(weights.bytes / world),
            formula=weights.basis + (f", split over {world} GPUs" if world > 1 else ""),
            basis=weights.basis,
            assumed=weights.assumed,
            exact_with=weights.exact_with,
        )
    )

    full_layers = kv.layers - kv.sliding_layers
    window_tokens = min(max_model_len, kv.sliding_window or max_model_len)
    token_layers = full_layers * max_model_len + kv.sliding_layers * window_tokens
    # vLLM gives the KV cache whatever memory is left and refuses to start only when one max_model_len
    # sequence does not fit (vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory). With an assumed
    # (upper-bound) shape we size that startup minimum; max_num_seqs then caps concurrency, it is not
    # reserved. llama.cpp allocates its whole --ctx-size up front, so it is always sized in full.
    sequences = 1 if (kv.assumed and budgeted) else max_num_seqs
    kv_total = math.ceil(kv.tensors * kv.kv_width * kv_cache_bytes_per_element * sequences * token_layers)
    per_token = math.ceil(kv.tensors * (full_layers + kv.sliding_layers) * kv.kv_width * kv_cache_bytes_per_element)
    if kv.width_label:
        heads = kv.width_label
    elif kv.latent:
        heads = f"{kv.kv_width:,}-element latent"
    else:
        heads = f"{kv.kv_heads} KV heads x {kv.head_dim} head dim" if kv.kv_heads else f"{kv.kv_width:,} K/V width"
    formula = (
        f"{kv.tensors} x {kv.layers} layers x {heads} x {kv_cache_bytes_per_element:g} B x {max_model_len:,} "
        "max_model_len"
    )
    if sequences == max_num_seqs:
        formula += f" x {max_num_seqs} max_num_seqs"
    else:
        formula += (
            f" x 1 sequence (vLLM's startup minimum: the shape is an assumed upper bound, so the "
            f"{max_num_seqs} max_num_seqs share what is left instead of being reserved)"
        )
    if kv.sliding_layers:
        formula += f" ({kv.sliding_layers} sliding-window layers hold {window_tokens:,} tokens each)"
    tp = layout.tensor_parallel_size
    replication = tp if kv.latent else _kv_replication(kv.kv_heads, tp)
    if kv.latent and tp > 1:
        formula += f"; the latent is whole on each of the {tp} TP ranks"
    elif replication > 1:
        formula += f"; each KV head copied to {replication} of the {tp} TP ranks"
    kv_on_gpus = kv_total * replication
    terms.append(
        MemoryTerm(
            name="kv_cache",
            bytes=kv_on_gpus,
            per_gpu_bytes=math.ceil(kv_on_gpus / world),
            formula=formula,
            basis=f"{kv.basis}; KV dtype {kv_cache_dtype_basis}",
            assumed=kv.assumed,
            exact_with=kv.exact_with,
        )
    )

    def per_gpu(name: str, each: int, formula: str, basis: str, *, in_budget: bool = True) -> None:
        terms.append(
            MemoryTerm(
                name=name,
                bytes=each * world,
                per_gpu_bytes=each,
                formula=formula + (f" x {world} GPUs" if world > 1 else ""),
                basis=basis,
                in_budget=in_budget,
            )
        )

    if budgeted:
        tokens = max_num_batched_tokens or ACTIVATION_REFERENCE_TOKENS
        scale = max(1.0, tokens / ACTIVATION_REFERENCE_TOKENS)
        act = math.ceil(c["activations"].bytes * scale)
        per_gpu(
            "activations",
            act,
            f"2.5 GiB x max(1, {tokens:,} batched tokens / {ACTIVATION_REFERENCE_TOKENS:,})",
            c["activations"].source,
        )
        if not enforce_eager:
            per_gpu("cuda_graphs", c["cuda_graphs"].bytes, "1 GiB", c["cuda_graphs"].source)
        non_torch = c["non_torch"].bytes + (c["non_torch_multi_gpu"].bytes if world > 1 else 0)
        per_gpu(
            "non_torch",
            non_torch,
            "0.5 GiB" + (" + 0.5 GiB for collectives" if world > 1 else ""),
            c["non_torch"].source + (" " + c["non_torch_multi_gpu"].source if world > 1 else ""),
        )
        per_gpu("cuda_context", c["cuda_context"].bytes, "1 GiB", c["cuda_context"].source, in_budget=False)
    else:
        per_gpu("compute_buffers", c["llamacpp_compute"].bytes, "1.5 GiB", c["llamacpp_compute"].source)
        per_gpu("cuda_context", c["cuda_context"].bytes, "1 GiB", c["cuda_context"].source)

    return MemoryEstimate(
        engine=engine,
        terms=tuple(terms),
        layout=layout,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        kv_tokens=max_model_len * sequences,
        kv_bytes_per_token=per_token,
        notes=kv.notes,
    )
