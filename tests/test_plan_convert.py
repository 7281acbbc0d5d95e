"""Issue 18's planner route: a GGUF repo without usable base weights, converted to safetensors and served by vLLM.

The recorded fixtures (bartowski Llama-3.1-8B, mradermacher 70Bx2 MoE) read no GGUF header, so the route is
refused there for an unknown architecture; tests/data/synthetic holds the same shapes with the header a live
plan reads, where it loads, ranked below every route that serves the downloaded GGUF as it is (its level,
`converted-cpu-generation`, comes from the committed data/vllm_cpu_generation.json).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from modelformats.conversion import MEASURED_RATE, conversion_target, generation_evidence, supported_conversions
from modelformats.deployment import DeploymentPlan
from modelformats.engines.base import EvidenceLevel
from modelformats.errors import EngineCannotLoadError
from modelformats.listing import RepoFile, load_listing
from modelformats.planner import PlanOptions, plan
from modelformats.sources.recorded import RecordedSource

DATA = Path(__file__).parent / "data"
RECORDED = RecordedSource.from_paths([DATA / "listings"])
SYNTHETIC = RecordedSource.from_paths([DATA / "synthetic"])
DENSE = "example/Llama-3.1-8B-Instruct-GGUF"
MOE = "example/Llama-3-70Bx2-MOE-GGUF"
LABEL = "gguf weights converted to safetensors (bfloat16) on vllm 0.33.0"
RATE = "at 176 MB/s measured by benchmarks/bench_convert.py on a 2-core machine"


def _converted(p: DeploymentPlan):
    return next(a for a in p.alternatives if a.label == LABEL)


@pytest.mark.parametrize(
    "repo_id", ["bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "mradermacher/Llama-3-70Bx2-MOE-GGUF"]
)
def test_recorded_fixtures_without_base_weights_list_the_route_refused_for_their_unknown_architecture(repo_id):
    p = plan(repo_id, source=RECORDED)
    assert p.engine.name == "llamacpp"  # unchanged: the golden row
    alt = _converted(p)
    assert not alt.loads and alt.format == "safetensors"
    assert alt.reason == (
        "cannot load: the gguf architecture is unknown (no header read and no base config), so whether "
        "modelformats convert supports it cannot be told "
        "(it converts: llama, llama with experts, qwen2, qwen3moe with experts)"
    )


def test_a_repo_with_base_weights_gets_no_converted_route():
    assert all("converted" not in a.label for a in plan(None).alternatives)


@pytest.mark.parametrize(
    ("repo_id", "layout", "architecture"),
    [(DENSE, "llama", "LlamaForCausalLM"), (MOE, "llama+experts", "MixtralForCausalLM")],
)
def test_the_route_loads_below_the_gguf_as_it_is_with_its_evidence_time_and_price(repo_id, layout, architecture):
    p = plan(repo_id, source=SYNTHETIC)
    assert (p.engine.name, p.format) == ("llamacpp", "gguf")
    alt = _converted(p)
    # vLLM's engine generated transformers' tokens from converted tiny checkpoints of the layout
    # (data/vllm_cpu_generation.json): the stronger converted level, still below the GGUF as it is.
    assert alt.loads and alt.verdict.level is EvidenceLevel.CONVERTED_CPU_GENERATION
    assert alt.rank == 2 and alt.price_per_hour is not None
    assert alt.reason.startswith(
        "weaker evidence: loads after conversion — vLLM's engine generated the same tokens on CPU from converted "
        "tiny checkpoints (F32/F16 inputs); conversion ~"
    )
    assert alt.reason.endswith(f"{RATE} (Q8_0 -> bfloat16, disk to disk)")
    evidence = "\n".join(alt.verdict.evidence)
    assert f"{architecture} is in vLLM 0.33.0's model registry" in evidence
    proven = "F32, F16, BF16, Q8_0, Q4_K_M"
    assert f"nox -s gguf_convert_proof: {layout.replace('+', ' with ')} GGUFs ({proven}) of tiny" in evidence
    assert "vLLM's load of the converted directory not run" not in evidence
    for gguf_type in ("F32", "F16"):
        assert (
            f"nox -s vllm_cpu_generation ({layout}, {gguf_type} GGUF): vLLM's engine (vllm-cpu 0.32.0 on CPU, no "
            f"GGUF plugin) loaded the directory modelformats convert wrote (float32) as {architecture} and "
            "generated greedy tokens identical to transformers' on the original checkpoint holding the GGUF's "
            "values, 48/48 (max |top-1 logprob diff| "
        ) in evidence
    assert "F32 GGUF)" in evidence and "they differ as predicted" in evidence
    assert not any("not proven here" in w for w in alt.verdict.warnings)  # Q8_0: the conversion proof's
    assert alt.argv[:3] == ("vllm", "serve", f"/models/{repo_id}/converted-Q8_0-bfloat16")


def test_the_converted_levels_rank_below_every_level_of_weights_served_as_they_are():
    direct = [level for level in EvidenceLevel if not level.value.startswith("converted")]
    direct.remove(EvidenceLevel.REFUSED)
    for level in (EvidenceLevel.CONVERTED_CPU_GENERATION, EvidenceLevel.CONVERTED):
        assert all(level.rank > other.rank for other in direct)
    assert EvidenceLevel.CONVERTED_CPU_GENERATION.rank < EvidenceLevel.CONVERTED.rank < EvidenceLevel.REFUSED.rank


def _generation_proof():
    from importlib import resources

    return json.loads(resources.files("modelformats.engines").joinpath("data/vllm_cpu_generation.json").read_text())


def test_the_generation_evidence_counts_a_layout_only_when_every_case_and_its_control_passed():
    data = _generation_proof()
    layouts = {"llama", "llama+experts", "qwen2", "qwen3moe+experts"}
    assert set(generation_evidence(data)) == layouts
    assert generation_evidence(data)["llama"][1] == ("F32", "F16")
    for key in ("passed", "negative_control_failed_as_predicted"):
        broken = json.loads(json.dumps(data))
        next(c for c in broken["converted"] if c["layout"] == "llama" and c["gguf_type"] == "F32")[key] = False
        assert set(generation_evidence(broken)) == layouts - {"llama"}
    assert generation_evidence({}) == {}
    # qwen2 is not permuted by llama.cpp: its control forces the un-permute on, and the evidence says so.
    (f32, _) = generation_evidence(data)["qwen2"][0]
    assert f32.endswith("; converted with the Q/K un-permute forced on, they differ as predicted")


def test_a_layout_without_the_generation_proof_stays_converted_and_an_unproven_quant_is_warned():
    qwen2 = conversion_target("qwen2", False)
    assert qwen2 is not None and qwen2.level is EvidenceLevel.CONVERTED_CPU_GENERATION
    assert replace(qwen2, generated=(), generated_types=()).level is EvidenceLevel.CONVERTED
    llama = conversion_target("llama", False)
    assert llama is not None and llama.level is EvidenceLevel.CONVERTED_CPU_GENERATION
    without = replace(llama, generated=(), generated_types=())
    assert without.level is EvidenceLevel.CONVERTED
    assert without.evidence()[-1].endswith("vLLM's load of the converted directory not run")
    (warning,) = llama.warnings("Q5_K_M")
    assert warning.startswith(
        "the conversion proof covered F32, F16, BF16, Q8_0, Q4_K_M GGUFs (tensor types BF16, F16, F32, Q4_K, Q6_K, "
        "Q8_0); Q5_K_M is dequantized by the gguf package's reference dequantizer, not proven here"
    )
    # Q6_K: a file type the proof did not build, but its tensor type was in the proven Q4_K_M files.
    assert llama.warnings("Q8_0") == () and llama.warnings("Q4_K_M") == () and llama.warnings("Q6_K") == ()
    assert qwen2.warnings("Q4_K_M") == ()  # the K-quant case built a 256-wide qwen2 too
    (warning,) = qwen2.warnings("Q3_K_M")
    assert warning.startswith("the conversion proof covered F32, F16, BF16, Q8_0, Q4_K_M GGUFs (tensor types")


def test_format_native_serves_the_converted_directory_sized_at_two_bytes_per_parameter():
    p = plan(DENSE, source=SYNTHETIC, options=PlanOptions(format="native"))
    assert (p.engine.name, p.format, p.quant, p.weights_repo_id) == ("vllm", "safetensors", "Q8_0", DENSE)
    assert p.engine.verdict is not None and p.engine.verdict.level is EvidenceLevel.CONVERTED_CPU_GENERATION
    (step,) = p.converts
    assert step.gguf == f"/models/{DENSE}/Llama-3.1-8B-Instruct-Q8_0.gguf"
    assert step.output == f"/models/{DENSE}/converted-Q8_0-bfloat16"
    assert (step.dtype, step.base, step.source_bytes) == ("bfloat16", None, 8_540_770_528)
    assert step.estimated_seconds == 49 and step.estimate_basis.startswith(f"~1 min {RATE}")
    argv = list(p.engine.argv)
    assert argv[:3] == ["vllm", "serve", step.output] and "--tokenizer" not in argv
    assert p.files == ("Llama-3.1-8B-Instruct-Q8_0.gguf",)
    assert p.memory is not None
    weights = next(t for t in p.memory.terms if t.name == "weights")
    assert weights.bytes == 8_030_261_248 * 2
    assert "converted to bfloat16: 8,030,261,248 parameters (GGUF header of" in weights.basis
    # No base config: the conversion builds it from the header, and refuses llama3 rope without one.
    assert any(w.startswith("The conversion has no base model's config.json") for w in p.warnings)
    text = "\n".join(p.explanation)
    assert f"`modelformats convert` writes {step.output} from {step.gguf} (~1 min {RATE}" in text
    assert DeploymentPlan.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.to_dict()["download"]["converts"] == [step.to_dict()]


def test_byte_splits_are_joined_then_converted():
    p = plan(MOE, source=SYNTHETIC, options=PlanOptions(format="native"))
    (join,) = p.joins
    (step,) = p.converts
    assert step.gguf == join.output == f"/models/{MOE}/Llama-3-70Bx2-MOE.Q8_0.gguf"
    assert p.traits.architecture == "MixtralForCausalLM"
    assert step.estimate_basis.startswith(f"~13 min {RATE}")  # 134.9 GB / 176 MB/s
    assert p.gpu is not None and p.gpu.count >= 2  # 254 GB of bf16 weights


def test_other_plans_carry_no_convert_step():
    p = plan(DENSE, source=SYNTHETIC)
    assert p.converts == () and p.to_dict()["download"]["converts"] == []


def _gemma_listing():
    listing = load_listing(DATA / "synthetic" / "example__Llama-3.1-8B-Instruct-GGUF.json")
    header = dict(listing.gguf_headers["Llama-3.1-8B-Instruct-Q8_0.gguf"])
    meta = {k.replace("llama.", "gemma3."): v for k, v in header["metadata"].items()}
    header["metadata"] = meta | {"general.architecture": "gemma3"}
    return replace(listing, repo_id="example/Gemma-GGUF", gguf_headers={"Llama-3.1-8B-Instruct-Q8_0.gguf": header})


def _qwen3moe_listing():
    """The synthetic 8B GGUF's header relabelled as a Qwen3-MoE GGUF (128 experts, 8 used)."""
    listing = load_listing(DATA / "synthetic" / "example__Llama-3.1-8B-Instruct-GGUF.json")
    header = dict(listing.gguf_headers["Llama-3.1-8B-Instruct-Q8_0.gguf"])
    meta = {k.replace("llama.", "qwen3moe."): v for k, v in header["metadata"].items()}
    experts = {"qwen3moe.expert_count": 128, "qwen3moe.expert_used_count": 8}
    header["metadata"] = meta | experts | {"general.architecture": "qwen3moe"}
    return replace(listing, repo_id="example/Qwen3-MoE-GGUF", gguf_headers={"Llama-3.1-8B-Instruct-Q8_0.gguf": header})


def test_a_qwen3moe_gguf_converts_with_the_proofs_quoted():
    alt = _converted(plan("example/Qwen3-MoE-GGUF", source=RecordedSource([_qwen3moe_listing()])))
    assert alt.loads and alt.verdict.level is EvidenceLevel.CONVERTED_CPU_GENERATION
    evidence = "\n".join(alt.verdict.evidence)
    assert "Qwen3MoeForCausalLM is in vLLM 0.33.0's model registry" in evidence
    assert "nox -s gguf_convert_proof: qwen3moe with experts GGUFs (F32, F16, BF16, Q8_0, Q4_K_M) of tiny" in evidence
    assert "nox -s vllm_cpu_generation (qwen3moe+experts, F32 GGUF): vLLM's engine" in evidence
    assert "as Qwen3MoeForCausalLM and generated greedy tokens identical to transformers'" in evidence
    assert not any("not proven here" in w for w in alt.verdict.warnings)  # Q8_0: proven


def test_an_architecture_convert_does_not_support_is_a_refused_route_naming_what_it_supports():
    source = RecordedSource([_gemma_listing()])
    alt = _converted(plan("example/Gemma-GGUF", source=source))
    assert not alt.loads
    assert alt.reason == (
        "cannot load: modelformats convert has no layout for gguf architecture 'gemma3' "
        "(it converts: llama, llama with experts, qwen2, qwen3moe with experts)"
    )
    with pytest.raises(EngineCannotLoadError) as exc:
        plan("example/Gemma-GGUF", source=source, options=PlanOptions(format="native"))
    assert f"- {LABEL}: modelformats convert has no layout for gguf architecture 'gemma3'" in str(exc.value)


def test_what_converts_comes_from_the_convert_package_and_its_proof():
    from modelformats.convert import default_layouts

    assert supported_conversions() == default_layouts().supported()
    moe = conversion_target("llama", True)
    assert moe is not None and (moe.hf_architecture, moe.proven_quants) == (
        "MixtralForCausalLM",
        ("F32", "F16", "BF16", "Q8_0", "Q4_K_M"),
    )
    assert {"Q4_K", "Q6_K"} <= moe.proven_tensor_types
    qwen2 = conversion_target("qwen2", False)
    assert qwen2 is not None and qwen2.proven_quants == ("F32", "F16", "BF16", "Q8_0", "Q4_K_M")
    converted, *generated = qwen2.evidence()
    assert converted.startswith(
        "nox -s gguf_convert_proof: qwen2 GGUFs (F32, F16, BF16, Q8_0, Q4_K_M) of tiny checkpoints convert"
    )
    assert [line.split(":")[0] for line in generated] == [
        "nox -s vllm_cpu_generation (qwen2, F32 GGUF)",
        "nox -s vllm_cpu_generation (qwen2, F16 GGUF)",
    ]
    qwen3moe = conversion_target("qwen3moe", True)
    assert qwen3moe is not None and (qwen3moe.hf_architecture, qwen3moe.proven_quants) == (
        "Qwen3MoeForCausalLM",
        ("F32", "F16", "BF16", "Q8_0", "Q4_K_M"),
    )
    assert conversion_target("qwen3moe", False) is None  # llama.cpp's qwen3moe always has experts
    assert conversion_target("gemma3", False) is None


def test_the_measured_rate_gives_minutes():
    assert MEASURED_RATE.describe(19_555_253_952).startswith("~2 min at 176 MB/s")  # the target's Q8_0
    assert MEASURED_RATE.describe(None).startswith("time unknown")
    assert MEASURED_RATE.seconds(176_000_000) == 1


def test_the_default_repo_plan_is_unchanged():
    assert plan(None).converts == ()


def _with_f16(listing):
    """The synthetic 8B listing plus an F16 GGUF (16 GB: 8,030,261,248 x 2 B + header)."""
    f16 = RepoFile(path="Llama-3.1-8B-Instruct-f16.gguf", size=16_068_890_912)
    return replace(listing, files=(*listing.files, f16))


def test_the_conversion_prefers_an_unquantized_gguf_and_the_gguf_routes_keep_the_default_order():
    source = RecordedSource([_with_f16(load_listing(DATA / "synthetic" / "example__Llama-3.1-8B-Instruct-GGUF.json"))])
    p = plan(DENSE, source=source, options=PlanOptions(format="native"))
    (step,) = p.converts
    assert step.gguf == f"/models/{DENSE}/Llama-3.1-8B-Instruct-f16.gguf"
    assert step.output == f"/models/{DENSE}/converted-F16-bfloat16"
    assert p.files == ("Llama-3.1-8B-Instruct-f16.gguf",)
    assert any(
        "the first of the conversion's order (unquantized first) BF16 > F16 > F32 > Q8_0 > Q6_K > Q5_K_M > Q4_K_M "
        "present" in line
        for line in p.explanation
    )
    # Served as it is, the GGUF keeps the default order (Q8_0 first).
    assert plan(DENSE, source=source).files == ("Llama-3.1-8B-Instruct-Q8_0.gguf",)
