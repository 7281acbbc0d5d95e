"""What to fetch from the Hub for a planned item: each file's URL, size and expected hash (from the plan,
else from one `model_info(files_metadata=True)` call per repo), and where it lands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelformats.downloads.section import PlannedItem, escape, under
from modelformats.errors import PartialDownloadError
from modelformats.fetch import Digest, RemoteFile
from modelformats.listing import check_repo_path
from modelformats.retry import RetryPolicy, call_with_retries
from modelformats.sources.hub import hub_errors

__all__ = ["FetchTarget", "hub_targets"]


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchTarget:
    remote: RemoteFile
    dest: Path


def hub_targets(
    item: PlannedItem, skip: set[Path], *, endpoint: str | None, token: str | bool | None, retry: RetryPolicy
) -> list[FetchTarget]:
    """The item's files with URL, size and expected hash; the Hub's listing is read once when the plan lacks
    a hash or names optional patterns."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import filter_repo_objects

    wanted = [p for p in item.spec.files if (item.local_dir / p).resolve() not in skip]
    listed = {escape(p) for p in item.spec.files}
    optional = [p for p in item.patterns if p not in listed]
    revision = item.spec.revision
    entries: dict[str, tuple[int | None, Digest | None]] = {}
    if optional or any(p not in item.hashes for p in wanted):
        revision, entries = _remote_entries(item, endpoint=endpoint, token=token, retry=retry)
        missing = [p for p in wanted if p not in entries]
        if missing:
            raise PartialDownloadError(
                f"{len(missing)} planned file(s) of {item.spec.repo_id!r} are not in the repo at revision "
                f"{revision}: {', '.join(missing[:5])}. The repo changed since the plan was made: re-plan, "
                "or pin --revision."
            )
    paths = wanted + [p for p in filter_repo_objects(sorted(entries), allow_patterns=optional) if p not in wanted]
    targets = []
    for path in paths:
        size, digest = entries.get(path, (None, None))
        planned = item.hashes.get(path)
        if planned is not None and digest is not None and planned != digest:
            raise PartialDownloadError(
                f"{item.spec.repo_id}/{path}: the plan records {planned}, the Hub now lists {digest} at revision "
                f"{revision}. The file changed since the plan was made: re-plan, or pin --revision."
            )
        digest = planned or digest
        if digest is None:
            raise PartialDownloadError(
                f"{item.spec.repo_id}/{path}: the Hub lists no hash for it, so its bytes cannot be verified. "
                "Report the repo, or fetch it yourself with `hf download`."
            )
        size = size if size is not None else item.spec.sizes.get(path)
        check_repo_path(path, source=item.spec.repo_id)
        url = hf_hub_url(item.spec.repo_id, path, revision=revision, endpoint=endpoint)
        remote = RemoteFile(repo_id=item.spec.repo_id, path=path, url=url, size=size, digest=digest)
        targets.append(FetchTarget(remote=remote, dest=under(item.local_dir, item.local_dir / path, path)))
    return targets


def _remote_entries(
    item: PlannedItem, *, endpoint: str | None, token: str | bool | None, retry: RetryPolicy
) -> tuple[str | None, dict[str, tuple[int | None, Digest | None]]]:
    """(commit, {path: (size, hash)}) from one model_info call at the item's revision."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(item.spec.repo_id, item.spec.revision):
        info = call_with_retries(
            lambda: api.model_info(item.spec.repo_id, revision=item.spec.revision, files_metadata=True), retry
        )
    entries: dict[str, tuple[int | None, Digest | None]] = {}
    for s in info.siblings or []:
        if s.lfs is not None:
            entries[s.rfilename] = (s.lfs.size, Digest(algorithm="sha256", hex=s.lfs.sha256))
        else:
            blob = Digest(algorithm="git-sha1", hex=s.blob_id) if s.blob_id else None
            entries[s.rfilename] = (s.size, blob)
    return info.sha or item.spec.revision, entries
