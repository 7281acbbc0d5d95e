"""The plan's download section is parsed in one place (deployment.DownloadSection.from_dict), checked there, and
`modelformats.download` takes the typed plan or its JSON alike."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelformats.deployment import DeploymentPlan, DownloadSection
from modelformats.download import download
from modelformats.errors import InvalidRequestError, UnsafePathError
from modelformats.planner import PlanOptions, plan

FIX = "make the plan with `modelformats plan --json`"


@pytest.fixture
def typed(tmp_path: Path) -> DeploymentPlan:
    return plan(None, options=PlanOptions(download_root=str(tmp_path / "models")))


def test_the_section_round_trips_and_is_the_plans(typed):
    section = typed.download_section
    assert section.root == typed.download_root and section.items == typed.downloads
    assert section.to_dict() == typed.to_dict()["download"]
    assert DownloadSection.from_dict(json.loads(json.dumps(section.to_dict()))) == section


def test_the_typed_plan_and_its_json_download_the_same(typed):
    assert download(typed, dry_run=True) == download(typed.to_dict(), dry_run=True)


def _edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        *keys, last = path.split(".")
        node: Any = d
        for key in keys:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return apply


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (
            _edit("download.root", "models"),
            InvalidRequestError,
            f"The plan's download root 'models' must be an absolute path; {FIX}.",
        ),
        (
            _edit("download.items", "x"),
            InvalidRequestError,
            f"The plan's download.items must be a list, got str; {FIX}.",
        ),
        (
            _edit("download.items.0", 5),
            InvalidRequestError,
            f"The plan's download.items[0] must be an object with a repo_id; {FIX}.",
        ),
        (
            _edit("download.items.0.repo_id", "a/b/c"),
            InvalidRequestError,
            "The plan's download.items[0].repo_id: Invalid repo id 'a/b/c'",
        ),
        (
            _edit("download.items.0.local_dir", None),
            InvalidRequestError,
            "download.items[0].local_dir must be a path string, got None",
        ),
        (
            _edit("download.items.0.files", "x.gguf"),
            InvalidRequestError,
            "The plan's download.items[0].files must be a list of strings, got 'x.gguf'",
        ),
        (_edit("download.items.0.files", ["../x.gguf"]), UnsafePathError, "Refusing file path '../x.gguf'"),
        (
            _edit("download.items.0.allow_patterns", [3]),
            InvalidRequestError,
            "download.items[0].allow_patterns must be a list of strings",
        ),
        (
            _edit("download.items.0.hashes", ["x"]),
            InvalidRequestError,
            "download.items[0].hashes must map repo paths to",
        ),
        (
            _edit("download.items.0.hashes", {"x.gguf": "md5:00"}),
            InvalidRequestError,
            "File hash 'md5:00' names no known algorithm",
        ),
        (
            _edit("download.items.0.source_dir", "models/x"),
            InvalidRequestError,
            "download.items[0].source_dir 'models/x' must be an absolute path",
        ),
        (
            _edit("download.joins", [{"parts": []}]),
            InvalidRequestError,
            "The plan's download.joins[0] must be an object with an output path",
        ),
        (
            _edit("download.joins", [{"output": "/m/x.gguf"}]),
            InvalidRequestError,
            "download.joins[0].parts must be a list of strings, got None",
        ),
        (
            _edit("download.converts", [{"gguf": "/m/x.gguf"}]),
            InvalidRequestError,
            "download.converts[0] must be an object with gguf, output and dtype strings",
        ),
    ],
)
def test_a_malformed_download_section_is_refused_naming_the_field(typed, edit, error, message):
    """DeploymentPlan.from_dict and download refuse it alike: the field and a fix, never KeyError/TypeError."""
    d = copy.deepcopy(typed.to_dict())
    edit(d)
    with pytest.raises(error) as by_plan:
        DeploymentPlan.from_dict(d)
    with pytest.raises(error) as by_download:
        download(d, dry_run=True)
    assert str(by_plan.value) == str(by_download.value)
    assert message in str(by_plan.value)


def test_a_plan_without_a_download_section_reads_as_downloading_nothing(typed):
    """bench --plan needs only the engine command; download itself still asks for the section."""
    d = {k: v for k, v in typed.to_dict().items() if k != "download"}
    assert DeploymentPlan.from_dict(d).download_section == DownloadSection(root="/models")
    with pytest.raises(InvalidRequestError, match="The plan has no download section with a root"):
        download(d, dry_run=True)
