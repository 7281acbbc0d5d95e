"""The committed GGUF probe data says what issue 8 asks it to say, from the locked environments.

`nox -s engine_probe` re-runs the probe in the locked vLLM environments and fails if the result
changed; tests/test_evidence.py fails when the probe's scripts, the listings it resolves tags
against, or the lock files changed since the file was generated (its provenance block).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tools.engine_probe import inputs
from tools.locks import pins

from modelformats.engines.vllm import PROFILES, load_probe

ROOT = Path(__file__).resolve().parents[2]
TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads((ROOT / "src/modelformats/engines/data/vllm_gguf_probe.json").read_text())


def test_each_environment_is_recorded_with_its_lock_and_the_locked_versions(data):
    assert sorted(data["engines"]) == sorted(inputs.PROBED_ENVS)
    for env, result in data["engines"].items():
        assert result["lock"] == f"locks/{env}.txt"
        locked = pins(env)
        for name in ("vllm", "torch", "transformers", "gguf", "vllm-gguf-plugin"):
            assert result["versions"].get(name) == locked.get(name), (env, name)
        assert result["versions"]["vllm"] == env.removeprefix("vllm-")
        assert result["platform"].startswith("CpuPlatform")
    assert data["engines"]["vllm-0.33.0"]["versions"]["vllm-gguf-plugin"] == "0.0.5"
    assert data["engines"]["vllm-0.23.0"]["versions"]["vllm-gguf-plugin"] is None


def test_every_profile_reads_a_probed_environment_of_its_version():
    probe = load_probe()
    for profile in PROFILES:
        versions = probe["engines"][profile.probe_env]["versions"]
        assert versions["vllm"] in profile.verified


def test_profiles_quantization_tables_equal_what_the_probe_recorded():
    probe = load_probe()
    for profile in PROFILES:
        recorded = probe["engines"][profile.probe_env]["quantization_methods_builtin"]
        assert list(profile.quantization_methods) == recorded


def _case(data: dict, env: str, layout: str, hf_model_type: str | None) -> dict:
    (case,) = [
        c
        for c in data["engines"][env]["cases"]
        if c["layout"] == layout and c["hf_model_type"] == hf_model_type and "variant" not in c
    ]
    return case


@pytest.mark.parametrize("env", ["vllm-0.23.0", "vllm-0.33.0"])
def test_target_layout_with_its_mixtral_config_fails_in_the_name_map(data, env):
    case = _case(data, env, "llama+experts", "mixtral")
    assert case["config"]["model_type"] == "mixtral"
    assert case["stopped_at"] == "names"
    assert case["error"] == {"type": "RuntimeError", "message": "Unknown gguf model_type: mixtral"}


def test_target_layout_alone_on_0_23_becomes_a_dense_llama_that_never_loads_its_experts(data):
    case = _case(data, "vllm-0.23.0", "llama+experts", None)
    assert case["config"]["architectures"] == ["LlamaForCausalLM"]
    assert case["config"]["mismatches"] == ["experts: None (the GGUF holds 4)"]
    assert case["names"]["unmapped_gguf_tensors"] == [
        f"blk.{b}.{t}.weight" for b in (0, 1) for t in ("ffn_down_exps", "ffn_gate_exps", "ffn_gate_inp", "ffn_up_exps")
    ]
    assert case["load"]["unloaded"] == [
        f"model.layers.{b}.mlp.{p}.{q}"
        for b in (0, 1)
        for p in ("down_proj", "gate_up_proj")
        for q in ("qweight", "qweight_type")
    ]
    assert case["weights_complete"] is False


def test_plugin_needs_a_config_json_and_the_dense_llama_loads_completely_with_one(data):
    alone = _case(data, "vllm-0.33.0", "llama", None)
    assert alone["stopped_at"] == "config"
    assert "Should have a `model_type` key in its config.json" in alone["error"]["message"]
    dense = _case(data, "vllm-0.33.0", "llama", "llama")
    assert dense["weights_complete"] is True
    assert dense["load"]["loaded"] == dense["load"]["parameters"] == 25


def test_tag_checks_ran_on_the_targets_mixed_case_tags(data):
    for env in ("vllm-0.23.0", "vllm-0.33.0"):
        tags = data["engines"][env]["tags"]
        target = tags["resolution"][TARGET]
        assert target["Q4_k_m"] == {"recognised": False}
        assert target["Q8_0"]["recognised"] is True
        assert tags["recognised"]["Q4_K_M"] is True
        assert tags["recognised"]["Q4_0_4_4"] is False
    assert data["engines"]["vllm-0.23.0"]["tags"]["recognised"]["IQ3_M"] is False
    assert data["engines"]["vllm-0.33.0"]["tags"]["recognised"]["IQ3_M"] is True


def test_docs_show_the_current_probe_tables():
    from tools.engine_probe import table

    assert table.render(table.json.loads(table.DATA.read_text())) in (ROOT / "docs/compatibility.md").read_text(), (
        "docs/compatibility.md is out of date: paste `python tools/engine_probe/table.py` between its markers"
    )


def test_the_0_34_probe_is_blocked_by_the_cpu_platform_not_by_gguf():
    # Every 0.34 case that gets a config.json stops on CpuPlatform's Triton check before any GGUF code
    # runs; the profile refuses GGUF there as unproven. If a probe run gets past it, drop probe_blocked_by.
    profile = next(p for p in PROFILES if p.probe_env == "vllm-0.34.0")
    cases = [c for c in load_probe()["engines"]["vllm-0.34.0"]["cases"] if c["hf_config_path"]]
    assert cases and {(c["stopped_at"], c["error"]["message"]) for c in cases} == {("config", profile.probe_blocked_by)}
    assert all(p.probe_blocked_by is None for p in PROFILES if p is not profile)
