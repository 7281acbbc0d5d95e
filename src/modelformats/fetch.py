"""One file from the Hub, resumable and verified: the bytes reach their final name only once their hash
is the one the Hub records.

`fetch_file` streams into a partial file (kept outside the final name), continues an earlier partial
with an HTTP Range request, retries transient failures with bounded backoff (`retry.RetryPolicy`),
hashes while it writes, and renames into place only after the size and the hash match. A mismatch
deletes the partial and raises `ChecksumMismatchError` naming both hashes. An interrupt
(Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the CLI) leaves the partial for the next run and
notes how much of it is kept.

The Hub records two hashes: the sha256 of every LFS file (the weights) and the git blob sha1 of every
other file (configs, tokenizers); `Digest` carries either, written `sha256:<hex>` / `git-sha1:<hex>`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelformats.errors import ChecksumMismatchError, InvalidRequestError, PartialDownloadError
from modelformats.retry import DEFAULT_RETRY, RetryPolicy, retry_wait

__all__ = ["CHUNK_BYTES", "Digest", "RemoteFile", "fetch_file", "file_digest"]

# Bytes per read and write: what an interrupted transfer may have to fetch again, at most.
CHUNK_BYTES = 1024 * 1024
# How often a long transfer reports its progress.
PROGRESS_SECONDS = 10.0
# Seconds without a byte before a read counts as failed (and is retried); connecting gets the same.
READ_TIMEOUT = 60.0
_HASH_BUFFER = 8 * 1024 * 1024
_HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "git-sha1": re.compile(r"[0-9a-f]{40}")}

Algorithm = Literal["sha256", "git-sha1"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Digest:
    """A hash the Hub records for a file: LFS sha256, or git blob sha1 for small non-LFS files."""

    algorithm: Algorithm
    hex: str

    def __post_init__(self) -> None:
        pattern = _HEX.get(self.algorithm)
        if pattern is None or not pattern.fullmatch(self.hex):
            raise InvalidRequestError(
                f"{self.algorithm}:{self.hex} is not a hash modelformats checks; a file hash is 'sha256:' and 64 "
                "lower-case hex digits, or 'git-sha1:' and 40. Re-plan to record the Hub's hashes."
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, _, hex_ = text.partition(":")
        if algorithm not in _HEX:
            raise InvalidRequestError(
                f"File hash {text!r} names no known algorithm; expected 'sha256:<hex>' or 'git-sha1:<hex>'. "
                "Re-plan to record the Hub's hashes."
            )
        return cls(algorithm=algorithm, hex=hex_)  # type: ignore[arg-type]  # checked against _HEX above

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _git_sha1_of(path: Path) -> str:
    # git hashes "blob <size>\0" followed by the content (git hash-object).
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(_HASH_BUFFER):
            h.update(block)
    return h.hexdigest()


def file_digest(path: Path, algorithm: Algorithm) -> str:
    """The hex digest of a local file, as the Hub computes it for `algorithm`."""
    if algorithm == "git-sha1":
        return _git_sha1_of(path)
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_BUFFER):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteFile:
    """One repo file to fetch: where from, how big, which hash."""

    repo_id: str
    path: str
    url: str
    size: int | None
    digest: Digest


class _RestartError(Exception):
    """The server ignored our Range request (sent the whole file, or another range): start over."""


def fetch_file(
    remote: RemoteFile,
    dest: Path,
    partial: Path,
    *,
    headers: Mapping[str, str],
    policy: RetryPolicy = DEFAULT_RETRY,
    chunk_bytes: int = CHUNK_BYTES,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Fetch `remote` into `partial` (continuing what is there), verify it, rename it to `dest`.

    `progress(bytes_here, size)` is called at most every PROGRESS_SECONDS while bytes arrive.
    Returns the bytes transferred by this call. Raises ChecksumMismatchError (partial deleted),
    PartialDownloadError when the server keeps sending more or fewer bytes than the listing says,
    and, after the retries the policy allows, the Hub's own error (map it with `hub.hub_errors`).
    """
    partial.parent.mkdir(parents=True, exist_ok=True)
    state = _Progress(partial, remote, progress)
    attempt, waited = 0, 0.0
    try:
        while True:
            before = state.have
            try:
                _transfer(remote, state, headers, chunk_bytes)
                break
            except _RestartError:
                state.reset()
                continue
            except Exception as exc:
                wait = retry_wait(exc, attempt, policy)
                # A failure after some progress starts the count again: long transfers may see several resets.
                attempt = 0 if state.have > before else attempt
                if wait is None or attempt >= policy.max_retries or waited + wait > policy.max_total_wait:
                    raise
            sleep(wait)
            waited += wait
            attempt += 1
    except KeyboardInterrupt as exc:
        total = f"{remote.size:,}" if remote.size is not None else "?"
        exc.add_note(
            f"Stopped: {state.have:,} of {total} bytes of {remote.repo_id}/{remote.path} are kept in {partial}; "
            "run the same command again to resume from there."
        )
        raise
    _verify(remote, state, dest, partial)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial.replace(dest)
    return state.transferred


class _Progress:
    """The partial file's length and the running hash of its bytes."""

    def __init__(
        self, partial: Path, remote: RemoteFile, progress: Callable[[int, int | None], None] | None = None
    ) -> None:
        self.partial = partial
        self.remote = remote
        self.progress = progress
        self.reported = time.monotonic()
        self.transferred = 0
        self.have = 0
        self.sha256 = hashlib.sha256() if remote.digest.algorithm == "sha256" else None
        if partial.is_file():
            self.have = partial.stat().st_size
            if remote.size is not None and self.have > remote.size:
                self.reset()  # longer than the file: not a prefix of it
            elif self.sha256 is not None and self.have:
                with partial.open("rb") as f:
                    while block := f.read(_HASH_BUFFER):
                        self.sha256.update(block)
        else:
            if partial.is_symlink() or partial.exists():
                partial.unlink()
            partial.write_bytes(b"")

    def reset(self) -> None:
        self.partial.write_bytes(b"")
        self.have = 0
        if self.sha256 is not None:
            self.sha256 = hashlib.sha256()

    def add(self, block: bytes) -> None:
        self.have += len(block)
        self.transferred += len(block)
        if self.sha256 is not None:
            self.sha256.update(block)
        if self.progress is not None and time.monotonic() - self.reported >= PROGRESS_SECONDS:
            self.reported = time.monotonic()
            self.progress(self.have, self.remote.size)


def _transfer(remote: RemoteFile, state: _Progress, headers: Mapping[str, str], chunk_bytes: int) -> None:
    """One GET (a Range GET when part of the file is already here), appended to the partial file."""
    from httpx2 import RemoteProtocolError, Timeout
    from huggingface_hub.utils import get_session, hf_raise_for_status

    size = remote.size
    if size is not None and state.have == size:
        return  # complete already (an earlier run stopped between the last byte and the rename)
    request_headers = {**headers, "Accept-Encoding": "identity"}
    if state.have:
        request_headers["Range"] = f"bytes={state.have}-"
    timeout = Timeout(READ_TIMEOUT)
    with get_session().stream(
        "GET", remote.url, headers=request_headers, timeout=timeout, follow_redirects=True
    ) as response:
        hf_raise_for_status(response)
        if state.have and not _continues(response, state.have):
            raise _RestartError
        with state.partial.open("r+b") as out:
            out.seek(state.have)
            out.truncate()
            for block in response.iter_bytes(chunk_bytes):
                if size is not None and state.have + len(block) > size:
                    raise PartialDownloadError(
                        f"{remote.repo_id}/{remote.path}: the server sent more than the {size:,} bytes the Hub "
                        "lists for it. The repo changed since the plan was made: re-plan, or pin --revision."
                    )
                out.write(block)
                state.add(block)
    if size is not None and state.have < size:
        # The body ended early without a transport error (a proxy closing cleanly): resume it, like a reset.
        raise RemoteProtocolError(f"body ended at byte {state.have:,} of {size:,}")


def _continues(response: Any, have: int) -> bool:
    """True when a 206 answer starts exactly at byte `have`."""
    if response.status_code != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return match is not None and int(match[1]) == have


def _verify(remote: RemoteFile, state: _Progress, dest: Path, partial: Path) -> None:
    expected = remote.digest
    actual = state.sha256.hexdigest() if state.sha256 is not None else file_digest(partial, expected.algorithm)
    if remote.size is not None and state.have != remote.size:
        partial.unlink(missing_ok=True)
        raise PartialDownloadError(
            f"{remote.repo_id}/{remote.path}: received {state.have:,} bytes, the Hub lists {remote.size:,}. "
            "The partial file was discarded; run the download again."
        )
    if actual != expected.hex:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            remote.repo_id,
            remote.path,
            algorithm=expected.algorithm,
            expected=expected.hex,
            actual=actual,
            dest=str(dest),
        )
