"""The `Engine` protocol: can this engine load these weights, and what command starts it?

An engine is a strategy like a format is. vLLM (one profile per version range) and llama.cpp's
server implement it. Engines never download anything and never import their own package: they
answer from data (profiles, probe results) so the planner stays importable anywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from modelformats.formats.base import Container, VllmQuantPlugin
from modelformats.traits import ModelTraits

__all__ = [
    "Engine",
    "EngineCommand",
    "EngineTraits",
    "EvidenceLevel",
    "LoadVerdict",
    "RuntimeLimits",
    "RuntimeSpec",
    "WeightsSpec",
]


class EvidenceLevel(enum.Enum):
    """How strongly we know that an engine loads a kind of weights, strongest first."""

    # The engine's own HF-weights loader for an architecture it lists as supported.
    ENGINE_NATIVE = "engine-native"
    # Ran end to end on CPU here (e.g. llama.cpp generating from a tiny model of the same layout).
    CPU_END_TO_END = "cpu-end-to-end"
    # The engine's own generation on CPU (vLLM's CPU build, F32/F16 tiny GGUFs of the same layout) gave
    # the same greedy tokens as llama.cpp and transformers; quantized kernels are GPU-only, unverified.
    CPU_GENERATION = "cpu-generation"
    # Every engine parameter received the right tensor on CPU (meta device / weight iterator); GPU unverified.
    CPU_WEIGHT_PROOF = "cpu-weight-proof"
    # The engine's own load_model completed on CPU with every parameter loaded; kernels unverified.
    CPU_LOAD = "cpu-load"
    # Only the engine's own config resolution and name map ran on CPU (nothing left unmapped); its
    # load_model did not complete there, so loading itself is unverified. Never called "loads".
    CPU_NAME_MAP = "cpu-name-map"
    # Read in the engine's source, not run.
    SOURCE_READ = "source-read"
    # Served after `modelformats convert` rewrites the weights (GGUF -> safetensors), and vLLM's own engine
    # (its CPU build, no GGUF plugin) generated transformers' greedy tokens from the converted tiny
    # checkpoints of the layout (F32/F16 GGUF inputs, `nox -s vllm_cpu_generation`). Stronger than
    # `converted`, yet still ranked below every route that serves the downloaded weights as they are: the
    # route adds a conversion (minutes, a second copy on disk, 16-bit weights on the GPU) and its proofs
    # cover tiny F32/F16/Q8_0 inputs, so evidence alone must not make it beat a direct route on price.
    CONVERTED_CPU_GENERATION = "converted-cpu-generation"
    # Served after `modelformats convert` rewrites the weights (GGUF -> safetensors): the conversion is
    # proven on CPU against transformers (tiny checkpoints), the engine's load of a converted directory is
    # not run. Ranked below every route that serves the downloaded weights as they are.
    CONVERTED = "converted"
    # Proven or read not to load.
    REFUSED = "refused"

    @property
    def rank(self) -> int:
        """Lower is stronger; used to order alternatives."""
        return list(EvidenceLevel).index(self)

    @property
    def description(self) -> str:
        return _EVIDENCE_TEXT[self]


_EVIDENCE_TEXT: Mapping[EvidenceLevel, str] = {
    EvidenceLevel.ENGINE_NATIVE: "loads — the engine's own loader for a supported architecture",
    EvidenceLevel.CPU_END_TO_END: "loads — run end to end on CPU with a tiny model of the same layout",
    EvidenceLevel.CPU_GENERATION: (
        "loads — generates on CPU (vLLM's engine, F32/F16); quantized kernels GPU unverified"
    ),
    EvidenceLevel.CPU_WEIGHT_PROOF: "loads — CPU weight-level proof, GPU unverified",
    EvidenceLevel.CPU_LOAD: "loads — the engine's own load_model completed on CPU, kernels unverified",
    EvidenceLevel.CPU_NAME_MAP: (
        "maps — config and weight names checked on CPU; load_model did not complete there, loading unverified"
    ),
    EvidenceLevel.SOURCE_READ: "expected to load — read in the engine's source, not run",
    EvidenceLevel.CONVERTED_CPU_GENERATION: (
        "loads after conversion — vLLM's engine generated the same tokens on CPU from converted tiny "
        "checkpoints (F32/F16 inputs)"
    ),
    EvidenceLevel.CONVERTED: (
        "expected to load after conversion — conversion checked on CPU against transformers (tiny "
        "checkpoints); the engine's load of the converted directory not run"
    ),
    EvidenceLevel.REFUSED: "does not load",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineTraits:
    """What the planner and the GPU policy need to know of an engine besides what it loads: facts the
    engine declares (its `traits`), so no code outside `modelformats.engines` compares engine names.

    A `GpuRequest` carries them (`engine_traits`); the GPU package never imports an engine.
    """

    # How sentences name the engine ("vLLM", "llama.cpp").
    display_name: str
    # The product's primary engine: among routes of equal evidence it ranks first (before price).
    preferred: bool = False
    # Memory is a `gpu_memory_utilization` budget (vLLM): weights, the profiled activation peak, CUDA graphs
    # and non-torch allocations come out of total x utilization, the KV cache takes what is left (so only
    # one full-length sequence must fit at start-up) and the CUDA context sits outside the budget. False:
    # the engine allocates a compute buffer and its whole context up front and everything counts (the
    # utilization is only the policy's headroom).
    utilization_budget: bool = False
    # The scheduler settings apply: chunked prefill, max_num_batched_tokens and the KV cache block size.
    scheduler_settings: bool = False
    # Caches multi-head latent attention's compact latent for every MLA model (vLLM). False: only when the
    # GGUF header records key_length_mla (llama.cpp); full K and V per head otherwise.
    mla_latent_always: bool = False
    # Tensor and pipeline parallelism over several GPUs (the parallel layouts a plan offers). False: whole
    # layers split over the GPUs of one container.
    tensor_parallel: bool = False
    # Serves one model from several nodes (a plan's multi-node launch facts).
    multi_node: bool = False
    # Its kernels need the compute capability of the weights' format and dtype (the floors in
    # `modelformats.gpu.capability`). False: it runs on every GPU Modal offers.
    capability_floors: bool = False
    # What the engine does with a context longer than the model's own (why --max-model-len is capped there).
    longer_context: str = "the engine refuses it"


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsSpec:
    """What is to be served, independent of GPU sizing."""

    format: str
    repo_id: str
    revision: str | None
    # What the engine loads: a repo directory ("hf-directory"), or a local file path ("gguf-file").
    model: str
    container: Container = "hf-directory"
    # The checkpoint's quantization method in vLLM's vocabulary ("awq", "gptq", "fp8", "gguf", ...).
    quantization: str | None = None
    # Name the method in argv (the format's `serving.quantization_flag`).
    quantization_flag: bool = False
    # The plugin that provides `quantization` where vLLM lacks it in-tree (the format's `serving.vllm_plugin`).
    vllm_plugin: VllmQuantPlugin | None = None
    # Repo id or local directory with tokenizer files, when not `model`.
    tokenizer: str | None = None
    # Repo id or local directory with config.json, when not `model`.
    hf_config_path: str | None = None
    trust_remote_code: bool = False
    # GGUF only: the quant (canonical name), how the weights are split, per-tensor types if a header was read.
    gguf_quant: str | None = None
    gguf_layout: str | None = None
    gguf_tensor_types: tuple[str, ...] | None = None
    # A multimodal projector would be needed (e.g. mmproj); engines that cannot take one refuse.
    needs_projector: bool = False
    # Local path of the projector file (GGUF mmproj) when the plan fetches one.
    projector: str | None = None
    traits: ModelTraits = field(default_factory=ModelTraits)


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeLimits:
    """The memory-bound engine settings the GPU policy owns; `RuntimeSpec` adds how the server listens."""

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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuntimeLimits:
        names = {f.name for f in fields(RuntimeLimits)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeSpec(RuntimeLimits):
    """The limits, and how the server listens: what `Engine.command` is given."""

    served_model_name: str
    dtype: str = "auto"
    # MoE: experts each token is routed to, overriding the model's own number (checked against its metadata
    # by the planner); each engine writes its own override. None: the model's default.
    experts_per_token: int | None = None
    # Where the model's config.json holds that number (ModelTraits.experts_per_token_key, a dotted path such
    # as "text_config.num_experts_per_tok"); None when the metadata does not say.
    experts_per_token_key: str | None = None
    # The KV cache pinned to this many bytes per GPU (the plan's estimate; vLLM --kv-cache-memory-bytes,
    # which then ignores gpu_memory_utilization for the KV cache). None: the engine sizes it itself.
    kv_cache_memory_bytes: int | None = None
    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on every interface
    port: int = 8000

    @classmethod
    def from_limits(cls, limits: RuntimeLimits, **listen: Any) -> RuntimeSpec:
        """`limits` as they are (one record, not copied field by field), plus `served_model_name`, port, ..."""
        return cls(**{f.name: getattr(limits, f.name) for f in fields(RuntimeLimits)}, **listen)


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadVerdict:
    """Whether an engine loads the weights, how we know, and why not."""

    loads: bool
    level: EvidenceLevel
    reasons: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "loads": self.loads,
            "level": self.level.value,
            "level_text": self.level.description,
            "reasons": list(self.reasons),
            "evidence": list(self.evidence),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LoadVerdict:
        return cls(
            loads=bool(d["loads"]),
            level=EvidenceLevel(d["level"]),
            reasons=tuple(d.get("reasons", ())),
            evidence=tuple(d.get("evidence", ())),
            warnings=tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineCommand:
    """The command that starts the server, and what the serving image must have."""

    argv: tuple[str, ...]
    requirements: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    # A container image the engine is best taken from (llama.cpp's CUDA server image), if any.
    image: str | None = None
    notes: tuple[str, ...] = ()
    # uv overrides the requirements need to resolve (a pin of the engine's own that PyPI lacks).
    overrides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "requirements": list(self.requirements),
            "env": dict(self.env),
            "image": self.image,
            "notes": list(self.notes),
            **({"overrides": list(self.overrides)} if self.overrides else {}),
        }


@runtime_checkable
class Engine(Protocol):
    """A serving engine at one version: everything the planner asks of it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    # How a route names the engine: "vllm 0.33.0", "vllm 0.33.0 + modelformats plugin".
    @property
    def label(self) -> str: ...

    # False when the engine reads the tokenizer and chat template embedded in a GGUF (llama.cpp).
    @property
    def needs_tokenizer_files(self) -> bool: ...

    # Optional, like `online_quantization`: `traits`, the engine's `EngineTraits` (what the planner ranks by
    # and the GPU policy sizes by). Without it the built-in engine of its name's apply
    # (`modelformats.engines.builtin.traits_of`).

    def refuse_gguf_quant(self, name: str) -> str | None:
        """Why the engine cannot load GGUF tensors of quant `name`, or None (file selection skips those)."""
        ...

    def min_compute_capability(self, weights: WeightsSpec) -> tuple[int, int] | None:
        """The engine's own compute-capability floor for the weights, or None."""
        ...

    def check(self, weights: WeightsSpec) -> LoadVerdict: ...

    def command(self, weights: WeightsSpec, runtime: RuntimeSpec, verdict: LoadVerdict) -> EngineCommand:
        """The argv for weights `check` said load (`verdict`, passed on rather than recomputed)."""
        ...
