"""Local file errors in words: what failed, on which path, and the fix that matches the cause.

A full disk, a read-only directory and a name longer than the file system allows are different
problems with different fixes; `local_file_error` tells them apart by errno, so "free disk space"
is only ever said when the disk is full.
"""

from __future__ import annotations

import errno
import os

from modelformats.errors import LocalFileError

__all__ = ["local_file_error"]

# The longest name most Linux and macOS file systems store in one path component (ext4, xfs, apfs).
NAME_MAX = 255


def _longest_component(path: str) -> tuple[str, int]:
    parts = [p for p in path.replace(os.sep, "/").split("/") if p]
    longest = max(parts, key=lambda p: len(p.encode(errors="surrogateescape")), default="")
    return longest, len(longest.encode(errors="surrogateescape"))


# Cause -> fix, by errno. ENAMETOOLONG is worded in `_reason`: it names the long component.
_FIXES: tuple[tuple[frozenset[int], str], ...] = (
    (
        frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}),
        "the disk (or your quota) is full. Free space on that file system, or choose another directory",
    ),
    (frozenset({errno.EROFS}), "the file system is read-only. Choose a writable directory"),
    (
        frozenset({errno.EACCES, errno.EPERM}),
        "permission denied. Choose a directory you can write to, or fix its permissions",
    ),
    (frozenset({errno.ENOENT}), "a directory on the way does not exist. Create it, or fix the path"),
    (
        frozenset({errno.ENOTDIR, errno.EEXIST}),
        "a file stands where a directory belongs. Move that file, or choose another path",
    ),
    (frozenset({errno.EISDIR}), "it is a directory. Name a file"),
)


def _reason(code: int | None, path: str) -> str:
    if code == errno.ENAMETOOLONG:
        name, size = _longest_component(path)
        return (
            f"a name is too long for this file system ({size} bytes in {name[:40]!r}...; most file systems "
            f"allow {NAME_MAX}). Choose a shorter directory; a repo file whose own name is that long cannot be "
            "stored on this file system"
        )
    return next((fix for codes, fix in _FIXES if code in codes), "check the path and the device, then try again")


def local_file_error(exc: OSError, *, action: str, path: str | os.PathLike[str] | None = None) -> LocalFileError:
    """A LocalFileError for `exc`, raised while trying to `action` (e.g. 'write the listing to') `path`."""
    where = str(path if path is not None else exc.filename if exc.filename is not None else "?")
    detail = exc.strerror or type(exc).__name__
    return LocalFileError(
        f"Could not {action} {where}: {detail}; {_reason(exc.errno, where)}.",
        path=where,
        errno_=exc.errno,
    )
