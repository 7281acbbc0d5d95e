"""Issue 13: the plan stays typed to the JSON edge, and every fixture plan survives its JSON unchanged.

Each record a plan holds has a `from_dict` that reads back exactly what its `to_dict` writes; no field
of `DeploymentPlan` or `Alternative` is a free-form mapping of JSON.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from modelformats.deployment import Alternative, DeploymentPlan
from modelformats.errors import ModelFormatsError
from modelformats.formats.base import Detection
from modelformats.gpu import GpuRequest, choose_gpu
from modelformats.gpu.decision import GpuSummary
from modelformats.gpu.estimate import MemorySummary, MemoryTerm
from modelformats.planner import PlanOptions, plan
from modelformats.registry import DetectionSummary
from modelformats.sources.recorded import RecordedSource
from modelformats.traits import ModelTraits

DATA = Path(__file__).parent / "data"
LISTINGS = DATA / "listings"
SOURCE = RecordedSource.from_paths([LISTINGS, DATA / "synthetic"])
REPOS = sorted(
    json.loads(p.read_text())["repo_id"] for folder in (LISTINGS, DATA / "synthetic") for p in folder.glob("*.json")
)
OPTIONS = {
    "default": PlanOptions(),
    "cost": PlanOptions(policy="cost"),
    "vllm": PlanOptions(engine="vllm"),
    "llamacpp": PlanOptions(engine="llamacpp"),
}


def _plan(repo_id: str, options: PlanOptions) -> DeploymentPlan:
    try:
        return plan(repo_id, source=SOURCE, options=options)
    except ModelFormatsError as exc:  # an unservable repo, or an engine that cannot serve it: nothing to read back
        pytest.skip(f"no plan: {type(exc).__name__}")


@pytest.mark.parametrize("how", sorted(OPTIONS))
@pytest.mark.parametrize("repo_id", REPOS)
def test_every_fixture_plan_round_trips_through_json(repo_id: str, how: str) -> None:
    p = _plan(repo_id, OPTIONS[how])
    text = json.dumps(p.to_dict(), indent=2)
    back = DeploymentPlan.from_dict(json.loads(text))
    assert back == p
    assert json.dumps(back.to_dict(), indent=2) == text


@pytest.mark.parametrize("repo_id", REPOS)
def test_each_plan_record_reads_back_what_it_writes(repo_id: str) -> None:
    p = _plan(repo_id, PlanOptions())
    assert DetectionSummary.from_dict(p.detection.to_dict()) == p.detection
    assert ModelTraits.from_dict(p.traits.to_dict()) == p.traits
    assert p.gpu is not None and p.memory is not None
    assert GpuSummary.from_dict(p.gpu.to_dict()) == p.gpu
    assert MemorySummary.from_dict(p.memory.to_dict()) == p.memory
    for term in p.memory.terms:
        assert MemoryTerm.from_dict(term.to_dict()) == term
    for claim in p.detection.candidates:
        assert Detection.from_dict(claim.to_dict()) == claim
    for alt in p.alternatives:
        assert Alternative.from_dict(json.loads(json.dumps(alt.to_dict()))) == alt


def test_a_multi_node_decision_summarises_without_loss() -> None:
    d = choose_gpu(GpuRequest(traits=ModelTraits(), weights_bytes=2_500_000_000_000, weights_basis="hypothetical"))
    assert d.choice.nodes > 1
    gpu, memory = d.gpu_summary(), d.memory.memory_summary()
    assert (gpu.nodes, memory.gpus) == (d.choice.nodes, d.memory.layout.world_size)
    assert GpuSummary.from_dict(json.loads(json.dumps(gpu.to_dict()))) == gpu
    assert MemorySummary.from_dict(json.loads(json.dumps(memory.to_dict()))) == memory
    # The decision's own JSON is its summaries' JSON.
    assert d.to_dict()["gpu"] == gpu.to_dict() and d.to_dict()["memory"] == memory.to_dict()


def test_a_detection_read_back_carries_no_details() -> None:
    claim = Detection(format="gguf", evidence=("x.gguf",), details={"quants": ["Q8_0"]})
    assert Detection.from_dict(claim.to_dict()) == dataclasses.replace(claim, details={})
    refused = Detection(format="exl2", evidence=("e",), servable=False, reason="r", instead="i")
    assert Detection.from_dict(refused.to_dict()) == refused


@pytest.mark.parametrize("record", [DeploymentPlan, Alternative])
def test_no_plan_field_is_a_mapping_of_json(record: type) -> None:
    hints = typing.get_type_hints(record)
    loose = [name for name, hint in hints.items() if "Any" in repr(hint)]
    assert loose == []
