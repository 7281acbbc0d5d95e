"""`DeploymentPlan`: the one object the rest of the world consumes (CLI, download, Modal example).

It is data with a JSON round trip (`to_dict` / `from_dict`, the one place a plan is parsed back):
what to fetch, where it lands, the engine command, the GPU and the memory-bound settings, ranked
alternatives with prices, and an explanation in sentences. The engine's verdicts, the tokenizer
source, the exclusions, the runtime limits and what the GPU policy computed are the typed records
the library made. Where the library's own record holds more than a plan file can (the GPU decision's
catalogue entry and rule, the memory estimate's layout, the detection's strategy object), the plan holds
its summary record: `GpuSummary`, `MemorySummary`, `DetectionSummary`, exactly the fields the JSON
carries. A plan read back from JSON equals the plan written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from modelformats.engines.base import LoadVerdict, RuntimeLimits
from modelformats.errors import InvalidListingError, InvalidRepoIdError, InvalidRequestError
from modelformats.fetch import Digest
from modelformats.formats.base import Exclusion, TokenizerSource
from modelformats.gpu.capability import CapabilityRequirement
from modelformats.gpu.decision import GpuSummary, LaunchFacts, ParallelOption, PolicyComparison
from modelformats.gpu.estimate import MemorySummary
from modelformats.listing import check_repo_path, validate_repo_id
from modelformats.registry import DetectionSummary
from modelformats.traits import ModelTraits

__all__ = [
    "PLAN_SCHEMA",
    "Alternative",
    "ConvertStep",
    "DeploymentPlan",
    "DownloadItem",
    "DownloadSection",
    "EnginePlan",
    "JoinStep",
]

PLAN_SCHEMA = "modelformats-plan/1"


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if value is not None else ()


# --- the download section's checks: a plan file is untrusted input, and download acts on it --------------

_FIX = "make the plan with `modelformats plan --json`"


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequestError(f"The plan's {field} must be a list, got {type(value).__name__}; {_FIX}.")
    return value


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"The plan's {field} must be a list of strings, got {value!r:.80}; {_FIX}.")
    return tuple(value)


def _check_pattern(pattern: str) -> str:
    # A pattern selects repo paths; it must look like one (no '..', absolute paths or backslashes).
    check_repo_path(pattern.replace("*", "x").replace("?", "x").replace("[", "x").replace("]", "x"))
    return pattern


def _hashes(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequestError(
            f"The plan's {field} must map repo paths to 'sha256:<hex>' or 'git-sha1:<hex>' strings, got "
            f"{value!r:.80}; {_FIX}."
        )
    return {path: str(Digest.parse(text)) for path, text in value.items()}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadItem:
    """Files of one repo and the local directory they land in (repo paths kept)."""

    repo_id: str
    revision: str | None
    files: tuple[str, ...]
    allow_patterns: tuple[str, ...]
    local_dir: str
    bytes: int | None
    bytes_estimated: bool
    # Sizes of the files whose size the listing records (repo path -> bytes).
    sizes: Mapping[str, int] = field(default_factory=dict)
    # The Hub's hash of each file whose hash the listing records (repo path -> 'sha256:<hex>' / 'git-sha1:<hex>').
    hashes: Mapping[str, str] = field(default_factory=dict)
    # The local model directory the files are copied from (a plan made from a directory); None: the Hub.
    source_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        local = {"source_dir": self.source_dir} if self.source_dir is not None else {}
        return local | {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "files": list(self.files),
            "allow_patterns": list(self.allow_patterns),
            "local_dir": self.local_dir,
            "bytes": self.bytes,
            "bytes_estimated": self.bytes_estimated,
            "sizes": dict(self.sizes),
            "hashes": dict(self.hashes),
        }

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "download.items[i]") -> DownloadItem:
        """`to_dict`'s output read back and checked (`where` names the item in messages): the repo id, the repo
        paths and patterns, the hashes; InvalidRequestError or UnsafePathError naming the field otherwise."""
        if not isinstance(d, Mapping) or not isinstance(d.get("repo_id"), str):
            raise InvalidRequestError(f"The plan's {where} must be an object with a repo_id; {_FIX}.")
        try:
            validate_repo_id(d["repo_id"])
        except InvalidRepoIdError as exc:
            raise InvalidRequestError(f"The plan's {where}.repo_id: {exc}") from None
        local_dir = d.get("local_dir")
        if not isinstance(local_dir, str):
            raise InvalidRequestError(
                f"The plan's {where}.local_dir must be a path string, got {local_dir!r:.80}; {_FIX}."
            )
        files = tuple(check_repo_path(p) for p in _strings(d.get("files", []), f"{where}.files"))
        patterns = tuple(_check_pattern(p) for p in _strings(d.get("allow_patterns", []), f"{where}.allow_patterns"))
        source_dir = d.get("source_dir")
        if source_dir is not None and not (isinstance(source_dir, str) and Path(source_dir).is_absolute()):
            raise InvalidRequestError(
                f"The plan's {where}.source_dir {source_dir!r} must be an absolute path (the local model directory "
                "the plan was made from). Re-plan from that directory."
            )
        sizes = d.get("sizes")
        revision = d.get("revision")
        return cls(
            repo_id=d["repo_id"],
            revision=revision if isinstance(revision, str) else None,
            files=files,
            allow_patterns=patterns,
            local_dir=local_dir,
            bytes=_int(d.get("bytes")),
            bytes_estimated=d.get("bytes_estimated") is True,
            # Sizes are advisory (the fetch checks the Hub's): entries that are not path -> int are dropped.
            sizes={k: v for k, v in sizes.items() if isinstance(k, str) and _int(v) is not None}
            if isinstance(sizes, Mapping)
            else {},
            hashes=_hashes(d.get("hashes"), f"{where}.hashes"),
            source_dir=source_dir,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class JoinStep:
    """Raw byte splits (`x.gguf.part1of2`, ...) concatenated, in order, into `output` after download."""

    output: str
    parts: tuple[str, ...]
    expected_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "parts": list(self.parts), "expected_bytes": self.expected_bytes}

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "download.joins[i]") -> JoinStep:
        """`to_dict`'s output read back and checked; InvalidRequestError naming the field otherwise."""
        if not isinstance(d, Mapping) or not isinstance(d.get("output"), str):
            raise InvalidRequestError(f"The plan's {where} must be an object with an output path; {_FIX}.")
        return cls(
            output=d["output"],
            parts=_strings(d.get("parts"), f"{where}.parts"),
            expected_bytes=_int(d.get("expected_bytes")),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ConvertStep:
    """`modelformats convert` of the downloaded GGUF `gguf` into the safetensors directory `output`, after
    download and joins. `base`: a downloaded directory whose config.json and tokenizer the conversion takes
    (checked against the GGUF) when it holds a config.json; otherwise both come from the GGUF itself."""

    gguf: str
    output: str
    dtype: str
    base: str | None = None
    # The GGUF's bytes (None: unknown) and the conversion time they give at the measured rate.
    source_bytes: int | None = None
    estimated_seconds: int | None = None
    estimate_basis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "gguf": self.gguf,
            "output": self.output,
            "dtype": self.dtype,
            "base": self.base,
            "source_bytes": self.source_bytes,
            "estimated_seconds": self.estimated_seconds,
            "estimate_basis": self.estimate_basis,
        }

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "download.converts[i]") -> ConvertStep:
        """`to_dict`'s output read back and checked; InvalidRequestError naming the field otherwise."""
        if not isinstance(d, Mapping) or not all(isinstance(d.get(k), str) for k in ("gguf", "output", "dtype")):
            raise InvalidRequestError(
                f"The plan's {where} must be an object with gguf, output and dtype strings; {_FIX}."
            )
        base = d.get("base")
        if base is not None and not isinstance(base, str):
            raise InvalidRequestError(f"The plan's {where}.base must be a path or null, got {base!r:.80}; {_FIX}.")
        basis = d.get("estimate_basis")
        return cls(
            gguf=d["gguf"],
            output=d["output"],
            dtype=d["dtype"],
            base=base,
            source_bytes=_int(d.get("source_bytes")),
            estimated_seconds=_int(d.get("estimated_seconds")),
            estimate_basis=basis if isinstance(basis, str) else "",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadSection:
    """The plan's `download` section: the root every file lands under, the repos' files, the joins and the
    conversions. It is all `modelformats.download` reads of a plan, so a plan document holding only this
    section (and its repo ids) can be downloaded; `DeploymentPlan.download_section` is the whole plan's."""

    root: str
    items: tuple[DownloadItem, ...] = ()
    joins: tuple[JoinStep, ...] = ()
    converts: tuple[ConvertStep, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "items": [i.to_dict() for i in self.items],
            "joins": [j.to_dict() for j in self.joins],
            "converts": [c.to_dict() for c in self.converts],
        }

    @classmethod
    def from_dict(cls, d: Any) -> DownloadSection:
        """`to_dict`'s output read back and checked (an absolute root; each item, join and conversion as their
        own `from_dict` checks them); InvalidRequestError or UnsafePathError naming the field otherwise."""
        if not isinstance(d, Mapping) or not isinstance(d.get("root"), str):
            raise InvalidRequestError(
                "The plan has no download section with a root; make it with `modelformats plan --json` "
                "(DeploymentPlan.to_dict())."
            )
        if not Path(d["root"]).expanduser().is_absolute():
            raise InvalidRequestError(f"The plan's download root {d['root']!r} must be an absolute path; {_FIX}.")
        return cls(
            root=d["root"],
            items=tuple(
                DownloadItem.from_dict(raw, where=f"download.items[{i}]")
                for i, raw in enumerate(_list(d.get("items"), "download.items"))
            ),
            joins=tuple(
                JoinStep.from_dict(raw, where=f"download.joins[{i}]")
                for i, raw in enumerate(_list(d.get("joins"), "download.joins"))
            ),
            converts=tuple(
                ConvertStep.from_dict(raw, where=f"download.converts[{i}]")
                for i, raw in enumerate(_list(d.get("converts"), "download.converts"))
            ),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class EnginePlan:
    """The serving engine, its command line and what its image needs."""

    name: str
    version: str
    argv: tuple[str, ...]
    requirements: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    verdict: LoadVerdict | None = None
    notes: tuple[str, ...] = ()
    # `uv pip install --override` lines the requirements need to resolve (only when there are any).
    overrides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "argv": list(self.argv),
            "requirements": list(self.requirements),
            "env": dict(self.env),
            "image": self.image,
            "verdict": self.verdict.to_dict() if self.verdict is not None else {},
            "notes": list(self.notes),
            **({"overrides": list(self.overrides)} if self.overrides else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnginePlan:
        return cls(
            name=d["name"],
            version=d["version"],
            argv=_tuple(d.get("argv")),
            requirements=_tuple(d.get("requirements")),
            env=dict(d.get("env") or {}),
            image=d.get("image"),
            verdict=LoadVerdict.from_dict(d["verdict"]) if d.get("verdict") else None,
            notes=_tuple(d.get("notes")),
            overrides=_tuple(d.get("overrides")),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Alternative:
    """Another way to serve the same model, ranked, priced, and with the reason it was not chosen."""

    rank: int
    label: str
    repo_id: str
    format: str
    engine: str
    loads: bool
    verdict: LoadVerdict
    gpu: GpuSummary | None
    price_per_hour: float | None
    download_bytes: int | None
    reason: str
    quant: str | None = None
    argv: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "label": self.label,
            "repo_id": self.repo_id,
            "format": self.format,
            "quant": self.quant,
            "engine": self.engine,
            "loads": self.loads,
            "verdict": self.verdict.to_dict(),
            "gpu": self.gpu.to_dict() if self.gpu is not None else None,
            "price_per_hour": self.price_per_hour,
            "download_bytes": self.download_bytes,
            "reason": self.reason,
            "argv": list(self.argv),
            "requirements": list(self.requirements),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alternative:
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in d.items() if k in names}
        data["argv"] = _tuple(d.get("argv"))
        data["requirements"] = _tuple(d.get("requirements"))
        data["verdict"] = LoadVerdict.from_dict(d["verdict"])
        data["gpu"] = GpuSummary.from_dict(d["gpu"]) if d.get("gpu") else None
        return cls(**data)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeploymentPlan:
    repo_id: str
    revision: str | None
    # The repo whose weights are served (the base repo when a GGUF repo is routed to native weights).
    weights_repo_id: str
    format: str
    quantization: str | None
    quant: str | None
    detection: DetectionSummary
    files: tuple[str, ...]
    tokenizer: TokenizerSource | None
    download_root: str
    downloads: tuple[DownloadItem, ...]
    joins: tuple[JoinStep, ...]
    download_bytes: int | None
    download_bytes_estimated: bool
    served_model_name: str
    port: int
    engine: EnginePlan
    gpu: GpuSummary | None
    runtime: RuntimeLimits
    memory: MemorySummary | None
    traits: ModelTraits
    alternatives: tuple[Alternative, ...]
    explanation: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    # What the GPU policy computed beyond the GPUs and limits: the compute-capability floor it applied,
    # the parallel layouts (the first is the planned one), multi-node launch facts, the other policy's answer.
    compute_capability: CapabilityRequirement | None = None
    parallel_options: tuple[ParallelOption, ...] = ()
    launch: LaunchFacts | None = None
    other_policy: PolicyComparison | None = None
    # GGUF -> safetensors conversions run after download (the converted route); empty for every other plan.
    converts: tuple[ConvertStep, ...] = ()

    @property
    def download_section(self) -> DownloadSection:
        """What `modelformats.download` fetches, joins and converts: the plan's `download` section."""
        return DownloadSection(root=self.download_root, items=self.downloads, joins=self.joins, converts=self.converts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "weights_repo_id": self.weights_repo_id,
            "format": self.format,
            "quantization": self.quantization,
            "quant": self.quant,
            "detection": self.detection.to_dict(),
            "files": list(self.files),
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            "download": self.download_section.to_dict(),
            "download_bytes": self.download_bytes,
            "download_bytes_estimated": self.download_bytes_estimated,
            "served_model_name": self.served_model_name,
            "port": self.port,
            "engine": self.engine.to_dict(),
            # Legacy key (before `engine`), kept for readers of modelformats-plan/1: its name is the engine's
            # name, so it is written for that engine alone. Not read back: `engine.argv` is the command.
            "vllm": {"argv": list(self.engine.argv)} if self.engine.name == "vllm" else None,
            "gpu": self.gpu.to_dict() if self.gpu is not None else None,
            "runtime": self.runtime.to_dict(),
            "memory": self.memory.to_dict() if self.memory is not None else None,
            "traits": self.traits.to_dict(),
            "alternatives": [a.to_dict() for a in self.alternatives],
            "explanation": list(self.explanation),
            "warnings": list(self.warnings),
            "excluded": [e.to_dict() for e in self.excluded],
            "compute_capability": self.compute_capability.to_dict() if self.compute_capability else None,
            "parallel_options": [p.to_dict() for p in self.parallel_options],
            "launch": self.launch.to_dict() if self.launch is not None else None,
            "other_policy": self.other_policy.to_dict() if self.other_policy is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeploymentPlan:
        if d.get("schema") != PLAN_SCHEMA:
            raise InvalidListingError(
                f"Not a modelformats plan: 'schema' is {d.get('schema')!r}, expected {PLAN_SCHEMA!r}.",
                field="schema",
            )
        # The download section is checked where it is read (DownloadSection.from_dict); a plan without one
        # (only its engine command is wanted, e.g. by bench) reads as downloading nothing to /models.
        download = DownloadSection.from_dict(d["download"]) if d.get("download") else DownloadSection(root="/models")
        downloads = download.items
        tokenizer = d.get("tokenizer")
        # The tokenizer repo's size is its download item's.
        tok_bytes = next((i.bytes for i in downloads[1:] if tokenizer and i.repo_id == tokenizer["repo_id"]), None)
        return cls(
            repo_id=d["repo_id"],
            revision=d.get("revision"),
            weights_repo_id=d.get("weights_repo_id", d["repo_id"]),
            format=d["format"],
            quantization=d.get("quantization"),
            quant=d.get("quant"),
            detection=DetectionSummary.from_dict(d.get("detection") or {"format": d["format"]}),
            files=_tuple(d.get("files")),
            tokenizer=TokenizerSource.from_dict(tokenizer, download_bytes=tok_bytes) if tokenizer else None,
            download_root=download.root,
            downloads=downloads,
            joins=download.joins,
            download_bytes=d.get("download_bytes"),
            download_bytes_estimated=bool(d.get("download_bytes_estimated", False)),
            served_model_name=d["served_model_name"],
            port=int(d.get("port", 8000)),
            engine=EnginePlan.from_dict(d["engine"]),
            gpu=GpuSummary.from_dict(d["gpu"]) if d.get("gpu") else None,
            runtime=RuntimeLimits.from_dict(d["runtime"]),
            memory=MemorySummary.from_dict(d["memory"]) if d.get("memory") else None,
            traits=ModelTraits.from_dict(d.get("traits") or {}),
            alternatives=tuple(Alternative.from_dict(a) for a in d.get("alternatives", ())),
            explanation=_tuple(d.get("explanation")),
            warnings=_tuple(d.get("warnings")),
            excluded=tuple(Exclusion.from_dict(e) for e in d.get("excluded", ())),
            compute_capability=(
                CapabilityRequirement.from_dict(d["compute_capability"]) if d.get("compute_capability") else None
            ),
            parallel_options=tuple(ParallelOption.from_dict(p) for p in d.get("parallel_options", ())),
            launch=LaunchFacts.from_dict(d["launch"]) if d.get("launch") else None,
            other_policy=PolicyComparison.from_dict(d["other_policy"]) if d.get("other_policy") else None,
            converts=download.converts,
        )
