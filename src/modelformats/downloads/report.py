"""What a download fetched, joined and wrote (or, for a dry run, would): `DownloadReport` and its files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DownloadReport", "PlannedFile"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedFile:
    """One file (or a guessed name the repo may not have) and where it lands."""

    repo_id: str
    revision: str | None
    path: str
    local_path: str
    bytes: int | None
    # True for standard names requested from a partially listed repo (skipped if absent).
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "path": self.path,
            "local_path": self.local_path,
            "bytes": self.bytes,
            "optional": self.optional,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadReport:
    """What was (or, for a dry run, would be) fetched, joined and written."""

    root: str
    dry_run: bool
    files: tuple[PlannedFile, ...]
    # Joined outputs (local paths).
    joins: tuple[str, ...]
    plan_path: str
    # Model GGUFs whose header and size were checked after download.
    verified: tuple[str, ...] = ()
    # Files checked against the Hub's hash (local paths), and the bytes this run transferred.
    hash_verified: tuple[str, ...] = ()
    transferred_bytes: int = 0
    # Orphaned partial files deleted before the download.
    cleaned: tuple[str, ...] = ()
    # Files copied from a local model directory (local paths).
    copied: tuple[str, ...] = ()
    # Directories the plan's GGUF -> safetensors conversions write (local paths), and those written this run.
    converts: tuple[str, ...] = ()
    converted: tuple[str, ...] = ()
    # Bytes of the planned (not optional) files: per repo, the sum of the file sizes when every one is
    # known, else the plan's total for that repo; None when neither is known for some repo.
    total_bytes: int | None = None
    # True when some repo's total is an estimate (the plan's `bytes_estimated`).
    total_estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "dry_run": self.dry_run,
            "files": [f.to_dict() for f in self.files],
            "joins": list(self.joins),
            "plan_path": self.plan_path,
            "verified": list(self.verified),
            "hash_verified": list(self.hash_verified),
            "transferred_bytes": self.transferred_bytes,
            "cleaned": list(self.cleaned),
            "copied": list(self.copied),
            "converts": list(self.converts),
            "converted": list(self.converted),
            "total_bytes": self.total_bytes,
            "total_estimated": self.total_estimated,
        }

    def render(self, *, explain: bool = True, width: int | None = None) -> str:
        """The human report (modelformats.render.render_download): per repo, its files and sizes."""
        from modelformats.render import render_download

        return render_download(self, explain=explain, width=width)
