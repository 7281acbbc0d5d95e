"""Copy a planned item's files from a local model directory (regular files only, through a temporary name)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from modelformats.downloads.section import PlannedItem
from modelformats.errors import PartialDownloadError

__all__ = ["copy_local"]


def copy_local(item: PlannedItem, source: Path, skip: set[Path]) -> list[str]:
    """Copy the item's files from a local model directory (through a temporary name) into its local_dir."""
    from modelformats.localfs import allowed_roots, regular_file_size

    roots = allowed_roots(source)
    copied = []
    for path in item.spec.files:
        dest = item.local_dir / path
        if dest.resolve() in skip:
            continue
        src = source / path
        if not (src.is_file() or src.is_symlink()):
            raise PartialDownloadError(
                f"{path} is not in {source} any more; the directory changed since the plan was made: re-plan it."
            )
        size = regular_file_size(source, src, roots)
        if src.resolve() == dest.resolve():
            continue  # the plan's folder is the source folder
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{hashlib.sha256(dest.name.encode()).hexdigest()[:16]}.copying")
        try:
            shutil.copyfile(src, tmp)
            if tmp.stat().st_size != size:
                raise PartialDownloadError(f"Copying {src} wrote {tmp.stat().st_size:,} of {size:,} bytes.")
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        copied.append(str(dest))
    return copied
