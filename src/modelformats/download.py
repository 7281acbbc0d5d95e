"""Fetch exactly a plan's files, join byte-split GGUFs, verify, and write the plan beside them.

Input is the typed `DeploymentPlan`, or its JSON (`DeploymentPlan.to_dict()`), whose `download` section
`DownloadSection.from_dict` checks (the one parser of plan JSON, in deployment.py). Every file
is fetched by `fetch.fetch_file` — resumable over HTTP Range, retried with bounded backoff, and
renamed to its final name only once its sha256 (LFS files) or git blob sha1 (small files) is the
one the Hub records. The expected hashes come from the plan (`hashes`), else from one
`model_info(files_metadata=True)` call per repo at the plan's revision; a plan hash that the Hub
contradicts is an error (the repo changed). Then `.partXofY` pieces are concatenated, in order,
into a temporary file that is verified (sizes, GGUF header, tensor data extent) and renamed into
place; every model GGUF is checked the same way. A plan whose route converts the GGUF (`download.converts`)
then runs `modelformats convert` on it into the planned directory (written under a temporary name and
renamed when whole; a directory already there is a previous run's, kept). Finally `plan.json` is written
next to the weights.

Partial files live in `<root>/.cache/modelformats/partial/` under hashed names (a long repo file
name cannot make them too long); a partial no planned file owns any more is deleted at the start of
the next download, as are huggingface_hub's own `.incomplete` leftovers under the plan's folders.
Verified files are recorded (size, mtime, hash) in `<root>/.cache/modelformats/verified.json`, so a
second run does not hash 20 GB again.

Nothing is written outside the plan's root: every local path is resolved (symlinks included) and
must lie under it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelformats.deployment import ConvertStep, DeploymentPlan, DownloadItem, DownloadSection, JoinStep
from modelformats.errors import (
    GGUFHeaderError,
    InvalidRequestError,
    ModelFormatsError,
    PartialDownloadError,
    UnsafePathError,
)
from modelformats.fetch import Digest, RemoteFile, fetch_file, file_digest
from modelformats.listing import check_repo_path, write_json_atomic
from modelformats.localio import local_file_error
from modelformats.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries
from modelformats.sources.hub import hub_errors

__all__ = ["DownloadReport", "PlannedFile", "download"]

PLAN_FILE = "plan.json"
# Our partial files and the record of verified files, under the root.
_STATE_DIR = ".cache/modelformats"
# What huggingface_hub's downloads to a local_dir leave behind when stopped (older modelformats used it).
_HUB_INCOMPLETE = ".cache/huggingface/download"
# Concatenation buffer: large enough that 45 GB parts copy at disk speed, small enough to not matter.
_COPY_BUFFER = 16 * 1024 * 1024


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


# --- the plan's download section, resolved under its root -----------------------------------------------
# DownloadSection.from_dict (deployment.py) checks the plan's JSON; here each typed record's paths are
# resolved (symlinks included) and must lie under the root.


@dataclass(frozen=True, kw_only=True, slots=True)
class _Item:
    """A planned item with its local directory resolved, its patterns and its hashes as `Digest`s."""

    spec: DownloadItem
    local_dir: Path
    # The plan's allow_patterns, else the files' own names (escaped).
    patterns: tuple[str, ...]
    hashes: Mapping[str, Digest] = field(default_factory=dict)
    source_dir: Path | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Join:
    spec: JoinStep
    output: Path
    parts: tuple[Path, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Convert:
    spec: ConvertStep
    gguf: Path
    output: Path
    base: Path | None


def _under(root: Path, path: Path, what: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePathError(str(path), f"{what} resolves to {resolved}, outside the download root {root}")
    return resolved


def _resolve(section: DownloadSection) -> tuple[Path, list[_Item], list[_Join], list[_Convert]]:
    root = Path(section.root).expanduser().resolve()
    items: list[_Item] = []
    for i, item in enumerate(section.items):
        local_dir = _under(root, Path(item.local_dir), f"download.items[{i}].local_dir")
        for path in item.files:
            _under(local_dir, local_dir / path, f"{item.repo_id}/{path}")
        items.append(
            _Item(
                spec=item,
                local_dir=local_dir,
                patterns=item.allow_patterns or tuple(_escape(p) for p in item.files),
                hashes={path: Digest.parse(text) for path, text in item.hashes.items()},
                source_dir=Path(item.source_dir) if item.source_dir is not None else None,
            )
        )
    joins = [
        _Join(
            spec=join,
            output=_under(root, Path(join.output), f"download.joins[{i}].output"),
            parts=tuple(_under(root, Path(p), f"download.joins[{i}].parts") for p in join.parts),
        )
        for i, join in enumerate(section.joins)
    ]
    converts = [
        _Convert(
            spec=step,
            gguf=_under(root, Path(step.gguf), f"download.converts[{i}].gguf"),
            output=_under(root, Path(step.output), f"download.converts[{i}].output"),
            base=_under(root, Path(step.base), f"download.converts[{i}].base") if step.base is not None else None,
        )
        for i, step in enumerate(section.converts)
    ]
    return root, items, joins, converts


def _escape(path: str) -> str:
    from modelformats.naming import escape_pattern

    return escape_pattern(path)


def _file_size(item: _Item, path: str) -> int | None:
    size = item.spec.sizes.get(path)
    return item.spec.bytes if size is None and len(item.spec.files) == 1 else size


def _total(items: Sequence[_Item]) -> tuple[int | None, bool]:
    """(bytes, estimated) of every planned file: per item, its file sizes if all known, else its total."""
    total, estimated = 0, False
    for item in items:
        sizes = [_file_size(item, p) for p in item.spec.files]
        known = sum(s for s in sizes if s is not None) if None not in sizes else item.spec.bytes
        if known is None:
            return None, False
        total += known
        estimated = estimated or item.spec.bytes_estimated
    return total, estimated


def _planned(items: Sequence[_Item]) -> list[PlannedFile]:
    out: list[PlannedFile] = []
    for item in items:
        for path in item.spec.files:
            size = _file_size(item, path)
            out.append(
                PlannedFile(
                    repo_id=item.spec.repo_id,
                    revision=item.spec.revision,
                    path=path,
                    local_path=str(item.local_dir / path),
                    bytes=size,
                )
            )
        listed = {_escape(p) for p in item.spec.files}
        for pattern in item.patterns:
            if pattern not in listed:
                out.append(
                    PlannedFile(
                        repo_id=item.spec.repo_id,
                        revision=item.spec.revision,
                        path=pattern,
                        local_path=str(item.local_dir / pattern),
                        bytes=None,
                        optional=True,
                    )
                )
    return out


# --- the download -------------------------------------------------------------------------------------


def download(
    plan: DeploymentPlan | Mapping[str, Any],
    *,
    dry_run: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
    keep_parts: bool = False,
    retry: RetryPolicy = DEFAULT_RETRY,
    progress: Callable[[str], None] | None = None,
    local_sources: Mapping[str, Path] | None = None,
) -> DownloadReport:
    """Fetch the plan's files under its download root, verified; join `.partXofY` pieces; write plan.json.

    `dry_run` only lists what would be fetched (no network, nothing written). The token comes from
    huggingface_hub's usual places (HF_TOKEN, `hf auth login`) unless given; it is never printed.
    Byte parts are deleted once their joined file is verified, unless `keep_parts`. `progress`
    receives one line per file fetched or resumed. `local_sources` maps repo ids to local model
    directories: their files are copied from there (regular files only), not fetched. A plan made from a local
    directory names it per item (`source_dir`); `local_sources` overrides that.

    `plan` is the typed plan, or its JSON (`DeploymentPlan.to_dict()`), of which only the `download` section
    (read by `DownloadSection.from_dict`, which checks it) and `weights_repo_id` / `repo_id` are needed; that
    JSON is what plan.json holds.
    """
    document: Mapping[str, Any]
    if isinstance(plan, DeploymentPlan):
        section, weights_repo, document = plan.download_section, plan.weights_repo_id, plan.to_dict()
    else:
        section, document = DownloadSection.from_dict(plan.get("download")), plan
        weights_repo = plan.get("weights_repo_id", plan.get("repo_id"))
    root, items, joins, converts = _resolve(section)
    # plan.json goes beside the weights; a base-native plan's weights come from another repo than repo_id.
    plan_path = next((it.local_dir for it in items if it.spec.repo_id == weights_repo), root) / PLAN_FILE
    files = tuple(_planned(items))
    outputs = tuple(str(j.output) for j in joins)
    total, estimated = _total(items)
    report = DownloadReport(
        root=str(root),
        dry_run=dry_run,
        files=files,
        joins=outputs,
        converts=tuple(str(c.output) for c in converts),
        plan_path=str(plan_path),
        total_bytes=total,
        total_estimated=estimated,
    )
    if dry_run:
        return report
    done = {j.output for j in joins if _joined_already(j)}
    skip = {part for j in joins if j.output in done for part in j.parts}
    state = _State(root)
    local: dict[str, Path] = {item.spec.repo_id: item.source_dir for item in items if item.source_dir is not None}
    local.update(local_sources or {})
    for repo_id, folder in local.items():
        if not folder.is_dir():
            raise InvalidRequestError(
                f"The plan copies {repo_id}'s files from the local directory {str(folder)!r}, which is not a "
                "directory any more. Restore it, or re-plan from where the model is now."
            )
    try:
        copied = [p for it in items if it.spec.repo_id in local for p in _copy_local(it, local[it.spec.repo_id], skip)]
        hub_items = [item for item in items if item.spec.repo_id not in local]
        targets = [t for it in hub_items for t in _targets(it, skip, endpoint=endpoint, token=token, retry=retry)]
        cleaned = state.clean_orphans(targets, items, joins)
        transferred = 0
        headers = _auth(token)
        for target in targets:
            transferred += _fetch_one(state, target, headers, retry=retry, progress=progress)
        for join in joins:
            if join.output not in done:
                _join_parts(join, keep_parts=keep_parts)
        verified = _verify_models(items, joins, skip)
        converted = tuple(str(c.output) for c in converts if _convert(c, progress))
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(plan_path, document)
    except OSError as exc:
        if isinstance(exc, ModelFormatsError):
            raise
        # The Hub's errors were mapped where they happen: what is left is local (a full disk, permissions).
        # A rename names the source first (`filename`); the name that failed is the target (`filename2`).
        where = exc.filename2 or exc.filename or root
        raise local_file_error(exc, action="write the download under", path=where) from exc
    return replace(
        report,
        verified=verified,
        hash_verified=tuple(str(t.dest) for t in targets),
        copied=tuple(copied),
        converted=converted,
        transferred_bytes=transferred,
        cleaned=cleaned,
    )


def _copy_local(item: _Item, source: Path, skip: set[Path]) -> list[str]:
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


@dataclass(frozen=True, kw_only=True, slots=True)
class _Target:
    remote: RemoteFile
    dest: Path


def _auth(token: str | bool | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return dict(build_hf_headers(token=token))


def _targets(
    item: _Item, skip: set[Path], *, endpoint: str | None, token: str | bool | None, retry: RetryPolicy
) -> list[_Target]:
    """The item's files with URL, size and expected hash; the Hub's listing is read once when the plan lacks
    a hash or names optional patterns."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import filter_repo_objects

    wanted = [p for p in item.spec.files if (item.local_dir / p).resolve() not in skip]
    listed = {_escape(p) for p in item.spec.files}
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
        targets.append(_Target(remote=remote, dest=_under(item.local_dir, item.local_dir / path, path)))
    return targets


def _remote_entries(
    item: _Item, *, endpoint: str | None, token: str | bool | None, retry: RetryPolicy
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


class _State:
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
        self, targets: Sequence[_Target], items: Sequence[_Item], joins: Sequence[_Join] = ()
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


def _fetch_one(
    state: _State,
    target: _Target,
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


def _joined_already(join: _Join) -> bool:
    """A previous run's joined output, complete and valid: its parts need not be fetched again."""
    if not join.output.is_file():
        return False
    if join.spec.expected_bytes is not None and join.output.stat().st_size != join.spec.expected_bytes:
        return False
    return _gguf_problem(join.output) is None


def _join_parts(join: _Join, *, keep_parts: bool) -> None:
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
        problem = _gguf_problem(tmp)
        if problem is not None:
            raise PartialDownloadError(f"The joined file {join.output} is not a valid GGUF: {problem}.")
        tmp.replace(join.output)
    finally:
        tmp.unlink(missing_ok=True)
    if not keep_parts:
        for part in join.parts:
            part.unlink()


def _gguf_problem(path: Path) -> str | None:
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


def _convert(step: _Convert, progress: Callable[[str], None] | None) -> bool:
    """Run the plan's conversion (False: its directory is a previous run's, written whole then renamed)."""
    if step.output.is_dir() and any(step.output.iterdir()):
        return False
    try:
        from modelformats.convert import ConvertProgress, convert_gguf
    except ImportError as exc:  # numpy / gguf: the `gguf` extra
        raise InvalidRequestError(
            f"The plan converts {step.gguf} to safetensors after download, which needs the `gguf` package "
            f"({exc.name or exc} is not installed). Fix: pip install 'modelformats[gguf]' and run the download again."
        ) from None
    # The base model's config.json and tokenizer when the download brought them, else the GGUF's own.
    base = step.base if step.base is not None and (step.base / "config.json").is_file() else None
    shown = [-1]

    def report(done: ConvertProgress) -> None:
        percent = 100 * done.done_bytes // max(1, done.total_bytes)
        if progress is not None and percent // 10 > shown[0]:
            shown[0] = percent // 10
            progress(f"converting {step.gguf.name} -> {step.output}: {percent}%")

    if progress is not None:
        progress(
            f"converting {step.gguf} -> {step.output} ({step.spec.dtype}{', config from ' + str(base) if base else ''})"
        )
    convert_gguf(step.gguf, step.output, dtype=step.spec.dtype, base=base, progress=report)
    return True


def _verify_models(items: Iterable[_Item], joins: Iterable[_Join], skip: set[Path]) -> tuple[str, ...]:
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
        problem = _gguf_problem(path)
        if problem is not None:
            raise PartialDownloadError(
                f"{path} is not a complete GGUF: {problem}. Delete it and run the download again."
            )
    return tuple(str(p) for p in paths)
