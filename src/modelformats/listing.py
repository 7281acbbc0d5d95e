"""What a repo holds: `RepoListing` / `RepoFile`, and the `modelformats-listing/1` JSON schema.

A listing is the only input to detection and file selection. It comes from a `ListingSource`
(`modelformats.sources`): the Hub (`sources.hub.HubSource`), a local snapshot directory
(`sources.local.LocalDirSource`) or recorded JSON files (`sources.recorded.RecordedSource`). Real
listings are often partial: sizes may be unknown, config.json may be absent; every consumer must cope.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelformats.errors import (
    InvalidListingError,
    InvalidRepoIdError,
    UnsafePathError,
)

__all__ = [
    "DOCUMENT_NAMES",
    "INDEX_SUFFIX",
    "LISTING_SCHEMA",
    "MAX_DOCUMENT_BYTES",
    "ListingSource",
    "RepoFile",
    "RepoListing",
    "check_repo_path",
    "dump_listing",
    "load_listing",
    "parse_listing",
    "validate_repo_id",
    "write_json_atomic",
]

LISTING_SCHEMA = "modelformats-listing/1"

# JSON documents small enough to keep inside a listing (read by sources, used by detection).
DOCUMENT_NAMES = (
    "config.json",
    "quantize_config.json",
    "quantization_config.json",
    "quant_config.json",
    "adapter_config.json",
    "params.json",
    "generation_config.json",
    "tokenizer_config.json",
)
INDEX_SUFFIX = ".index.json"
# A document larger than this is not kept (a hostile config.json must not fill memory).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|git-sha1:[0-9a-f]{40}")


def validate_repo_id(repo_id: str) -> str:
    """Return `repo_id` if huggingface_hub accepts it as a model id of the form owner/name."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hub_validate

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise InvalidRepoIdError(str(repo_id), "a model repo id has exactly one '/' (owner/name)")
    try:
        hub_validate(repo_id)
    except HFValidationError as exc:
        raise InvalidRepoIdError(repo_id, str(exc).split("\n")[0].rstrip(".")) from None
    return repo_id


def check_repo_path(path: str, *, source: str | None = None) -> str:
    """Refuse paths that could escape a download directory; return the path unchanged."""
    if not isinstance(path, str) or not path:
        raise UnsafePathError(str(path), "the path is empty or not a string", source=source)
    if "\\" in path:
        raise UnsafePathError(path, "backslashes are not allowed (repo paths use '/')", source=source)
    if "\x00" in path:
        raise UnsafePathError(path, "NUL bytes are not allowed", source=source)
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        raise UnsafePathError(path, "absolute paths are not allowed", source=source)
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(path, "empty, '.' and '..' segments are not allowed", source=source)
    return path


@dataclass(frozen=True, kw_only=True, slots=True)
class RepoFile:
    """One file of a repo: its path (always '/'-separated and relative) and size if known."""

    path: str
    size: int | None = None
    # False when the size was rounded from the Hub's display (±0.5 %).
    size_exact: bool = True
    # The hash the Hub records: 'sha256:<hex>' (LFS files) or 'git-sha1:<hex>' (git blob id); None if unknown.
    digest: str | None = None

    def __post_init__(self) -> None:
        check_repo_path(self.path)
        if self.digest is not None and not _DIGEST.fullmatch(str(self.digest)):
            raise InvalidListingError(
                f"File {self.path!r} has digest {self.digest!r}; a digest is 'sha256:' and 64 hex digits, or "
                "'git-sha1:' and 40 (record the listing again with `modelformats record`).",
                field="files[].digest",
            )
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0):
            raise InvalidListingError(
                f"File {self.path!r} has size {self.size!r}; a size is a non-negative integer or null.",
                field="files[].size",
            )

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def suffix(self) -> str:
        """The last extension, lower-cased ('.gguf'), as PurePosixPath.suffix gives it (without its cost)."""
        name = self.name
        dot = name.rfind(".")
        return name[dot:].lower() if 0 < dot < len(name) - 1 else ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size, "size_exact": self.size_exact}
        if self.digest is not None:
            out["digest"] = self.digest
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SafetensorsSummary:
    """The Hub's `model_info().safetensors`: parameter counts per dtype."""

    total: int
    parameters: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "parameters": dict(self.parameters)}


@dataclass(frozen=True, kw_only=True)
class RepoListing:
    """Everything known about one revision of a repo (not slotted: it caches a path index)."""

    repo_id: str
    files: tuple[RepoFile, ...]
    revision: str | None = None
    # True when `files` is the whole tree of the revision; False for partial recordings.
    complete: bool = True
    config: Mapping[str, Any] | None = None
    tags: tuple[str, ...] = ()
    # The model card's `base_model`; a card may name several.
    base_models: tuple[str, ...] = ()
    safetensors: SafetensorsSummary | None = None
    # The Hub's `model_info().gguf` summary, as given.
    gguf: Mapping[str, Any] | None = None
    # Small JSON documents by repo path (quantize_config.json, adapter_config.json, ...).
    documents: Mapping[str, Any] = field(default_factory=dict)
    # For each `*.index.json`: the files its weight_map names (shards), as read.
    index_shards: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Parsed GGUF headers (GGUFHeader.to_dict()) by repo path, when a source read them.
    gguf_headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: str | None = None
    # The local directory the files were listed from (sources.local.LocalDirSource); None for the Hub
    # and recordings. A plan's download copies from it instead of asking the Hub for a 'local/...' id.
    origin_dir: str | None = None

    def __post_init__(self) -> None:
        validate_repo_id(self.repo_id)

    @cached_property
    def _by_path(self) -> dict[str, RepoFile]:
        index: dict[str, RepoFile] = {}
        for f in self.files:
            if f.path in index:
                raise InvalidListingError(f"File {f.path!r} appears twice in {self.repo_id!r}.", field="files")
            index[f.path] = f
        return index

    @cached_property
    def tag_set(self) -> frozenset[str]:
        return frozenset(t.lower() for t in self.tags)

    def has(self, path: str) -> bool:
        return path in self._by_path

    def get(self, path: str) -> RepoFile | None:
        return self._by_path.get(path)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def document(self, path: str) -> Any:
        """The parsed JSON of a small document (config.json is `config`), or None if not read."""
        if path == "config.json" and self.config is not None:
            return self.config
        return self.documents.get(path)

    def total_size(self, paths: Iterable[str]) -> tuple[int | None, bool]:
        """Sum of sizes and whether every one was known and exact."""
        total, exact = 0, True
        for p in paths:
            f = self._by_path.get(p)
            if f is None or f.size is None:
                return None, False
            total += f.size
            exact = exact and f.size_exact
        return total, exact

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": LISTING_SCHEMA,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "complete": self.complete,
            "files": [f.to_dict() for f in self.files],
            "config": dict(self.config) if self.config is not None else None,
            "tags": list(self.tags),
            "base_model": _base_model_out(self.base_models),
        }
        if self.safetensors is not None:
            out["safetensors"] = self.safetensors.to_dict()
        if self.gguf is not None:
            out["gguf"] = dict(self.gguf)
        if self.documents:
            out["documents"] = dict(self.documents)
        if self.index_shards:
            out["index_shards"] = {k: list(v) for k, v in self.index_shards.items()}
        if self.gguf_headers:
            out["gguf_headers"] = {k: dict(v) for k, v in self.gguf_headers.items()}
        if self.notes is not None:
            out["notes"] = self.notes
        return out

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<listing>") -> RepoListing:
        return _parse_listing(data, source)


def _base_model_out(base_models: tuple[str, ...]) -> str | list[str] | None:
    if not base_models:
        return None
    return base_models[0] if len(base_models) == 1 else list(base_models)


# --- schema parsing: every problem reported at once -----------------------------------------------

_TOP_LEVEL = {
    "format", "repo_id", "revision", "complete", "files", "config", "tags", "base_model", "safetensors",
    "gguf", "documents", "index_shards", "gguf_headers", "notes",
}  # fmt: skip


class _Problems:
    """Collects every schema problem so a listing's errors are reported at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[InvalidListingError] = []

    def bad(self, field_name: str, message: str) -> None:
        self.errors.append(
            InvalidListingError(f"{self.source}: field {field_name!r} {message}", source=self.source, field=field_name)
        )

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ExceptionGroup(f"{self.source}: {len(self.errors)} problems in listing", self.errors)


def _parse_listing(data: Any, source: str) -> RepoListing:
    if not isinstance(data, dict):
        raise InvalidListingError(
            f"{source}: a listing is a JSON object, got {type(data).__name__}.", source=source, field="<root>"
        )
    p = _Problems(source)
    if data.get("format") != LISTING_SCHEMA:
        p.bad("format", f"must be {LISTING_SCHEMA!r}, got {data.get('format')!r}")
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        p.bad(unknown[0], f"is not part of {LISTING_SCHEMA} (unknown keys: {', '.join(unknown)})")
    repo_id = data.get("repo_id")
    if not isinstance(repo_id, str):
        p.bad("repo_id", f"must be a string 'owner/name', got {repo_id!r}")
    else:
        try:
            validate_repo_id(repo_id)
        except InvalidRepoIdError as exc:
            p.bad("repo_id", str(exc))
    complete = _typed(p, data, "complete", kind=bool, default=True, what="true or false")
    revision = _typed(p, data, "revision", kind=str, default=None, what="a string or null")
    config = _typed(p, data, "config", kind=dict, default=None, what="an object or null")
    gguf = _typed(p, data, "gguf", kind=dict, default=None, what="an object or null")
    notes = _typed(p, data, "notes", kind=str, default=None, what="a string or null")
    documents = (
        _typed(p, data, "documents", kind=dict, default={}, what="an object mapping repo paths to JSON documents") or {}
    )
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        p.bad("tags", "must be a list of strings")
        tags = []
    files = _parse_files(p, data.get("files"))
    base_models = _parse_base_model(p, data.get("base_model"))
    safetensors = _parse_safetensors(p, data.get("safetensors"))
    index_shards = _parse_index_shards(p, data.get("index_shards", {}))
    headers = data.get("gguf_headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, dict) for v in headers.values()):
        p.bad("gguf_headers", "must be an object mapping repo paths to header objects")
        headers = {}
    for path in [*documents, *index_shards, *headers]:
        try:
            check_repo_path(path, source=source)
        except UnsafePathError as exc:
            p.errors.append(exc)
    p.raise_if_any()
    assert isinstance(repo_id, str)
    return RepoListing(
        repo_id=repo_id,
        revision=revision,
        complete=bool(complete),
        files=tuple(files),
        config=config,
        tags=tuple(tags),
        base_models=base_models,
        safetensors=safetensors,
        gguf=gguf,
        documents=documents,
        index_shards=index_shards,
        gguf_headers=headers,
        notes=notes,
    )


def _typed(p: _Problems, data: dict[str, Any], key: str, *, kind: type, default: Any, what: str) -> Any:
    value = data.get(key, default)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        p.bad(key, f"must be {what}, got {value!r}")
        return default
    return value


def _parse_files(p: _Problems, raw: Any) -> list[RepoFile]:
    if not isinstance(raw, list):
        p.bad("files", f"must be a list of {{path, size, size_exact}} objects, got {type(raw).__name__}")
        return []
    files: list[RepoFile] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            p.bad(f"files[{i}]", f"must be an object with a string 'path', got {item!r}")
            continue
        size_exact = item.get("size_exact", True)
        if not isinstance(size_exact, bool):
            p.bad(f"files[{i}].size_exact", f"must be true or false, got {size_exact!r}")
            continue
        try:
            f = RepoFile(path=item["path"], size=item.get("size"), size_exact=size_exact, digest=item.get("digest"))
        except InvalidListingError as exc:
            p.bad(f"files[{i}]", str(exc))
            continue
        if f.path in seen:
            p.bad("files", f"lists {f.path!r} twice")
        seen.add(f.path)
        files.append(f)
    return files


def _parse_base_model(p: _Problems, base: Any) -> tuple[str, ...]:
    if base is None:
        return ()
    if isinstance(base, str):
        return (base,)
    if isinstance(base, list) and all(isinstance(b, str) for b in base):
        return tuple(base)
    p.bad("base_model", f"must be a string, a list of strings or null, got {base!r}")
    return ()


def _parse_safetensors(p: _Problems, st: Any) -> SafetensorsSummary | None:
    if st is None:
        return None
    params = st.get("parameters") if isinstance(st, dict) else None
    total = st.get("total") if isinstance(st, dict) else None
    if (
        not isinstance(total, int)
        or not isinstance(params, dict)
        or not all(isinstance(k, str) and isinstance(v, int) for k, v in params.items())
    ):
        p.bad("safetensors", "must be {total: int, parameters: {dtype: int}}")
        return None
    return SafetensorsSummary(total=total, parameters=dict(params))


def _parse_index_shards(p: _Problems, raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        p.bad("index_shards", "must be an object mapping index paths to lists of shard paths")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            p.bad(f"index_shards[{key!r}]", "must be a list of shard paths")
            continue
        out[key] = tuple(value)
    return out


def load_listing(path: str | os.PathLike[str]) -> RepoListing:
    """Read a `modelformats-listing/1` JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidListingError(f"Listing file {str(p)!r} does not exist.", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidListingError(f"Cannot read listing file {str(p)!r}: {exc}.", source=str(p)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidListingError(
            f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).", source=str(p)
        ) from None
    return RepoListing.from_dict(data, source=str(p))


def dump_listing(listing: RepoListing, path: str | os.PathLike[str]) -> None:
    """Write a listing atomically (never a partial file)."""
    write_json_atomic(path, listing.to_dict())


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write `data` as indented JSON through a temporary file renamed into place: readers see the old
    file or the whole new one, never a partial file. The parent directory must exist."""
    p = Path(path)
    text = json.dumps(data, indent=2) + "\n"  # serialise first: a TypeError leaves nothing behind
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)


# --- the source protocol ---------------------------------------------------------------------------


@runtime_checkable
class ListingSource(Protocol):
    """Where listings come from. `exists` lets a planner confirm a related repo cheaply.

    A source may set `knows_every_repo = True` when its RepoNotFoundError means the repo does not exist
    at all (the Hub does; recordings and a local directory hold only some repos). It is read with
    `getattr(source, "knows_every_repo", False)`, so sources without it keep working.
    """

    def fetch(self, repo_id: str, *, revision: str | None = None) -> RepoListing: ...

    def exists(self, repo_id: str) -> bool: ...


def parse_listing(data: Any, source: str) -> RepoListing:
    """A listing from parsed `modelformats-listing/1` JSON; every problem reported at once."""
    return _parse_listing(data, source)
