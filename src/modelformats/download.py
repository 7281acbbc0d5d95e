"""Fetch exactly a plan's files, join byte-split GGUFs, verify, and write the plan beside them.

Input is the plan dict (`DeploymentPlan.to_dict()`, see the plan's `download` section): for each
item, `huggingface_hub.snapshot_download(repo_id, revision, allow_patterns, local_dir)` — resumable,
with huggingface_hub's progress bars, and HF_XET_HIGH_PERFORMANCE / HF_TOKEN honoured the way
huggingface_hub honours them. Then `.partXofY` pieces are concatenated, in order, into a temporary
file that is verified (sizes, GGUF header, tensor data extent) and renamed into place; every model
GGUF is checked the same way. Finally `plan.json` is written next to the weights.

Nothing is written outside the plan's root: every local path is resolved (symlinks included) and
must lie under it, and huggingface_hub's own cache of revisions is pointed inside it too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelformats.errors import (
    GGUFHeaderError,
    InvalidRequestError,
    ModelFormatsError,
    PartialDownloadError,
    UnsafePathError,
)
from modelformats.listing import check_repo_path, write_json_atomic
from modelformats.sources.hub import hub_errors

__all__ = ["DownloadReport", "PlannedFile", "download"]

PLAN_FILE = "plan.json"
# huggingface_hub's revision refs (it writes them even with local_dir) go here, under the root.
_HUB_CACHE = ".cache/huggingface/hub"
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
            "total_bytes": self.total_bytes,
            "total_estimated": self.total_estimated,
        }

    def render(self) -> str:
        """A table: repo, file, local path, bytes; then the joins and the plan file."""
        head = "would fetch" if self.dry_run else "fetched"
        lines = [f"{head} into {self.root}:"]
        for f in self.files:
            size = "if present" if f.optional else (f"{f.bytes:,} B" if f.bytes is not None else "size unknown")
            lines.append(f"  {f.repo_id}  {f.path}  ->  {f.local_path}  ({size})")
        for output in self.joins:
            lines.append(f"  {'join' if self.dry_run else 'joined'} parts -> {output}")
        total = self.total_bytes
        if total is None:
            lines.append("  total: unknown (some sizes are not known)")
        else:
            lines.append(f"  total: {total:,} B" + (" (estimated)" if self.total_estimated else ""))
        lines.append(f"  plan: {self.plan_path}")
        return "\n".join(lines)


# --- the plan's download section, validated ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Item:
    repo_id: str
    revision: str | None
    files: tuple[str, ...]
    patterns: tuple[str, ...]
    local_dir: Path
    bytes: int | None
    bytes_estimated: bool
    sizes: Mapping[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Join:
    output: Path
    parts: tuple[Path, ...]
    expected_bytes: int | None


def _under(root: Path, path: Path, what: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePathError(str(path), f"{what} resolves to {resolved}, outside the download root {root}")
    return resolved


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"The plan's {field} must be a list of strings, got {value!r}.")
    return tuple(value)


def _check_pattern(pattern: str) -> str:
    # A pattern selects repo paths; it must look like one (no '..', absolute paths or backslashes).
    check_repo_path(pattern.replace("*", "x").replace("?", "x").replace("[", "x").replace("]", "x"))
    return pattern


def _parse(plan: Mapping[str, Any]) -> tuple[Path, list[_Item], list[_Join], Path]:
    section = plan.get("download")
    if not isinstance(section, Mapping) or not isinstance(section.get("root"), str):
        raise InvalidRequestError(
            "The plan has no download section with a root; make it with `modelformats plan --json` "
            "(DeploymentPlan.to_dict())."
        )
    root = Path(section["root"]).expanduser()
    if not root.is_absolute():
        raise InvalidRequestError(f"The plan's download root {section['root']!r} must be an absolute path.")
    root = root.resolve()
    items: list[_Item] = []
    for i, raw in enumerate(section.get("items") or []):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("repo_id"), str):
            raise InvalidRequestError(f"The plan's download.items[{i}] must be an object with a repo_id.")
        local_dir = _under(root, Path(str(raw.get("local_dir", ""))), f"download.items[{i}].local_dir")
        files = _strings(raw.get("files", []), f"download.items[{i}].files")
        for path in files:
            check_repo_path(path)
            _under(local_dir, local_dir / path, f"{raw['repo_id']}/{path}")
        patterns = tuple(_check_pattern(p) for p in _strings(raw.get("allow_patterns", []), "allow_patterns"))
        sizes: Mapping[Any, Any] = raw["sizes"] if isinstance(raw.get("sizes"), Mapping) else {}
        revision = raw.get("revision")
        items.append(
            _Item(
                repo_id=raw["repo_id"],
                revision=revision if isinstance(revision, str) else None,
                files=files,
                patterns=patterns or tuple(_escape(p) for p in files),
                local_dir=local_dir,
                bytes=raw.get("bytes") if isinstance(raw.get("bytes"), int) else None,
                bytes_estimated=raw.get("bytes_estimated") is True,
                sizes={k: v for k, v in sizes.items() if isinstance(k, str) and isinstance(v, int)},
            )
        )
    joins: list[_Join] = []
    for i, raw in enumerate(section.get("joins") or []):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("output"), str):
            raise InvalidRequestError(f"The plan's download.joins[{i}] must be an object with an output path.")
        parts = tuple(_under(root, Path(p), f"download.joins[{i}].parts") for p in _strings(raw.get("parts"), "parts"))
        expected = raw.get("expected_bytes")
        joins.append(
            _Join(
                output=_under(root, Path(raw["output"]), f"download.joins[{i}].output"),
                parts=parts,
                expected_bytes=expected if isinstance(expected, int) else None,
            )
        )
    # plan.json goes beside the weights; a base-native plan's weights come from another repo than repo_id.
    weights_repo = plan.get("weights_repo_id", plan.get("repo_id"))
    weights_dir = next((it.local_dir for it in items if it.repo_id == weights_repo), root)
    return root, items, joins, weights_dir / PLAN_FILE


def _escape(path: str) -> str:
    from modelformats.naming import escape_pattern

    return escape_pattern(path)


def _file_size(item: _Item, path: str) -> int | None:
    size = item.sizes.get(path)
    return item.bytes if size is None and len(item.files) == 1 else size


def _total(items: Sequence[_Item]) -> tuple[int | None, bool]:
    """(bytes, estimated) of every planned file: per item, its file sizes if all known, else its total."""
    total, estimated = 0, False
    for item in items:
        sizes = [_file_size(item, p) for p in item.files]
        known = sum(s for s in sizes if s is not None) if None not in sizes else item.bytes
        if known is None:
            return None, False
        total += known
        estimated = estimated or item.bytes_estimated
    return total, estimated


def _planned(items: Sequence[_Item]) -> list[PlannedFile]:
    out: list[PlannedFile] = []
    for item in items:
        for path in item.files:
            size = _file_size(item, path)
            out.append(
                PlannedFile(
                    repo_id=item.repo_id,
                    revision=item.revision,
                    path=path,
                    local_path=str(item.local_dir / path),
                    bytes=size,
                )
            )
        listed = {_escape(p) for p in item.files}
        for pattern in item.patterns:
            if pattern not in listed:
                out.append(
                    PlannedFile(
                        repo_id=item.repo_id,
                        revision=item.revision,
                        path=pattern,
                        local_path=str(item.local_dir / pattern),
                        bytes=None,
                        optional=True,
                    )
                )
    return out


# --- the download -------------------------------------------------------------------------------------


def download(
    plan: Mapping[str, Any],
    *,
    dry_run: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
    max_workers: int = 8,
    keep_parts: bool = False,
) -> DownloadReport:
    """Fetch the plan's files under its download root, join `.partXofY` pieces, verify, write plan.json.

    `dry_run` only lists what would be fetched (no network, nothing written). The token comes from
    huggingface_hub's usual places (HF_TOKEN, `hf auth login`) unless given; it is never printed.
    Byte parts are deleted once their joined file is verified, unless `keep_parts`.
    """
    root, items, joins, plan_path = _parse(plan)
    files = tuple(_planned(items))
    outputs = tuple(str(j.output) for j in joins)
    total, estimated = _total(items)
    report = DownloadReport(
        root=str(root),
        dry_run=dry_run,
        files=files,
        joins=outputs,
        plan_path=str(plan_path),
        total_bytes=total,
        total_estimated=estimated,
    )
    if dry_run:
        return report
    done = {j.output for j in joins if _joined_already(j)}
    skip = {part for j in joins if j.output in done for part in j.parts}
    for item in items:
        _fetch(root, item, skip, endpoint=endpoint, token=token, max_workers=max_workers)
    for join in joins:
        if join.output not in done:
            _join_parts(join, keep_parts=keep_parts)
    verified = _verify_models(items, joins, skip)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_path, plan)
    return replace(report, verified=verified)


def _fetch(
    root: Path,
    item: _Item,
    skip: set[Path],
    *,
    endpoint: str | None,
    token: str | bool | None,
    max_workers: int,
) -> None:
    """snapshot_download of exactly this item's patterns; then check every listed file arrived."""
    from huggingface_hub import snapshot_download

    wanted = [p for p in item.files if (item.local_dir / p).resolve() not in skip]
    listed = {_escape(p) for p in item.files}
    patterns = [_escape(p) for p in wanted] + [p for p in item.patterns if p not in listed]
    if not patterns:
        return
    try:
        item.local_dir.mkdir(parents=True, exist_ok=True)
        with hub_errors(item.repo_id, item.revision):
            snapshot_download(
                item.repo_id,
                revision=item.revision,
                allow_patterns=patterns,
                local_dir=item.local_dir,
                cache_dir=root / _HUB_CACHE,
                endpoint=endpoint,
                token=token,
                max_workers=max_workers,
            )
    except OSError as exc:
        if isinstance(exc, ModelFormatsError):
            raise
        # hub_errors mapped every network error: what is left is local (a full disk, permissions).
        where = exc.filename if exc.filename is not None else item.local_dir
        raise PartialDownloadError(
            f"Writing the files of {item.repo_id!r} under {item.local_dir} failed at {where}: "
            f"{exc.strerror or exc}. This is a problem on this machine, not on the Hub: free disk space or fix "
            "that path (permissions, a file where a folder belongs), then run the download again (it resumes)."
        ) from exc
    missing = [p for p in wanted if not (item.local_dir / p).is_file()]
    if missing:
        raise PartialDownloadError(
            f"{len(missing)} planned file(s) of {item.repo_id!r} did not arrive: {', '.join(missing[:5])}. "
            "The repo changed since the plan was made (re-plan, or pin --revision), or the download was "
            "interrupted (run it again: it resumes)."
        )


def _joined_already(join: _Join) -> bool:
    """A previous run's joined output, complete and valid: its parts need not be fetched again."""
    if not join.output.is_file():
        return False
    if join.expected_bytes is not None and join.output.stat().st_size != join.expected_bytes:
        return False
    return _gguf_problem(join.output) is None


def _join_parts(join: _Join, *, keep_parts: bool) -> None:
    missing = [str(p) for p in join.parts if not p.is_file()]
    if missing:
        raise PartialDownloadError(f"Cannot join {join.output}: part(s) missing: {', '.join(missing)}.")
    total = sum(p.stat().st_size for p in join.parts)
    if join.expected_bytes is not None and total != join.expected_bytes:
        raise PartialDownloadError(
            f"Cannot join {join.output}: its parts hold {total:,} bytes, the listing says "
            f"{join.expected_bytes:,}. Delete the parts and download again."
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
        header = read_header(path)
    except GGUFHeaderError as exc:
        return str(exc)
    if header.tensor_data_bytes is None:
        return None
    needed = header.data_offset + header.tensor_data_bytes
    size = path.stat().st_size
    if size < needed:
        return f"it is {size:,} bytes but its tensors end at byte {needed:,} (truncated)"
    return None


def _verify_models(items: Iterable[_Item], joins: Iterable[_Join], skip: set[Path]) -> tuple[str, ...]:
    """Check every fetched model GGUF and joined output; raise on the first broken one."""
    from modelformats.gguf.files import is_gguf_path

    paths = [
        (item.local_dir / p).resolve()
        for item in items
        for p in item.files
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
