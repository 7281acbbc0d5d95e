"""Fetch one planned file from the Hub into place (resumable, retried, verified by `fetch.fetch_file`), skipping
one already verified, with its progress lines."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from modelformats.downloads.state import DownloadState
from modelformats.downloads.targets import FetchTarget
from modelformats.errors import PartialDownloadError
from modelformats.fetch import RemoteFile, fetch_file
from modelformats.retry import RetryPolicy
from modelformats.sources.hub import hub_errors

__all__ = ["auth_headers", "fetch_one"]


def auth_headers(token: str | bool | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return dict(build_hf_headers(token=token))


def fetch_one(
    state: DownloadState,
    target: FetchTarget,
    headers: Mapping[str, str],
    *,
    retry: RetryPolicy,
    progress: Callable[[str], None] | None,
) -> int:
    remote, dest = target.remote, target.dest
    sized = remote.size is not None and dest.is_file() and dest.stat().st_size == remote.size
    if sized and state.is_verified(dest, remote.digest):
        return 0
    partial = state.partial_for(remote)
    if progress is not None:
        size = f"{remote.size:,} B" if remote.size is not None else "size unknown"
        have = partial.stat().st_size if partial.is_file() else 0
        resume = f", resuming at byte {have:,}" if have else ""
        progress(f"fetching {remote.repo_id}/{remote.path} ({size}{resume})")
    with hub_errors(remote.repo_id, None):
        try:
            transferred = fetch_file(
                remote, dest, partial, headers=headers, policy=retry, progress=_reporter(remote, progress)
            )
        except Exception as exc:
            if _is_missing_entry(exc):
                raise PartialDownloadError(
                    f"{remote.repo_id}/{remote.path} is not in the repo any more (the Hub answered 404). The "
                    "repo changed since the plan was made: re-plan, or pin --revision."
                ) from None
            raise
    state.remember(dest, remote.digest)
    return transferred


def _reporter(remote: RemoteFile, progress: Callable[[str], None] | None) -> Callable[[int, int | None], None] | None:
    """A progress line for `fetch_file`'s periodic reports; the rate is measured from the first report."""
    if progress is None:
        return None
    since: list[tuple[float, int]] = []

    def report(have: int, size: int | None) -> None:
        now = time.monotonic()
        if not since:
            since.append((now, have))
        t0, h0 = since[0]
        rate = f", {(have - h0) / (now - t0) / 1e6:.0f} MB/s" if now > t0 else ""
        share = f" ({have / size:.0%})" if size else ""
        of = f" of {size / 1e9:.2f} GB" if size is not None else ""
        progress(f"  {remote.path}: {have / 1e9:.2f}{of}{share}{rate}")

    return report


def _is_missing_entry(exc: Exception) -> bool:
    from huggingface_hub import errors as hub

    return isinstance(exc, hub.RemoteEntryNotFoundError)
