"""A download root's own state: partial files under hashed names, the record of verified files (so a second
run does not hash 20 GB again), and the cleaning of orphaned partials and leftovers."""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelformats.downloads.section import PlannedItem, PlannedJoin
from modelformats.downloads.targets import FetchTarget
from modelformats.fetch import Digest, RemoteFile, file_digest
from modelformats.listing import write_json_atomic

__all__ = ["DownloadState"]

# Our partial files and the record of verified files, under the root.
_STATE_DIR = ".cache/modelformats"
# What huggingface_hub's downloads to a local_dir leave behind when stopped (older modelformats used it).
_HUB_INCOMPLETE = ".cache/huggingface/download"


class DownloadState:
    """Partial files (hashed names) and the record of verified files, under the root."""

    def __init__(self, root: Path) -> None:
        self.dir = root / _STATE_DIR
        self.partials = self.dir / "partial"
        self.record = self.dir / "verified.json"
        self._verified: dict[str, Any] | None = None

    def partial_for(self, remote: RemoteFile) -> Path:
        key = hashlib.sha256(f"{remote.repo_id}\0{remote.path}".encode()).hexdigest()[:40]
        return self.partials / f"{key}.part"

    def clean_orphans(
        self, targets: Sequence[FetchTarget], items: Sequence[PlannedItem], joins: Sequence[PlannedJoin] = ()
    ) -> tuple[str, ...]:
        """Delete partials no planned file owns, huggingface_hub's `.incomplete` leftovers, and the temporary
        files of joins a killed run left (`.x.gguf.joining-<pid>`)."""
        keep = {self.partial_for(t.remote) for t in targets}
        gone = [p for p in sorted(self.partials.glob("*.part")) if p not in keep] if self.partials.is_dir() else []
        for item in items:
            legacy = item.local_dir / _HUB_INCOMPLETE
            if legacy.is_dir():
                gone += sorted(p for p in legacy.rglob("*.incomplete") if p.is_file())
        for join in joins:
            if join.output.parent.is_dir():
                gone += sorted(join.output.parent.glob(f".{glob.escape(join.output.name)}.joining-*"))
        for path in gone:
            path.unlink(missing_ok=True)
        return tuple(str(p) for p in gone)

    def _load(self) -> dict[str, Any]:
        if self._verified is None:
            try:
                data = json.loads(self.record.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            self._verified = data if isinstance(data, dict) else {}
        return self._verified

    def _stamp(self, dest: Path, digest: Digest) -> dict[str, Any]:
        st = dest.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "digest": str(digest)}

    def is_verified(self, dest: Path, digest: Digest) -> bool:
        """True when `dest` holds the bytes `digest` names: recorded earlier, or hashed now."""
        if not dest.is_file():
            return False
        if self._load().get(str(dest)) == self._stamp(dest, digest):
            return True
        if file_digest(dest, digest.algorithm) != digest.hex:
            return False
        self.remember(dest, digest)
        return True

    def remember(self, dest: Path, digest: Digest) -> None:
        self._load()[str(dest)] = self._stamp(dest, digest)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.record, self._load())
