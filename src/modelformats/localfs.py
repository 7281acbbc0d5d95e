"""Files of a local model directory, checked before anything opens them.

A model directory is read by path, so whatever a name points at would be read: a symlink to
`/etc/shadow`, a FIFO (opening it blocks for ever), a device. `regular_file_size` looks at the
entry with `lstat` first (which never blocks) and accepts only regular files, and symlinks whose
target is a regular file inside the directory — or, for a huggingface_hub cache snapshot
(`.../snapshots/<commit>/`), inside that repo's `blobs/` folder, where the cache's own links point.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelformats.errors import InvalidListingError

__all__ = ["allowed_roots", "check_regular_file", "regular_file_size"]

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def allowed_roots(root: Path) -> tuple[Path, ...]:
    """Where the directory's symlinks may point: inside it, and for a cache snapshot, its repo's blobs."""
    resolved = root.resolve()
    roots = [resolved]
    if resolved.parent.name == "snapshots":
        roots.append(resolved.parent.parent / "blobs")
    return tuple(roots)


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_regular_file(path: Path, *, what: str) -> os.stat_result:
    """`stat` of `path` if it is a regular file (after symlinks); else InvalidListingError. Never opens it."""
    try:
        st = path.stat()
    except OSError as exc:
        raise InvalidListingError(
            f"Cannot read {what} {str(path)!r}: {exc.strerror or exc}.", source=str(path)
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidListingError(
            f"Refusing {what} {str(path)!r}: it is {_kind(st.st_mode)}, not a regular file, so reading it could "
            "block or read a device. Replace it with the real file.",
            source=str(path),
        )
    return st


def regular_file_size(root: Path, full: Path, roots: tuple[Path, ...]) -> int:
    """Size of the directory entry `full`; refuses escaping symlinks and special files (see module doc)."""
    rel = full.relative_to(root).as_posix()
    st = full.lstat()
    if stat.S_ISLNK(st.st_mode):
        target = full.resolve()
        if not any(target.is_relative_to(r) for r in roots):
            raise InvalidListingError(
                f"Refusing {rel!r} in {root}: it is a symlink to {target}, outside the model directory. A model "
                "directory may link only to files inside it (or, for a huggingface_hub cache snapshot, to that "
                "repo's blobs/). Copy the file in, or remove the link.",
                source=str(root),
                field="files[].path",
            )
        st = check_regular_file(full, what=f"the target of symlink {rel!r}")
    elif not stat.S_ISREG(st.st_mode):
        raise InvalidListingError(
            f"Refusing {rel!r} in {root}: it is {_kind(st.st_mode)}, not a regular file, so reading it could block "
            "or read a device. Remove it from the model directory.",
            source=str(root),
            field="files[].path",
        )
    return st.st_size
