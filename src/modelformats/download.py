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

This module is the entry point only: `download()` runs those steps in order; each step is a module of
`modelformats.downloads` (section, targets, state, fetching, local, join, converting, report).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelformats.deployment import DeploymentPlan, DownloadSection
from modelformats.downloads.converting import run_conversion
from modelformats.downloads.fetching import auth_headers, fetch_one
from modelformats.downloads.join import join_parts, joined_already, verify_models
from modelformats.downloads.local import copy_local
from modelformats.downloads.report import DownloadReport, PlannedFile
from modelformats.downloads.section import planned_files, resolve_section, total_bytes
from modelformats.downloads.state import DownloadState
from modelformats.downloads.targets import hub_targets
from modelformats.errors import InvalidRequestError, ModelFormatsError
from modelformats.listing import write_json_atomic
from modelformats.localio import local_file_error
from modelformats.retry import DEFAULT_RETRY, RetryPolicy

__all__ = ["DownloadReport", "PlannedFile", "download"]

PLAN_FILE = "plan.json"


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
    root, items, joins, converts = resolve_section(section)
    # plan.json goes beside the weights; a base-native plan's weights come from another repo than repo_id.
    plan_path = next((it.local_dir for it in items if it.spec.repo_id == weights_repo), root) / PLAN_FILE
    files = tuple(planned_files(items))
    outputs = tuple(str(j.output) for j in joins)
    total, estimated = total_bytes(items)
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
    done = {j.output for j in joins if joined_already(j)}
    skip = {part for j in joins if j.output in done for part in j.parts}
    state = DownloadState(root)
    local: dict[str, Path] = {item.spec.repo_id: item.source_dir for item in items if item.source_dir is not None}
    local.update(local_sources or {})
    for repo_id, folder in local.items():
        if not folder.is_dir():
            raise InvalidRequestError(
                f"The plan copies {repo_id}'s files from the local directory {str(folder)!r}, which is not a "
                "directory any more. Restore it, or re-plan from where the model is now."
            )
    try:
        copied = [p for it in items if it.spec.repo_id in local for p in copy_local(it, local[it.spec.repo_id], skip)]
        hub_items = [item for item in items if item.spec.repo_id not in local]
        targets = [t for it in hub_items for t in hub_targets(it, skip, endpoint=endpoint, token=token, retry=retry)]
        cleaned = state.clean_orphans(targets, items, joins)
        transferred = 0
        headers = auth_headers(token)
        for target in targets:
            transferred += fetch_one(state, target, headers, retry=retry, progress=progress)
        for join in joins:
            if join.output not in done:
                join_parts(join, keep_parts=keep_parts)
        verified = verify_models(items, joins, skip)
        converted = tuple(str(c.output) for c in converts if run_conversion(c, progress))
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
