"""The offline parts of tools/plan_requirements (the resolution itself needs the index: nox -s plan_requirements)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools.plan_requirements import NEGATIVE_CONTROLS, distinct_sets, local_requirement


def test_plans_asking_for_the_same_set_are_resolved_once():
    a = {"requirements": ["vllm==0.34.0", "torch==2.14.0"], "overrides": ["flashinfer-python==0.7.4"]}
    b = {"requirements": ["torch==2.14.0", "vllm==0.34.0"], "overrides": ["flashinfer-python==0.7.4"]}
    c = {"requirements": ["vllm==0.34.0", "torch==2.14.0"]}  # same set, no override: another case
    image = {"requirements": [], "image": "ghcr.io/ggml-org/llama.cpp:server-cuda"}
    sets = distinct_sets([("a", a), ("b", b), ("c", c), ("llama.cpp", image)])
    assert sorted(sets.values()) == [["a", "b"], ["c"]]


def test_modelformats_resolves_from_this_checkout_at_its_version():
    root = Path("/work/checkout")
    assert local_requirement("modelformats[vllm-plugin]==0.1.0", "0.1.0", root) == (
        "modelformats[vllm-plugin] @ file:///work/checkout"
    )
    assert local_requirement("vllm==0.34.0", "0.1.0", root) == "vllm==0.34.0"
    with pytest.raises(SystemExit, match=r"this checkout is modelformats 0\.1\.0"):
        local_requirement("modelformats[vllm-plugin]==9.9.9", "0.1.0", root)


def test_the_negative_controls_name_0_34_without_its_override():
    assert NEGATIVE_CONTROLS[0][1] == ("vllm==0.34.0",)
