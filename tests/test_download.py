"""`modelformats.download` against a real local HTTP server standing in for the Hub.

huggingface_hub itself (snapshot_download) talks to the server; nothing of ours is mocked. The
server speaks the calls snapshot_download makes: repo info, the recursive tree, HEAD/GET with Range.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from hubserver import FakeRepo, HubServer, serve_hub
from modelformats.download import download
from modelformats.errors import LocalFileError, PartialDownloadError, RepoNotFoundError, UnsafePathError

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with serve_hub() as server:
        yield server


pytestmark = pytest.mark.usefixtures("hub_home")


def _tiny_gguf(path: Path) -> bytes:
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_token_list([f"t{i}" for i in range(50)])
    w.add_tensor("token_embd.weight", np.arange(64 * 50, dtype=np.float32).reshape(50, 64))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.fixture
def repos(hub, tmp_path):
    model = _tiny_gguf(tmp_path / "tiny.gguf")
    half = len(model) // 2
    hub.repos["me/Tiny-GGUF"] = FakeRepo(
        repo_id="me/Tiny-GGUF",
        sha=SHA,
        files={
            "tiny-Q8_0.gguf.part1of2": model[:half],
            "tiny-Q8_0.gguf.part2of2": model[half:],
            "tiny-Q4_K_M.gguf": model,
            "README.md": b"# tiny",
        },
    )
    hub.repos["me/Tiny"] = FakeRepo(
        repo_id="me/Tiny",
        sha=SHA,
        files={
            "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
            "tokenizer.json": b"{}",
            "tokenizer_config.json": b"{}",
            "model.safetensors": b"weights that must not be fetched",
        },
    )
    return model


def _plan(root: Path, **overrides: Any) -> dict[str, Any]:
    weights, tok = root / "me" / "Tiny-GGUF", root / "me" / "Tiny"
    parts = ["tiny-Q8_0.gguf.part1of2", "tiny-Q8_0.gguf.part2of2"]
    plan: dict[str, Any] = {
        "schema": "modelformats-plan/1",
        "repo_id": "me/Tiny-GGUF",
        "download": {
            "root": str(root),
            "items": [
                {
                    "repo_id": "me/Tiny-GGUF",
                    "revision": None,
                    "files": parts,
                    "allow_patterns": parts,
                    "local_dir": str(weights),
                    "bytes": None,
                    "bytes_estimated": True,
                },
                {
                    "repo_id": "me/Tiny",
                    "revision": None,
                    "files": ["config.json", "tokenizer.json"],
                    "allow_patterns": [
                        "config.json",
                        "tokenizer.json",
                        "tokenizer_config.json",
                        "tokenizer.model",
                    ],
                    "local_dir": str(tok),
                    "bytes": 50,
                    "bytes_estimated": False,
                },
            ],
            "joins": [
                {
                    "output": str(weights / "tiny-Q8_0.gguf"),
                    "parts": [str(weights / p) for p in parts],
                    "expected_bytes": None,
                }
            ],
        },
    }
    plan["download"].update(overrides)
    return plan


def _tree(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(root).parts
    )


def test_dry_run_lists_without_network(tmp_path, hub):
    root = tmp_path / "models"
    report = download(_plan(root), dry_run=True, endpoint=hub.url)
    assert hub.gets == []
    assert not root.exists()
    rows = [(f.repo_id, f.path, f.local_path, f.bytes, f.optional) for f in report.files]
    weights, tok = root / "me" / "Tiny-GGUF", root / "me" / "Tiny"
    assert rows == [
        ("me/Tiny-GGUF", "tiny-Q8_0.gguf.part1of2", str(weights / "tiny-Q8_0.gguf.part1of2"), None, False),
        ("me/Tiny-GGUF", "tiny-Q8_0.gguf.part2of2", str(weights / "tiny-Q8_0.gguf.part2of2"), None, False),
        ("me/Tiny", "config.json", str(tok / "config.json"), None, False),
        ("me/Tiny", "tokenizer.json", str(tok / "tokenizer.json"), None, False),
        ("me/Tiny", "tokenizer_config.json", str(tok / "tokenizer_config.json"), None, True),
        ("me/Tiny", "tokenizer.model", str(tok / "tokenizer.model"), None, True),
    ]
    assert report.plan_path == str(weights / "plan.json")
    assert report.joins == (str(weights / "tiny-Q8_0.gguf"),)
    text = report.render(width=400)
    assert text.splitlines()[0] == f"would fetch 4 file(s), unknown size, into {root}"
    assert f"join parts -> {weights / 'tiny-Q8_0.gguf'}" in text.splitlines()
    assert report.to_dict()["total_bytes"] is None


def test_download_fetches_exactly_the_plan_joins_and_writes_the_plan(tmp_path, hub, repos, hub_home):
    root = tmp_path / "models"
    plan = _plan(root)
    report = download(plan, endpoint=hub.url)
    assert _tree(root) == [
        "me/Tiny-GGUF/plan.json",
        "me/Tiny-GGUF/tiny-Q8_0.gguf",
        "me/Tiny/config.json",
        "me/Tiny/tokenizer.json",
        "me/Tiny/tokenizer_config.json",
    ]
    joined = root / "me" / "Tiny-GGUF" / "tiny-Q8_0.gguf"
    assert joined.read_bytes() == repos
    assert json.loads((root / "me" / "Tiny-GGUF" / "plan.json").read_text()) == plan
    assert sorted(hub.gets) == [
        "me/Tiny-GGUF/tiny-Q8_0.gguf.part1of2",
        "me/Tiny-GGUF/tiny-Q8_0.gguf.part2of2",
        "me/Tiny/config.json",
        "me/Tiny/tokenizer.json",
        "me/Tiny/tokenizer_config.json",
    ]
    assert report.verified == (str(joined),)
    # huggingface_hub's caches stayed empty: everything it wrote is under the root.
    assert not hub_home.exists() or not any(p.is_file() for p in hub_home.rglob("*"))

    # A second run finds the verified joined file and fetches no part again.
    hub.gets.clear()
    download(plan, endpoint=hub.url)
    assert not any(g.endswith(("part1of2", "part2of2")) for g in hub.gets)
    assert joined.read_bytes() == repos


def test_keep_parts(tmp_path, hub, repos):
    root = tmp_path / "models"
    download(_plan(root), endpoint=hub.url, keep_parts=True)
    assert (root / "me" / "Tiny-GGUF" / "tiny-Q8_0.gguf.part1of2").is_file()


def test_join_checks_expected_bytes(tmp_path, hub, repos):
    root = tmp_path / "models"
    plan = _plan(root)
    plan["download"]["joins"][0]["expected_bytes"] = len(repos) + 1
    output = root / "me" / "Tiny-GGUF" / "tiny-Q8_0.gguf"
    with pytest.raises(PartialDownloadError) as err:
        download(plan, endpoint=hub.url)
    assert str(err.value) == (
        f"Cannot join {output}: its parts hold {len(repos):,} bytes, the listing says {len(repos) + 1:,}. "
        "Delete the parts and download again."
    )
    assert not output.exists()


def test_truncated_parts_never_become_the_output(tmp_path, hub, repos):
    hub.repos["me/Tiny-GGUF"].files["tiny-Q8_0.gguf.part2of2"] = repos[len(repos) // 2 : -100]
    root = tmp_path / "models"
    output = root / "me" / "Tiny-GGUF" / "tiny-Q8_0.gguf"
    with pytest.raises(PartialDownloadError) as err:
        download(_plan(root), endpoint=hub.url)
    assert str(err.value).startswith(f"The joined file {output} is not a valid GGUF: it is {len(repos) - 100:,} bytes")
    assert not output.exists()
    assert not list(output.parent.glob(".tiny-Q8_0.gguf.joining-*"))


def test_missing_planned_file(tmp_path, hub, repos):
    del hub.repos["me/Tiny"].files["tokenizer.json"]
    with pytest.raises(PartialDownloadError) as err:
        download(_plan(tmp_path / "models"), endpoint=hub.url)
    assert str(err.value) == (
        f"1 planned file(s) of 'me/Tiny' are not in the repo at revision {SHA}: tokenizer.json. The repo changed "
        "since the plan was made: re-plan, or pin --revision."
    )


def test_missing_repo(tmp_path, hub, repos):
    del hub.repos["me/Tiny"]
    with pytest.raises(RepoNotFoundError):
        download(_plan(tmp_path / "models"), endpoint=hub.url)


def test_paths_outside_the_root_are_refused(tmp_path, hub):
    root = tmp_path / "models"
    plan = _plan(root)
    plan["download"]["items"][1]["local_dir"] = str(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError) as err:
        download(plan, dry_run=True)
    assert str(err.value) == (
        f"Refusing file path {str(tmp_path / 'elsewhere')!r}: download.items[1].local_dir resolves to "
        f"{tmp_path / 'elsewhere'}, outside the download root {root}. Repo paths must be relative, "
        "'/'-separated and free of '..' segments; fix the listing or report the repo."
    )
    plan = _plan(root)
    plan["download"]["items"][0]["files"] = ["../../escape.gguf"]
    with pytest.raises(UnsafePathError):
        download(plan, dry_run=True)
    plan = _plan(root)
    plan["download"]["items"][0]["allow_patterns"] = ["../*"]
    with pytest.raises(UnsafePathError):
        download(plan, dry_run=True)
    plan = _plan(root)
    plan["download"]["joins"][0]["output"] = str(root / ".." / "out.gguf")
    with pytest.raises(UnsafePathError):
        download(plan, dry_run=True)


def test_symlink_escape_is_refused(tmp_path, hub):
    root = tmp_path / "models"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "me").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePathError):
        download(_plan(root), dry_run=True)


def test_plan_without_download_section():
    with pytest.raises(Exception) as err:
        download({"repo_id": "me/x"})
    assert str(err.value) == (
        "The plan has no download section with a root; make it with `modelformats plan --json` "
        "(DeploymentPlan.to_dict())."
    )


def test_dry_run_total_falls_back_to_each_items_bytes(tmp_path, hub):
    """Without per-file sizes, an item's total is the plan's `bytes` (estimated or not), never 'unknown'."""
    root = tmp_path / "models"
    plan = _plan(root)
    plan["download"]["items"][0].update(bytes=1_000_000, bytes_estimated=True)
    report = download(plan, dry_run=True)
    assert (report.total_bytes, report.total_estimated) == (1_000_050, True)
    assert report.to_dict()["total_bytes"] == 1_000_050
    lines = report.render(width=400).splitlines()
    assert lines[0] == f"would fetch 4 file(s), 1.00 MB (estimated), into {root}"
    # The two parts have no size of their own: each says so; the single-file total does not leak into them.
    weights = root / "me" / "Tiny-GGUF"
    assert lines[1:4] == [
        "me/Tiny-GGUF",
        "  size unknown  tiny-Q8_0.gguf.part1of2",
        f"    -> {weights / 'tiny-Q8_0.gguf.part1of2'}",
    ]


def test_dry_run_uses_per_file_sizes_when_the_plan_has_them(tmp_path, hub):
    root = tmp_path / "models"
    plan = _plan(root)
    plan["download"]["items"][0]["sizes"] = {"tiny-Q8_0.gguf.part1of2": 600, "tiny-Q8_0.gguf.part2of2": 400}
    plan["download"]["items"][0]["bytes_estimated"] = False
    plan["download"]["items"][1]["sizes"] = {"config.json": 30, "tokenizer.json": 20}
    report = download(plan, dry_run=True)
    assert [f.bytes for f in report.files if not f.optional] == [600, 400, 30, 20]
    assert (report.total_bytes, report.total_estimated) == (1050, False)
    assert report.render(width=400).splitlines()[0] == f"would fetch 4 file(s), 1.05 kB, into {root}"
    # Sizes that are themselves estimates (the plan says so for the item) make the total one.
    plan["download"]["items"][0]["bytes_estimated"] = True
    assert (
        download(plan, dry_run=True).render(width=400).splitlines()[0]
        == f"would fetch 4 file(s), 1.05 kB (estimated), into {root}"
    )


def test_plan_json_lands_beside_the_weights_repo_of_a_base_native_plan(tmp_path, hub):
    """A base-native plan serves the base repo's weights: plan.json goes there, not beside the GGUF repo."""
    root = tmp_path / "models"
    plan = {**_plan(root), "weights_repo_id": "me/Tiny"}
    report = download(plan, dry_run=True)
    assert report.plan_path == str(root / "me" / "Tiny" / "plan.json")


def test_a_local_write_error_is_not_reported_as_a_hub_outage(tmp_path, hub, repos):
    """A file where a folder belongs fails on this machine: LocalFileError naming the path and that cause."""
    root = tmp_path / "models"
    (root / "me").mkdir(parents=True)
    (root / "me" / "Tiny").write_text("not a folder")
    with pytest.raises(LocalFileError) as err:
        download(_plan(root), endpoint=hub.url)
    assert str(err.value) == (
        f"Could not write the download under {root / 'me' / 'Tiny'}: File exists; a file stands where a directory "
        "belongs. Move that file, or choose another path."
    )
    assert isinstance(err.value.__cause__, FileExistsError)


def test_a_join_killed_half_way_leaves_nothing_behind_the_next_run(tmp_path, hub, repos):
    root = tmp_path / "models"
    joining = root / "me" / "Tiny-GGUF" / ".tiny-Q8_0.gguf.joining-4242"
    joining.parent.mkdir(parents=True)
    joining.write_bytes(b"half a join")
    report = download(_plan(root), endpoint=hub.url)
    assert str(joining) in report.cleaned
    assert not joining.exists()
    assert (root / "me" / "Tiny-GGUF" / "tiny-Q8_0.gguf").read_bytes() == repos
