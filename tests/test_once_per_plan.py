"""Issue 13: each fact is computed once per plan, and what the plan computes reaches the plan."""

from __future__ import annotations

import collections
import functools
from dataclasses import replace
from pathlib import Path

import pytest

import modelformats.formats.gguf as gguf_format
import modelformats.formats.hf as hf_format
import modelformats.gguf.files as gguf_files
import modelformats.gguf.source as gguf_source
from modelformats.deployment import DeploymentPlan
from modelformats.engines.llamacpp import LlamaCppEngine
from modelformats.engines.vllm import VllmEngine
from modelformats.gpu import GpuRequest, choose_gpu
from modelformats.planner import PlanOptions, plan
from modelformats.sources.recorded import RecordedSource
from modelformats.traits import ModelTraits

LISTINGS = Path(__file__).parent / "data" / "listings"
SOURCE = RecordedSource.from_paths([LISTINGS])


@pytest.fixture
def calls(monkeypatch) -> collections.Counter[str]:
    counter: collections.Counter[str] = collections.Counter()

    def count(owner: object, name: str, key: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def counted(*args: object, **kwargs: object) -> object:
            counter[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    count(gguf_files, "inventory_gguf", "inventory_gguf")
    count(gguf_format, "inventory_gguf", "inventory_gguf")
    count(gguf_format, "find_tokenizer_source", "find_tokenizer_source")
    count(gguf_source, "find_base_repo", "find_base_repo")
    count(gguf_format, "find_base_repo", "find_base_repo")
    count(gguf_format.GGUFFormat, "select_files", "select_files")
    count(hf_format._HFFormat, "select_files", "select_files")
    count(VllmEngine, "check", "check")
    count(LlamaCppEngine, "check", "check")
    return counter


def test_the_default_plan_computes_each_fact_once(calls):
    p = plan()
    routes = 1 + len(p.alternatives)
    # GGUF on vLLM, on vLLM + our plugin, on llama.cpp; the base model's own weights on vLLM, and the same
    # weights with online FP8 (issue 18: its own verdict, for the fp8 weights).
    assert routes == 5
    # One verdict per route, passed on to command() (before: 5 checks for these routes).
    assert calls["check"] == routes
    # Files are selected once per repo and engine filter: the GGUF for vLLM (both variants share the
    # quant filter) and for llama.cpp (another filter), and the base model's safetensors.
    assert calls["select_files"] == 3
    # The GGUF inventory: once to detect (selection reuses it), once when the source picks the header to read.
    assert calls["inventory_gguf"] == 2
    assert calls["find_base_repo"] == 1
    assert calls["find_tokenizer_source"] == 2  # once per GGUF selection


def test_a_single_engine_plan_selects_and_checks_once_per_route(calls):
    p = plan("TheBloke/Llama-2-7B-Chat-GPTQ", source=SOURCE)
    assert p.alternatives == ()
    # The GGUF strategy takes the inventory once, when the registry asks it to detect.
    assert (calls["select_files"], calls["check"], calls["inventory_gguf"]) == (1, 1, 1)


def test_what_the_gpu_policy_computes_reaches_the_plan_and_round_trips():
    p = plan()
    d = p.to_dict()
    assert d["other_policy"] == {
        "policy": "cost",
        "rule": "moe-18b-h100",
        "gpu": "A100-80GB x1",
        "modal_gpu": "A100-80GB",
        "price_per_hour": 2.5,
        "price_difference_per_hour": -1.45,
        "memory_bytes": d["other_policy"]["memory_bytes"],
    }
    # The base model's safetensors on vLLM: no format floor, and the listing records no torch_dtype.
    assert (d["engine"]["name"], d["format"]) == ("vllm", "safetensors")
    assert d["compute_capability"] == {"minimum": "0.0", "reasons": ["no floor known for these weights"]}
    assert DeploymentPlan.from_dict(d) == p
    # No recorded listing needs several nodes: a 2.5 TB model's decision carries the launch facts.
    huge = choose_gpu(GpuRequest(traits=ModelTraits(), weights_bytes=2_500_000_000_000, weights_basis="hypothetical"))
    assert huge.launch is not None and huge.parallel_options
    multi = replace(p, launch=huge.launch, parallel_options=huge.parallel_options)
    assert DeploymentPlan.from_dict(multi.to_dict()) == multi


def test_disabled_formats_are_named_in_the_plan():
    p = plan(
        "DrNicefellow/Mistral-Nemo-Instruct-2407-exl2-7bpw-h8", source=SOURCE, options=PlanOptions(disable=("exl2",))
    )
    assert p.detection.disabled == ("exl2",)
