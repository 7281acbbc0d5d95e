"""Downloads a user can trust, proven against the real local Hub server (tests/hubserver.py):
flipped bytes refused, interrupted transfers resumed (the server counts the bytes it sent),
429/503 retried, Ctrl-C and SIGTERM obeyed within 2 seconds, orphaned partial files cleaned.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubserver import FakeRepo, HubServer, git_blob_sha1, serve_hub
from modelformats.download import download
from modelformats.errors import ChecksumMismatchError, HubUnavailableError, PartialDownloadError
from modelformats.fetch import CHUNK_BYTES
from modelformats.retry import RetryPolicy
from modelformats.sources.hub import HubSource

SHA = "89abcdef0123456789abcdef0123456789abcdef"
FAST = RetryPolicy(max_retries=3, base_wait=0.01, max_wait=0.05, max_total_wait=1.0)
# 8 MiB of incompressible bytes: big enough to stop half-way, small enough for a unit test.
WEIGHTS = random.Random(15).randbytes(8 * 1024 * 1024)
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}'


pytestmark = pytest.mark.usefixtures("hub_home")


@pytest.fixture
def hub() -> Iterator[HubServer]:
    repo = FakeRepo(repo_id="me/Big", sha=SHA, files={"model.safetensors": WEIGHTS, "config.json": CONFIG})
    with serve_hub(repo) as server:
        yield server


def _plan(root: Path, **item: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "repo_id": "me/Big",
        "revision": SHA,
        "files": ["config.json", "model.safetensors"],
        "allow_patterns": ["config.json", "model.safetensors"],
        "local_dir": str(root / "me" / "Big"),
        "bytes": len(WEIGHTS) + len(CONFIG),
        "bytes_estimated": False,
        "sizes": {"config.json": len(CONFIG), "model.safetensors": len(WEIGHTS)},
    }
    entry.update(item)
    return {"schema": "modelformats-plan/1", "repo_id": "me/Big", "download": {"root": str(root), "items": [entry]}}


def _partials(root: Path) -> list[Path]:
    folder = root / ".cache" / "modelformats" / "partial"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_flipped_byte_is_refused_and_nothing_corrupt_is_left(tmp_path, hub):
    hub.flip["model.safetensors"] = 4_000_000
    root = tmp_path / "models"
    dest = root / "me" / "Big" / "model.safetensors"
    with pytest.raises(ChecksumMismatchError) as err:
        download(_plan(root), endpoint=hub.url, retry=FAST)
    flipped = bytearray(WEIGHTS)
    flipped[4_000_000] ^= 0xFF
    actual, expected = hashlib.sha256(flipped).hexdigest(), hashlib.sha256(WEIGHTS).hexdigest()
    assert str(err.value) == (
        f"me/Big/model.safetensors: the downloaded bytes hash to sha256 {actual}, but the Hub records {expected}. "
        f"They were discarded: nothing was written to {dest}. Run the download again; if it fails the same way, "
        "something between you and the Hub alters the data (a proxy, a mirror given by --endpoint or "
        "HF_ENDPOINT): fetch from https://huggingface.co directly, or report the repo."
    )
    assert (err.value.expected, err.value.actual, err.value.algorithm) == (expected, actual, "sha256")
    assert not dest.exists()
    assert _partials(root) == []
    assert not (root / "me" / "Big" / "plan.json").exists()


def test_a_flipped_byte_in_a_small_git_file_is_refused(tmp_path, hub):
    hub.flip["config.json"] = 3
    with pytest.raises(ChecksumMismatchError) as err:
        download(_plan(tmp_path / "models"), endpoint=hub.url, retry=FAST)
    assert (err.value.algorithm, err.value.expected) == ("git-sha1", git_blob_sha1(CONFIG))


def test_the_plans_recorded_hashes_are_checked_without_asking_the_api(tmp_path, hub):
    root = tmp_path / "models"
    hashes = {
        "config.json": f"git-sha1:{git_blob_sha1(CONFIG)}",
        "model.safetensors": f"sha256:{hashlib.sha256(WEIGHTS).hexdigest()}",
    }
    report = download(_plan(root, hashes=hashes), endpoint=hub.url, retry=FAST)
    assert not [r for r in hub.requests if r[1].startswith("/api/")]
    assert (root / "me" / "Big" / "model.safetensors").read_bytes() == WEIGHTS
    assert len(report.hash_verified) == 2

    # A plan hash the bytes contradict (the repo moved under a branch name) is refused the same way.
    hashes["model.safetensors"] = "sha256:" + "0" * 64
    with pytest.raises(ChecksumMismatchError):
        download(_plan(tmp_path / "other", hashes=hashes), endpoint=hub.url, retry=FAST)


def test_a_plan_hash_the_hub_listing_contradicts_is_an_error(tmp_path, hub):
    bad = {"config.json": "git-sha1:" + "1" * 40}
    with pytest.raises(PartialDownloadError) as err:
        download(_plan(tmp_path / "m", hashes=bad), endpoint=hub.url, retry=FAST)
    assert str(err.value) == (
        f"me/Big/model.safetensors: the plan records git-sha1:{'1' * 40}, the Hub now lists "
        f"git-sha1:{git_blob_sha1(CONFIG)} at revision {SHA}. The file changed since the plan was made: re-plan, "
        "or pin --revision."
    ).replace("model.safetensors", "config.json")


def test_a_cut_transfer_resumes_with_a_range_request_and_fetches_only_the_rest(tmp_path, hub):
    hub.cut["model.safetensors"] = 3 * 1024 * 1024
    report = download(_plan(tmp_path / "models"), endpoint=hub.url, retry=FAST)
    assert (tmp_path / "models" / "me" / "Big" / "model.safetensors").read_bytes() == WEIGHTS
    ranges = [r for r in hub.requests if r[1].endswith("model.safetensors")]
    assert len(ranges) == 2
    # Everything the server wrote for the file: the whole file once, plus at most one chunk lost in flight.
    assert len(WEIGHTS) <= hub.bytes_written("model.safetensors") <= len(WEIGHTS) + CHUNK_BYTES
    assert report.transferred_bytes == len(WEIGHTS) + len(CONFIG)


def test_one_429_and_one_503_are_retried_for_metadata_and_data(tmp_path, hub):
    hub.fail_next["/api/models/me/Big"] = [429, 503]
    hub.fail_next["model.safetensors"] = [503, 429]
    download(_plan(tmp_path / "models", revision=None), endpoint=hub.url, retry=FAST)
    assert (tmp_path / "models" / "me" / "Big" / "model.safetensors").read_bytes() == WEIGHTS
    assert hub.fail_next == {"/api/models/me/Big": [], "model.safetensors": []}

    hub.fail_next["/api/models/me/Big"] = [429, 503]
    listing = HubSource(endpoint=hub.url, retry=FAST).fetch("me/Big")
    assert listing.revision == SHA


def test_retries_are_bounded(tmp_path, hub):
    hub.fail_next["/api/models/me/Big"] = [503] * 10
    with pytest.raises(HubUnavailableError) as err:
        download(_plan(tmp_path / "models", revision=None), endpoint=hub.url, retry=FAST)
    assert "503" in str(err.value)
    assert hub.fail_next["/api/models/me/Big"] == [503] * 6  # the first try and 3 retries


def test_orphaned_partials_are_cleaned_and_a_second_run_fetches_nothing(tmp_path, hub):
    root = tmp_path / "models"
    orphan = root / ".cache" / "modelformats" / "partial" / "0123.part"
    legacy = root / "me" / "Big" / ".cache" / "huggingface" / "download" / "model.safetensors.x.incomplete"
    for path in (orphan, legacy):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"left over")
    report = download(_plan(root), endpoint=hub.url, retry=FAST)
    assert report.cleaned == (str(orphan), str(legacy))
    assert not orphan.exists() and not legacy.exists()
    hub.served.clear()
    again = download(_plan(root), endpoint=hub.url, retry=FAST)
    assert (hub.served, again.transferred_bytes) == ([], 0)


def _cli_plan(root: Path, tmp_path: Path) -> Path:
    """A whole plan (as `plan --json` writes it) whose download section is ours."""
    from modelformats.planner import PlanOptions, plan

    whole = plan(None, options=PlanOptions(download_root=str(root))).to_dict()
    whole["download"] = _plan(root)["download"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(whole))
    return path


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_download_promptly_and_the_next_run_resumes(tmp_path, hub, signum, code):
    root = tmp_path / "models"
    plan_file = _cli_plan(root, tmp_path)
    hub.throttle = 0.2  # ~0.3 MB/s: the whole 8 MiB file would take ~25 s
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "modelformats", "download", "--plan", str(plan_file), "--endpoint", hub.url]
    # A shell that starts jobs in the background (CI runners, `cmd &`) hands them SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child the default, as a terminal does.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - no threads here
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if hub.bytes_written("model.safetensors") > 1024 * 1024:
                break
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # The stop does not wait for the transfer: measured 0.3 s on an idle machine (the goal is
    # 2 s); the bound leaves room for a loaded CI machine and is still far below the ~25 s transfer.
    assert took < 5.0
    assert proc.returncode == code, err
    assert "Traceback" not in err
    [partial] = _partials(root)
    kept = partial.stat().st_size
    assert 0 < kept < len(WEIGHTS) // 2
    assert f"are kept in {partial}; run the same command again to resume from there." in err
    assert not (root / "me" / "Big" / "model.safetensors").exists()

    hub.throttle = 0.0
    hub.served.clear()
    download(_plan(root), endpoint=hub.url, retry=FAST)
    assert (root / "me" / "Big" / "model.safetensors").read_bytes() == WEIGHTS
    assert hub.bytes_written("model.safetensors") <= len(WEIGHTS) - kept + CHUNK_BYTES
    assert _partials(root) == []


def test_an_online_plan_records_the_hubs_hashes_and_download_checks_them(tmp_path, hub):
    from modelformats.planner import PlanOptions, plan

    root = tmp_path / "models"
    source = HubSource(endpoint=hub.url, retry=FAST)
    made = plan("me/Big", source=source, options=PlanOptions(download_root=str(root))).to_dict()
    [item] = made["download"]["items"]
    assert item["hashes"] == {
        "config.json": f"git-sha1:{git_blob_sha1(CONFIG)}",
        "model.safetensors": f"sha256:{hashlib.sha256(WEIGHTS).hexdigest()}",
    }
    hub.requests.clear()
    hub.flip["model.safetensors"] = 10
    with pytest.raises(ChecksumMismatchError):
        download(made, endpoint=hub.url, retry=FAST)
    # Every file was hashed by the plan: the download asked the API nothing.
    assert not [r for r in hub.requests if r[1].startswith("/api/")]


def test_long_transfers_report_progress(tmp_path, hub, monkeypatch):
    import modelformats.fetch

    monkeypatch.setattr(modelformats.fetch, "PROGRESS_SECONDS", 0.0)
    lines: list[str] = []
    download(_plan(tmp_path / "models"), endpoint=hub.url, retry=FAST, progress=lines.append)
    assert lines[0] == f"fetching me/Big/config.json ({len(CONFIG)} B)"
    assert f"fetching me/Big/model.safetensors ({len(WEIGHTS):,} B)" in lines
    steps = [line for line in lines if line.startswith("  model.safetensors: ")]
    assert steps and steps[-1].startswith("  model.safetensors: 0.01 of 0.01 GB (100%)")
