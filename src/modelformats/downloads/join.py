"""Join `.partXofY` byte splits into one GGUF (through a temporary file, verified, then renamed) and check every
downloaded model GGUF is whole (a readable header, and as long as its tensors need)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from modelformats.downloads.section import PlannedItem, PlannedJoin
from modelformats.errors import GGUFHeaderError, PartialDownloadError

__all__ = ["gguf_problem", "join_parts", "joined_already", "verify_models"]

# Concatenation buffer: large enough that 45 GB parts copy at disk speed, small enough to not matter.
_COPY_BUFFER = 16 * 1024 * 1024


def joined_already(join: PlannedJoin) -> bool:
    """A previous run's joined output, complete and valid: its parts need not be fetched again."""
    if not join.output.is_file():
        return False
    if join.spec.expected_bytes is not None and join.output.stat().st_size != join.spec.expected_bytes:
        return False
    return gguf_problem(join.output) is None


def join_parts(join: PlannedJoin, *, keep_parts: bool) -> None:
    missing = [str(p) for p in join.parts if not p.is_file()]
    if missing:
        raise PartialDownloadError(f"Cannot join {join.output}: part(s) missing: {', '.join(missing)}.")
    total = sum(p.stat().st_size for p in join.parts)
    if join.spec.expected_bytes is not None and total != join.spec.expected_bytes:
        raise PartialDownloadError(
            f"Cannot join {join.output}: its parts hold {total:,} bytes, the listing says "
            f"{join.spec.expected_bytes:,}. Delete the parts and download again."
        )
    tmp = join.output.with_name(f".{join.output.name}.joining-{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            for part in join.parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, _COPY_BUFFER)
            out.flush()
            os.fsync(out.fileno())
        if tmp.stat().st_size != total:
            raise PartialDownloadError(f"Joining {join.output} wrote {tmp.stat().st_size:,} of {total:,} bytes.")
        problem = gguf_problem(tmp)
        if problem is not None:
            raise PartialDownloadError(f"The joined file {join.output} is not a valid GGUF: {problem}.")
        tmp.replace(join.output)
    finally:
        tmp.unlink(missing_ok=True)
    if not keep_parts:
        for part in join.parts:
            part.unlink()


def gguf_problem(path: Path) -> str | None:
    """Why `path` is not a whole GGUF (header unreadable, or shorter than its tensors need), else None."""
    from modelformats.gguf.header import read_header

    try:
        header = read_header(path, check_extent=False)  # the extent is checked below, in this module's words
    except GGUFHeaderError as exc:
        return str(exc)
    if header.tensor_data_bytes is None:
        return None
    needed = header.data_offset + header.tensor_data_bytes
    size = path.stat().st_size
    if size < needed:
        return f"it is {size:,} bytes but its tensors end at byte {needed:,} (truncated)"
    return None


def verify_models(items: Iterable[PlannedItem], joins: Iterable[PlannedJoin], skip: set[Path]) -> tuple[str, ...]:
    """Check every fetched model GGUF and joined output; raise on the first broken one."""
    from modelformats.gguf.files import is_gguf_path

    paths = [
        (item.local_dir / p).resolve()
        for item in items
        for p in item.spec.files
        if is_gguf_path(p) and p.lower().endswith(".gguf") and (item.local_dir / p).resolve() not in skip
    ]
    paths += [j.output for j in joins]
    for path in paths:
        problem = gguf_problem(path)
        if problem is not None:
            raise PartialDownloadError(
                f"{path} is not a complete GGUF: {problem}. Delete it and run the download again."
            )
    return tuple(str(p) for p in paths)
