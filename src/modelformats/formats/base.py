"""The `ModelFormat` protocol every format strategy implements, and the values it returns.

A strategy answers two questions about a `RepoListing`, from metadata only:
`detect` — is this my format, and what decided it (evidence)? — and `select_files` — exactly which
files must be fetched to serve it. Precedence between strategies that both match is each
strategy's `priority` (higher wins); the registry records the losers too.

It also owns every serving fact of its format (`serving`, a `ServingFacts`): the engines that can
serve it, its vLLM quantization name, its compute-capability floor. The planner, the engines and
the GPU policy read these facts; none of them keeps a table keyed by format name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from modelformats.listing import ListingSource, RepoListing
from modelformats.weightbytes import WeightBytes

__all__ = [
    "ENGINE_KINDS",
    "BaseFormat",
    "CapabilityFloor",
    "Container",
    "Detection",
    "Exclusion",
    "FileSelection",
    "JoinPlan",
    "ModelFormat",
    "SelectionContext",
    "ServingFacts",
    "TokenizerSource",
    "VllmQuantPlugin",
]

# What an engine is pointed at: a transformers-style repo directory (config.json + weights), or one GGUF file.
Container = Literal["hf-directory", "gguf-file"]
# The engines a format may name in `ServingFacts.engines`, in the planner's order. The plugin variant is
# vLLM with modelformats' own vLLM plugin in the image (GGUF layouts vLLM's loader gets wrong).
ENGINE_KINDS = ("vllm", "vllm+modelformats-plugin", "llamacpp")


@dataclass(frozen=True, kw_only=True, slots=True)
class CapabilityFloor:
    """Weights of kind `key` need compute capability >= `minimum` on the engine, and why (`source`)."""

    key: str
    minimum: tuple[int, int]
    source: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class VllmQuantPlugin:
    """The out-of-tree package that provides a quantization method to vLLM versions without it in-tree.

    Read from the plugin's wheel: the requirement, its `vllm.general_plugins` entry point name (what
    VLLM_PLUGINS must name), and what its loader refuses (`limits`, each with the file:line).
    """

    method: str
    requirement: str
    # The entry point name in the wheel's entry_points.txt; VLLM_PLUGINS must list it.
    plugin_name: str
    source: str
    # The version the method left vLLM's tree in (documentation for the route's reasons).
    left_vllm_in: str
    # Pre-quantized checkpoints cannot be split by tensor parallelism (the loader raises); the fix.
    refuses_tensor_parallel: str | None = None
    # Caveats the loader states for MoE checkpoints (shown as a warning on MoE models).
    moe_caveat: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingFacts:
    """How a format is served. Owned by its strategy; read by the planner, engines and GPU policy."""

    # Engines that can serve the format (ENGINE_KINDS), in the planner's order; () = not servable.
    engines: tuple[str, ...] = ()
    container: Container = "hf-directory"
    # The method name in vLLM's QUANTIZATION_METHODS; None = unquantized, or whatever config.json says.
    vllm_quantization: str | None = None
    # Name the method in argv (--quantization). Off for methods vLLM upgrades when left to config.json
    # (gptq -> gptq_marlin, awq -> awq_marlin): an explicit flag would pin the slower kernel.
    quantization_flag: bool = False
    # The lowest compute capability the format's kernels need; None: no floor of its own.
    capability_floor: CapabilityFloor | None = None
    # Weights stored at config.json's torch_dtype (not quantized): the dtype sizes them and sets the floor.
    weights_in_torch_dtype: bool = False
    # A conversion of a base model (GGUF): the base model's native weights are another route.
    base_model_routes: bool = False
    # The format `modelformats convert` rewrites these weights into (GGUF: "safetensors"), served by that
    # format's engines after download when no base model's native weights are found; None: no conversion.
    converts_to: str | None = None
    # Where vLLM lacks `vllm_quantization` in-tree, the plugin package that registers it (bitsandbytes).
    vllm_plugin: VllmQuantPlugin | None = None

    def __post_init__(self) -> None:
        unknown = [e for e in self.engines if e not in ENGINE_KINDS]
        if unknown:
            raise ValueError(f"ServingFacts.engines names unknown engine(s) {unknown}; known: {list(ENGINE_KINDS)}.")


@dataclass(frozen=True, kw_only=True, slots=True)
class Detection:
    """A strategy's claim on a listing, with the evidence that decided it."""

    format: str
    evidence: tuple[str, ...]
    # The vLLM quantization method the weights carry (None for unquantized), when known.
    quantization: str | None = None
    servable: bool = True
    # For unservable formats: why, and what to use instead.
    reason: str | None = None
    instead: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "evidence": list(self.evidence)}
        if self.quantization is not None:
            out["quantization"] = self.quantization
        if not self.servable:
            out.update(servable=False, reason=self.reason, instead=self.instead)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Detection:
        """The JSON form. It carries no `details` (the strategy's notes for its own file selection), and
        `reason` / `instead` only for an unservable format: a claim read back has none of them otherwise."""
        return cls(
            format=str(d["format"]),
            evidence=tuple(d.get("evidence", ())),
            quantization=d.get("quantization"),
            servable=bool(d.get("servable", True)),
            reason=d.get("reason"),
            instead=d.get("instead"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Exclusion:
    """Files deliberately not fetched, grouped by reason."""

    reason: str
    paths: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "paths": list(self.paths)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Exclusion:
        return cls(reason=str(d["reason"]), paths=tuple(d.get("paths", ())))


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenizerSource:
    """A repo (other than the weights repo) from which only tokenizer/config files are fetched."""

    repo_id: str
    files: tuple[str, ...]
    # Patterns for snapshot_download: the observed files plus standard names when the listing is partial.
    allow_patterns: tuple[str, ...]
    reason: str
    revision: str | None = None
    download_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "files": list(self.files),
            "allow_patterns": list(self.allow_patterns),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, download_bytes: int | None = None) -> TokenizerSource:
        """The JSON form carries no size (the plan's download item does): pass it as `download_bytes`."""
        return cls(
            repo_id=str(d["repo_id"]),
            revision=d.get("revision"),
            files=tuple(d.get("files", ())),
            allow_patterns=tuple(d.get("allow_patterns", ())),
            reason=str(d.get("reason", "")),
            download_bytes=download_bytes,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class JoinPlan:
    """Raw byte parts (`.gguf.partXofY`) concatenated, in order, into `output` after download."""

    output: str
    parts: tuple[str, ...]
    expected_bytes: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FileSelection:
    """Exactly what to fetch from the weights repo (and, for GGUF, from a tokenizer repo)."""

    files: tuple[str, ...]
    weight_files: tuple[str, ...]
    allow_patterns: tuple[str, ...]
    download_bytes: int | None
    bytes_estimated: bool
    bytes_basis: str
    tokenizer: TokenizerSource | None = None
    excluded: tuple[Exclusion, ...] = ()
    notes: tuple[str, ...] = ()
    # GGUF: the quant chosen (canonical upper-case name); None for other formats.
    quant: str | None = None
    # The file an engine is pointed at when it takes a file, not a repo (GGUF: shard 1 or the joined file).
    model_file: str | None = None
    # Raw byte splits (`.gguf.partXofY`) to concatenate after download.
    joins: tuple[JoinPlan, ...] = ()
    # How the weights are split ("single", "split", "parts"; GGUF), when the engine needs to know.
    layout: str | None = None
    # The base model's repo (tokenizer/config source), when it is another repo than the weights'.
    base_repo: str | None = None
    # A multimodal projector (mmproj) is needed to serve the weights.
    needs_projector: bool = False
    # Further facts for people and tests (quant name, shard count, ...); the planner never reads them.
    details: Mapping[str, Any] = field(default_factory=dict)
    # What the user must know about the chosen files (a name its header contradicts); reaches plan.warnings.
    warnings: tuple[str, ...] = ()
    # Bytes per weight as this format stores them (sizes the weights when the listing has no sizes, and
    # counts parameters from sizes when nothing else does); None: the format does not say.
    weight_bytes: WeightBytes | None = None


@dataclass(frozen=True, kw_only=True)
class SelectionContext:
    """Inputs to `select_files` beyond the listing."""

    # To confirm or read related repos (a GGUF's tokenizer source). None: no look-ups.
    source: ListingSource | None = None
    quant: str | None = None
    quant_order: tuple[str, ...] | None = None
    tokenizer_from: str | None = None
    # The engine's filter on GGUF quant/tensor types: returns why a type is refused, or None.
    refuse_quant: Callable[[str], str | None] | None = None
    # False for engines that read the tokenizer and chat template embedded in a GGUF (llama.cpp).
    needs_tokenizer: bool = True
    # True when the selected weights are converted after download (`ServingFacts.converts_to`): a strategy
    # may then prefer other files (the GGUF one: an unquantized file, which converts without dequantizing).
    for_conversion: bool = False


@runtime_checkable
class ModelFormat(Protocol):
    """A format strategy. Fakes need no inheritance; the registry checks these members exist."""

    # Read-only members: a strategy may define them as class attributes.
    @property
    def name(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def description(self) -> str: ...

    @property
    def serving(self) -> ServingFacts: ...

    def detect(self, listing: RepoListing) -> Detection | None: ...

    def select_files(self, listing: RepoListing, detection: Detection, context: SelectionContext) -> FileSelection: ...


class BaseFormat:
    """Optional base class with defaults shared by the built-in strategies."""

    name: ClassVar[str]
    priority: ClassVar[int]
    description: ClassVar[str]
    serving: ClassVar[ServingFacts] = ServingFacts()

    def detect(self, listing: RepoListing) -> Detection | None:
        raise NotImplementedError

    def select_files(self, listing: RepoListing, detection: Detection, context: SelectionContext) -> FileSelection:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} priority={self.priority}>"
