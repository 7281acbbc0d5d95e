"""The CPU generation proof's verdict logic (tools/vllm_cpu_generation/compare.py) and its committed result.

The proof itself runs vLLM's engine (`nox -s vllm_cpu_generation`); here: that a token match at a
near-tie is never called a pass, that a difference is found where it is, and that the committed
served argv is still what the planner builds for the target.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from tools.vllm_cpu_generation.compare import MARGIN_FACTOR, compare_case, first_difference, sig

from modelformats.planner import PlanOptions, plan


def gen(tokens, top1=None, margin=1.0):
    top1 = top1 if top1 is not None else [-0.5] * len(tokens)
    return {"tokens": list(tokens), "top1": list(top1), "top2": [t - margin for t in top1]}


def test_identical_tokens_with_clear_margins_pass():
    ref = [gen([5, 6, 7]), gen([8, 9, 10])]
    cand = [gen([5, 6, 7], [-0.5, -0.5, -0.50001]), gen([8, 9, 10])]
    result = compare_case(cand, {"llama.cpp": ref, "transformers": ref})
    assert result.verdict == "identical"
    assert result.to_dict()["identical_tokens"] == "6/6"
    assert result.to_dict()["max_top1_logprob_diff"] == 1e-5


def test_identical_tokens_at_a_near_tie_are_undecidable_not_passed():
    # Observed difference 0.01; a margin of 0.05 is < 10 x 0.01 at position 1.
    ref = [gen([5, 6, 7], [-0.5, -0.5, -0.5])]
    ref[0]["top2"][1] = -0.55
    cand = [gen([5, 6, 7], [-0.51, -0.5, -0.5])]
    result = compare_case(cand, {"transformers": ref})
    assert result.verdict == "undecidable"
    assert result.undecidable_positions == ["prompt 0 position 1 vs transformers"]


def test_noise_is_judged_per_reference():
    # llama.cpp noisy (0.01), transformers exact: a 0.05 margin is decidable only against transformers.
    ref = [gen([5, 6], [-0.5, -0.5], margin=0.05)]
    noisy = [gen([5, 6], [-0.51, -0.5], margin=0.05)]
    cand = [gen([5, 6], [-0.5, -0.5], margin=0.05)]
    result = compare_case(cand, {"llama.cpp": noisy, "transformers": ref})
    assert result.verdict == "undecidable"
    assert result.undecidable_positions == ["prompt 0 position 0 vs llama.cpp", "prompt 0 position 1 vs llama.cpp"]
    assert compare_case(cand, {"transformers": ref}).verdict == "identical"


def test_a_difference_where_the_reference_is_sure_is_decidable():
    ref = [gen([5, 6, 7])]
    cand = [gen([5, 1, 2])]
    result = compare_case(cand, {"llama.cpp": ref})
    assert result.verdict == "different"
    assert result.first_differences == ["prompt 0 vs llama.cpp at position 1 (decidable)"]
    assert result.identical == 1


def test_a_difference_at_a_near_tie_is_undecidable():
    ref = [gen([5, 6, 7], [-0.5, -0.5, -0.5], margin=1e-6)]
    cand = [gen([5, 1, 2], [-0.5, -0.5, -0.5], margin=1e-6)]
    result = compare_case(cand, {"llama.cpp": ref})
    assert result.verdict == "undecidable"


@pytest.mark.parametrize(("a", "b", "at"), [([1, 2], [1, 2], None), ([1, 2], [1, 3], 1), ([1], [1, 2], 1)])
def test_first_difference(a, b, at):
    assert first_difference(a, b) == at


def test_rounding_keeps_two_significant_digits():
    assert (sig(0.012345), sig(7.89e-6), sig(0.0)) == (0.012, 7.9e-06, 0.0)
    assert MARGIN_FACTOR >= 5


def _converted_case(
    tokens, control_tokens, *, architecture="LlamaForCausalLM", quantization=None, imported=(), plugin=True
):
    from tools.vllm_cpu_generation.__main__ import converted_verdicts

    ref = [gen([5, 6, 7]), gen([8, 9, 10])]
    case = {"name": "llama F32", "layout": "llama", "gguf_type": "F32"}
    convert = {"dtype": "float32", "hf_architecture": "LlamaForCausalLM", "files": ["config.json"]}
    convert["config_architectures"] = ["LlamaForCausalLM"]
    run = {"generations": [gen(t) for t in tokens], "vllm_architecture": architecture}
    run["vllm_quantization"] = quantization
    runs = [({**convert, "control": None}, run)]
    if control_tokens is not None:
        control = {"generations": [gen(t) for t in control_tokens]}
        runs.append(({**convert, "control": "Q/K un-permute off" if plugin else "Q/K un-permute forced on"}, control))
    fixed = {"generations": ref} if plugin else None
    return converted_verdicts(case, {"llama.cpp": ref, "transformers": ref}, fixed, runs, list(imported))


def test_plain_vllm_on_the_converted_checkpoint_passes_only_as_predicted():
    good = _converted_case([[5, 6, 7], [8, 9, 10]], [[5, 1, 2], [8, 9, 3]])
    assert good["passed"] and good["negative_control_failed_as_predicted"]
    run = good["vllm on the converted checkpoint"]
    assert run["vs transformers"]["identical_tokens"] == "6/6"
    assert run["tokens equal vLLM with modelformats on the GGUF"]
    # A wrong token, a GGUF (quantized) load, another class, or a GGUF plugin imported: not passed.
    assert not _converted_case([[5, 6, 7], [8, 9, 1]], None)["passed"]
    assert not _converted_case([[5, 6, 7], [8, 9, 10]], None, quantization="gguf")["passed"]
    assert not _converted_case([[5, 6, 7], [8, 9, 10]], None, architecture="MixtralForCausalLM")["passed"]
    assert not _converted_case([[5, 6, 7], [8, 9, 10]], None, imported=["vllm_gguf_plugin"])["passed"]
    # A control that generates the right tokens did not fail as predicted.
    same = _converted_case([[5, 6, 7], [8, 9, 10]], [[5, 6, 7], [8, 9, 10]])
    assert same["passed"] and not same["negative_control_failed_as_predicted"]
    assert "negative control: converted with the Q/K un-permute off" not in _converted_case([[5, 6, 7]] * 2, None)


def test_a_layout_no_plugin_loads_is_judged_on_the_converted_route_alone():
    # qwen2: no GGUF-plugin run to compare with, and the control forces the un-permute on.
    good = _converted_case([[5, 6, 7], [8, 9, 10]], [[5, 1, 2], [8, 9, 3]], plugin=False)
    assert good["passed"] and good["negative_control_failed_as_predicted"]
    assert "tokens equal vLLM with modelformats on the GGUF" not in good["vllm on the converted checkpoint"]
    assert good["negative control: converted with the Q/K un-permute forced on"]["failed_as_predicted"]


def _committed():
    path = resources.files("modelformats.engines").joinpath("data/vllm_cpu_generation.json")
    return json.loads(path.read_text()) if path.is_file() else None


def test_the_committed_served_argv_is_the_planners():
    committed = _committed()
    if committed is None:
        pytest.skip("no committed vllm_cpu_generation.json yet")
    from tools.vllm_cpu_generation.serve import build_argv

    target = plan(None, options=PlanOptions(engine="vllm", format="gguf"))
    served = committed["served"]
    assert served["h100_argv"] == list(target.engine.argv), "re-run `nox -s vllm_cpu_generation -- --update`"
    built = build_argv(Path("<work>/gguf/llama_experts-f32.gguf"), Path("<work>/hf/llama_experts"), "F32")
    port = built["cpu_argv"][built["cpu_argv"].index("--port") + 1]
    assert [("<free port>" if a == port else a) for a in built["cpu_argv"]] == served["cpu_argv"]
    assert {row["flag"] for row in built["adapted"]} == {row["flag"] for row in served["adapted"]}
    assert all(row["why"] != "UNEXPECTED" for row in served["adapted"])


def test_the_committed_converted_route_is_plain_vllm_generating_the_references():
    committed = _committed()
    if committed is None or "converted" not in committed:
        pytest.skip("no committed converted results yet")
    converted = committed["converted"]
    plugin_layouts = {(r["layout"], r["gguf_type"]) for r in committed["results"]}
    # The layouts with a GGUF-plugin run, and qwen2 and qwen3moe through the converted route only.
    only = {(layout, t) for layout in ("qwen2", "qwen3moe+experts") for t in ("F32", "F16")}
    assert {(c["layout"], c["gguf_type"]) for c in converted} == plugin_layouts | only
    for case in converted:
        run = case["vllm on the converted checkpoint"]
        assert case["passed"] and case["negative_control_failed_as_predicted"], case["layout"]
        assert case["VLLM_PLUGINS"] == "" and case["plugin modules imported"] == []
        assert run["vllm_quantization"] is None
        assert [run["vllm_architecture"]] == case["convert"]["config.json architectures"]
        assert run["vs transformers"]["verdict"] == "identical"
        assert run["vs transformers"]["identical_tokens"] == "48/48"
        plugin = (case["layout"], case["gguf_type"]) in plugin_layouts
        assert run.get("tokens equal vLLM with modelformats on the GGUF", False) is plugin
    controls = {
        c["layout"]: next(v for k, v in c.items() if k.startswith("negative control: converted with the "))
        for c in converted
        if c["gguf_type"] == "F32"
    }
    assert len(controls) == 4 and all(c["observed"]["verdict"] == "different" for c in controls.values())
    for layout in ("qwen2", "qwen3moe+experts"):  # llama.cpp does not permute them: the control forces it on
        assert "negative control: converted with the Q/K un-permute forced on" in next(
            c for c in converted if c["layout"] == layout
        )
