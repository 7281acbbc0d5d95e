"""What a source reads besides the file list: small JSON documents and one GGUF header."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelformats.errors import GGUFHeaderError
from modelformats.listing import (
    DOCUMENT_NAMES,
    INDEX_SUFFIX,
    MAX_DOCUMENT_BYTES,
    RepoFile,
)

__all__ = ["Documents", "collect_documents", "read_one_gguf_header", "representative_gguf", "shards_of_index"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Documents:
    """The small JSON documents of a repo, as `collect_documents` found them."""

    config: Mapping[str, Any] | None = None
    documents: Mapping[str, Any] = field(default_factory=dict)
    index_shards: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def collect_documents(files: Iterable[RepoFile], read_json: Callable[[str], Any]) -> Documents:
    """Read config.json and the other DOCUMENT_NAMES at the root, and every `*.index.json`'s shard list.

    `read_json(repo_path)` returns the parsed JSON, or None when it is not valid JSON. Files of unknown
    size or larger than MAX_DOCUMENT_BYTES are never read (a hostile config.json must not fill memory).
    """
    config: Mapping[str, Any] | None = None
    documents: dict[str, Any] = {}
    index_shards: dict[str, tuple[str, ...]] = {}
    for f in files:
        if f.size is None or f.size > MAX_DOCUMENT_BYTES:
            continue
        if f.folder == "" and f.name in DOCUMENT_NAMES:
            doc = read_json(f.path)
            if f.path == "config.json":
                config = doc if isinstance(doc, dict) else None
            elif doc is not None:
                documents[f.path] = doc
        elif f.name.endswith(INDEX_SUFFIX):
            shards = shards_of_index(read_json(f.path), folder=f.folder)
            if shards is not None:
                index_shards[f.path] = shards
    return Documents(config=config, documents=documents, index_shards=index_shards)


def representative_gguf(files: Iterable[RepoFile]) -> str | None:
    """The GGUF whose header stands for the repo: the smallest model file (shard 1 of a split), by the
    GGUF module's own rules (projectors, imatrix files and draft heads are not models; any case of
    `.gguf`). All quants of a repo share one architecture, so the smallest costs the least to open."""
    from modelformats.gguf.files import inventory_gguf

    by_path = {f.path: f for f in files}
    # A byte-split unit's model file exists only after the join, so it has no header to read remotely.
    candidates = [by_path[u.model_file] for u in inventory_gguf(by_path).units if u.model_file in by_path]
    if not candidates:
        return None
    return min(candidates, key=lambda f: (f.size if f.size is not None else 1 << 62, f.path)).path


def read_one_gguf_header(
    files: Sequence[RepoFile],
    read: Callable[[str], Mapping[str, Any]],
    *,
    also_catch: tuple[type[Exception], ...] = (),
) -> tuple[dict[str, Mapping[str, Any]], str | None]:
    """({path: header}, None) for the representative GGUF, or ({}, why not) when reading it failed.

    A header only enriches a listing (architecture, experts, parameter count): a GGUFHeaderError (a v1
    file, a server that ignores Range, a limit) or one of `also_catch` is turned into a note.
    """
    path = representative_gguf(files)
    if path is None:
        return {}, None
    caught: tuple[type[Exception], ...] = (GGUFHeaderError, *also_catch)
    try:
        return {path: read(path)}, None
    except caught as exc:
        reason = str(exc) if isinstance(exc, GGUFHeaderError) else f"{type(exc).__name__}: {exc}"
        return {}, f"the GGUF header of {path} was not read, so the plan goes without it ({reason})"


def shards_of_index(doc: Any, *, folder: str = "") -> tuple[str, ...] | None:
    """The distinct files named by an index's weight_map, as repo paths (None if malformed)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        return None
    names = {v for v in doc["weight_map"].values() if isinstance(v, str)}
    prefix = f"{folder}/" if folder else ""
    return tuple(sorted(prefix + n for n in names))
