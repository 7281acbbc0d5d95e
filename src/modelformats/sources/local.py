"""A snapshot already on disk, listed as one repo."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelformats.errors import InvalidListingError, RepoNotFoundError
from modelformats.listing import (
    RepoFile,
    RepoListing,
    validate_repo_id,
)
from modelformats.sources.documents import collect_documents, read_one_gguf_header

__all__ = ["LocalDirSource"]


class LocalDirSource:
    """A snapshot already on disk (e.g. from `snapshot_download`), listed as repo `repo_id`."""

    knows_every_repo = False

    def __init__(self, root: str | os.PathLike[str], *, repo_id: str, read_gguf_headers: bool = True) -> None:
        """`read_gguf_headers`: read the header of one GGUF (see `representative_gguf`) into the listing."""
        self.root = Path(root)
        self.repo_id = validate_repo_id(repo_id)
        self.read_gguf_headers = read_gguf_headers
        if not self.root.is_dir():
            raise InvalidListingError(f"{str(self.root)!r} is not a directory.", source=str(self.root))

    def exists(self, repo_id: str) -> bool:
        return repo_id.lower() == self.repo_id.lower()

    def fetch(self, repo_id: str, *, revision: str | None = None) -> RepoListing:
        if not self.exists(repo_id):
            raise RepoNotFoundError(repo_id, hint=f"This local source only holds {self.repo_id!r}.")
        from modelformats.localfs import allowed_roots, regular_file_size

        files: list[RepoFile] = []
        roots = allowed_roots(self.root)
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            # os.walk lists a symlinked folder among dirnames without entering it: check it like a file.
            entries = [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]
            for name in sorted(entries):
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                size = regular_file_size(self.root, full, roots)  # lstat first: a FIFO is refused, never opened
                files.append(RepoFile(path=rel, size=size, size_exact=True))
        files.sort(key=lambda f: f.path)
        docs = collect_documents(files, lambda path: _read_json(self.root / path))
        headers: dict[str, Mapping[str, Any]] = {}
        notes = f"listed from local directory {self.root}"
        if self.read_gguf_headers:
            from modelformats.gguf.header import read_header

            headers, problem = read_one_gguf_header(files, lambda path: read_header(self.root / path).to_dict())
            notes += f"; {problem}" if problem else ""
        return RepoListing(
            repo_id=self.repo_id,
            revision=revision,
            complete=True,
            files=tuple(files),
            config=docs.config,
            documents=docs.documents,
            index_shards=docs.index_shards,
            gguf_headers=headers,
            notes=notes,
            origin_dir=str(self.root.resolve()),
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
