"""LlamaCppEngine: argv, refusals, evidence levels, and the shape of its two generated data files.

The data files are regenerated and compared by `nox -s llamacpp_e2e` (a real llama-server built from
the llama-cpp-python sdist); here they are only read, so this module runs in milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from modelformats.engines.base import Engine, EngineCommand, EvidenceLevel, RuntimeSpec, WeightsSpec
from modelformats.engines.llamacpp import FILE_LAYOUTS, LlamaCppEngine, load_e2e_results, load_facts
from modelformats.errors import InvalidRequestError
from modelformats.traits import ModelTraits

TARGET_REPO = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"
TARGET_FILE = f"/models/{TARGET_REPO}/L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf"
# The target's header: a Mixtral stored as `llama` with 8 experts, 2 used.
MOE = ModelTraits(gguf_architecture="llama", num_experts=8, num_experts_per_tok=2, is_moe=True)
DENSE = ModelTraits(gguf_architecture="llama", is_moe=False)


@pytest.fixture(scope="module")
def engine() -> LlamaCppEngine:
    return LlamaCppEngine()


def weights(**changes: object) -> WeightsSpec:
    base = WeightsSpec(
        format="gguf",
        repo_id=TARGET_REPO,
        revision=None,
        model=TARGET_FILE,
        container="gguf-file",
        quantization="gguf",
        gguf_quant="Q8_0",
        gguf_layout="single",
        traits=MOE,
    )
    return replace(base, **changes)


def serve(engine: LlamaCppEngine, w: WeightsSpec, runtime: RuntimeSpec) -> EngineCommand:
    return engine.command(w, runtime, engine.check(w))


RUNTIME = RuntimeSpec(served_model_name=TARGET_REPO, max_model_len=4096, max_num_seqs=4, gpu_memory_utilization=0.9)


# --- identity and data files -------------------------------------------------------------------


def test_engine_implements_the_protocol(engine):
    assert isinstance(engine, Engine)
    assert engine.name == "llamacpp"
    assert engine.version == "b11312"
    assert engine.commit == "0c1e57098"
    assert engine.package == "llama-cpp-python==0.3.36"


def test_facts_file_shape():
    facts = load_facts()
    assert facts["schema"] == "modelformats-llamacpp-facts/1"
    source = facts["source"]
    assert (source["package"], source["version"], source["llama_cpp_commit"]) == (
        "llama-cpp-python",
        "0.3.36",
        "0c1e57098",
    )
    assert re.fullmatch(r"[0-9a-f]{64}", source["sdist_sha256"])
    archs = {a["name"]: a for a in facts["architectures"]}
    assert len(archs) > 100
    assert all(re.fullmatch(r"src/llama-arch\.cpp:\d+", a["source"]) for a in archs.values())
    assert archs["llama"]["loads"] and archs["qwen2moe"]["loads"]
    # clip is a placeholder arch in LLM_ARCH_NAMES that only llama-quantize uses.
    assert archs["clip"] == {
        "name": "clip",
        "enum": "LLM_ARCH_CLIP",
        "loads": False,
        "source": "src/llama-arch.cpp:9",
        "note": "dummy, only used by llama-quantize",
    }
    types = {t["name"]: t for t in facts["ggml_types"]}
    assert types["Q8_0"] == {
        "name": "Q8_0",
        "id": 8,
        "loads": True,
        "cuda_mul_mat": True,
        "source": "ggml/include/ggml.h:398",
    }
    assert types["Q4_0_4_4"]["loads"] is False and types["Q4_0_4_4"]["id"] == 31
    assert {n for n, t in types.items() if not t["loads"]} == {
        "Q4_2", "Q4_3", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8",
    }  # fmt: skip
    ftypes = {f["name"]: f for f in facts["file_types"]}
    assert ftypes["MOSTLY_Q4_K_M"]["quantize_names"] == ["Q4_K", "Q4_K_M"]
    assert facts["llama_moe"]["tensors"] == [
        "blk.%d.ffn_gate_inp", "blk.%d.ffn_gate_exps", "blk.%d.ffn_up_exps", "blk.%d.ffn_down_exps",
    ]  # fmt: skip
    assert facts["split"]["shard_format"] == "%s-%05d-of-%05d.gguf"
    assert set(facts["server_routes"]) == {"/health", "/metrics", "/v1/models", "/v1/chat/completions"}
    assert facts["server_metrics"]["llamacpp:tokens_predicted_total"]["type"] == "counter"


def test_every_planned_flag_is_declared_in_arg_cpp_and_accepted_by_the_built_server(engine):
    argv = serve(engine, weights(), RUNTIME).argv
    flags = load_facts()["server_flags"]
    planned = {a for a in argv if a.startswith("--")}
    declared = {alias for f in flags.values() for alias in f["aliases"]}
    # --no-kv-unified is the negative form declared beside --kv-unified (common/arg.cpp:1724-1725).
    assert planned - declared == {"--no-kv-unified"}
    assert "--kv-unified" in flags
    assert all(re.fullmatch(r"common/arg\.cpp:\d+", f["source"]) for f in flags.values())
    in_help = load_e2e_results()["argv_flags_in_help"]
    assert planned <= set(in_help) and all(in_help.values())


def test_e2e_file_shape():
    e2e = load_e2e_results()
    assert e2e["schema"] == "modelformats-llamacpp-e2e/1"
    assert e2e["llama_cpp_build"] == 11312
    assert e2e["server_version"] == "version: 0.5.0-dev (build 11312, commit 0c1e57098)"
    assert all(c["passed"] for c in e2e["cases"])
    cases = {(c["layout"], c["quant"], c["files"]): c for c in e2e["cases"] if "experts_per_token" not in c}
    target = cases[("llama-moe", "Q8_0", "single")]
    assert target["tensor_types"] == ["F32", "Q8_0"]
    assert target["slot_n_ctx"] == e2e["request"]["max_model_len"]
    assert target["completion_tokens"] == target["stream_completion_tokens"] == e2e["request"]["max_tokens"]
    assert target["stream_matches"] and target["n_params_match_file"] and target["exit_code"] == 0
    assert cases[("llama-moe", "Q8_0", "split")]["file_count"] == 2
    assert cases[("llama-moe", "Q8_0", "parts")]["file_count"] == 2
    # K-quant files really hold K-quant blocks (tiny rows are 256 long, QK_K).
    assert "Q4_K" in cases[("llama-moe", "Q4_K_M", "single")]["tensor_types"]
    refused = cases[("llama-moe", "Q4_0_4_4", "single")]
    assert refused["expect"] == "refused"
    assert refused["error"] == "TYPE_Q4_0_4_4 REMOVED, use Q4_0 with runtime repacking"


# --- argv --------------------------------------------------------------------------------------


def test_argv_for_the_target(engine):
    command = serve(engine, weights(), RUNTIME)
    assert command.argv == (
        "/app/llama-server",
        "--model", TARGET_FILE,
        "--ctx-size", "16384",
        "--parallel", "4",
        "--no-kv-unified",
        "--n-gpu-layers", "all",
        "--flash-attn", "auto",
        "--jinja",
        "--alias", TARGET_REPO,
        "--host", "0.0.0.0",
        "--port", "8000",
        "--metrics",
    )  # fmt: skip
    assert command.image == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11312"
    assert command.requirements == ()
    assert command.notes[0] == (
        "--ctx-size 16384 = max_model_len 4096 x --parallel 4: with --no-kv-unified llama-server gives each "
        "slot n_ctx / n_parallel tokens (src/llama-context.cpp:295); both are rounded up to multiples of 256 "
        "(src/llama-context.cpp:290)."
    )
    assert command.to_dict()["argv"] == list(command.argv)


def test_context_over_the_training_length_is_noted(engine):
    traits = replace(MOE, max_position_embeddings=2048)
    command = serve(engine, weights(traits=traits), RUNTIME)
    assert (
        "max_model_len 4096 exceeds the model's training context 2048: llama-server caps each slot at 2048 "
        "(tools/server/server-context.cpp:4015)."
    ) in command.notes


def test_multi_node_is_refused(engine):
    with pytest.raises(InvalidRequestError) as err:
        serve(engine, weights(), replace(RUNTIME, nnodes=2, pipeline_parallel_size=2))
    assert str(err.value) == (
        "llama-server runs on one machine, but the plan asks for 2 node(s) and pipeline_parallel_size=2. "
        "Choose a GPU that holds the model on one node (llama.cpp splits layers across that node's GPUs), "
        "or use vLLM."
    )


def test_cuda_build_recipe_shape(engine):
    recipe = engine.cuda_build_recipe(("90",))
    data = recipe.to_dict()
    assert data["base_image"] == "nvidia/cuda:12.8.1-devel-ubuntu24.04"
    assert data["runtime_image"] == "nvidia/cuda:12.8.1-runtime-ubuntu24.04"
    assert data["fetch"][0] == "pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36"
    assert "-DGGML_CUDA=ON" in data["configure"]
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in data["configure"]
    assert "-DLLAMA_BUILD_NUMBER=11312" in data["configure"]
    assert data["build"] == ["cmake", "--build", "build", "--target", "llama-server", "-j"]
    assert data["binary"] == "/app/llama-server"


# --- refusals ----------------------------------------------------------------------------------


def test_removed_arm_repacks_are_refused_with_source(engine):
    assert engine.refuse_gguf_quant("Q4_0_4_4") == (
        "llama.cpp b11312 cannot load GGUF type Q4_0_4_4: TYPE_Q4_0_4_4 REMOVED, use Q4_0 with runtime "
        "repacking (ggml/include/ggml.h:421; ggml/src/ggml.c:895; a tensor of a removed type has block size "
        "0 and is rejected at ggml/src/gguf.cpp:740). Choose another quant."
    )
    assert engine.refuse_gguf_quant("q4_0_8_8") == (
        "llama.cpp b11312 cannot load GGUF type Q4_0_8_8: TYPE_Q4_0_8_8 REMOVED, use Q4_0 with runtime "
        "repacking (ggml/include/ggml.h:423; ggml/src/ggml.c:907; a tensor of a removed type has block size "
        "0 and is rejected at ggml/src/gguf.cpp:740). Choose another quant."
    )
    assert engine.refuse_gguf_quant("MOSTLY_Q4_0_4_8") == (
        "llama.cpp b11312 cannot load GGUF type MOSTLY_Q4_0_4_8: removed from gguf files, use Q4_0 and "
        "runtime repack (include/llama.h:152; a tensor of a removed type has block size 0 and is rejected at "
        "ggml/src/gguf.cpp:740). Choose another quant."
    )


@pytest.mark.parametrize(
    "name", ["Q8_0", "Q4_K_M", "q5_k_m", "IQ4_XS", "IQ3_M", "MXFP4_MOE", "TQ1_0", "BF16", "UD-Q4_K_XL"]
)
def test_loadable_or_unknown_names_are_not_refused(engine, name):
    assert engine.refuse_gguf_quant(name) is None


def test_non_gguf_is_refused(engine):
    verdict = engine.check(weights(format="safetensors", container="hf-directory", gguf_quant=None))
    assert not verdict.loads and verdict.level is EvidenceLevel.REFUSED
    assert verdict.reasons == (
        f"llama-server loads GGUF files only; {TARGET_REPO!r} is served as safetensors weights. Use vLLM, "
        "or a GGUF conversion of the model.",
    )


def test_architecture_without_a_model_class_is_refused(engine):
    verdict = engine.check(weights(traits=ModelTraits(gguf_architecture="gptj")))
    assert verdict.reasons == (
        "llama.cpp b11312 cannot load GGUF architecture 'gptj': no case in llama_model_mapping "
        "(src/llama-model.cpp): 'unsupported model architecture' (src/llama-arch.cpp:16). Use an engine that "
        "supports it, or a newer llama.cpp.",
    )


def test_removed_tensor_type_in_header_is_refused(engine):
    verdict = engine.check(weights(gguf_quant="Q4_0_4_4", gguf_tensor_types=("F32", "Q4_0_4_4", "Q6_K")))
    assert verdict.level is EvidenceLevel.REFUSED
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith(
        "llama.cpp b11312 cannot load GGUF type Q4_0_4_4:"
    )


def test_unjoined_part_is_refused(engine):
    verdict = engine.check(weights(model="/models/x/m.Q8_0.gguf.part1of2", gguf_layout="parts"))
    assert verdict.reasons == (
        "'/models/x/m.Q8_0.gguf.part1of2' is one raw piece of a split file, not a GGUF: join the .partXofY "
        "pieces in order (the plan's download.joins) and give llama-server the joined .gguf.",
    )


def test_split_shards_need_five_digit_names(engine):
    verdict = engine.check(weights(model="/models/x/m-Q8_0-001-of-003.gguf", gguf_layout="split"))
    assert verdict.reasons == (
        "'/models/x/m-Q8_0-001-of-003.gguf' is not shard 1 in llama.cpp's naming: llama-server must be given "
        "<prefix>-00001-of-NNNNN.gguf (src/llama-model-loader.cpp:605) and derives the other shards with "
        "'%s-%05d-of-%05d.gguf' (src/llama.cpp:552). Rename the shards to five-digit numbering, or merge "
        "them with llama-gguf-split --merge.",
    )
    later = engine.check(weights(model="/models/x/m-Q8_0-00002-of-00003.gguf", gguf_layout="split"))
    assert not later.loads


def test_unknown_file_layout_is_refused(engine):
    verdict = engine.check(weights(gguf_layout="zip"))
    assert verdict.reasons == (
        "Unknown GGUF file layout 'zip'; expected one of single, split, parts "
        "(modelformats.engines.llamacpp.FILE_LAYOUTS).",
    )
    assert set(FILE_LAYOUTS) == {"single", "split", "parts"}


# --- evidence levels ---------------------------------------------------------------------------


def test_target_q8_0_ran_end_to_end(engine):
    verdict = engine.check(weights())
    assert verdict.loads and verdict.level is EvidenceLevel.CPU_END_TO_END
    assert verdict.evidence == (
        "llama.cpp b11312 builds architecture 'llama' (src/llama-arch.cpp:10)",
        "llama + expert_count=8: router and merged expert tensors blk.%d.ffn_gate_inp, blk.%d.ffn_gate_exps, "
        "blk.%d.ffn_up_exps, blk.%d.ffn_down_exps are loaded by src/models/llama.cpp:79",
        "ran end to end on CPU: llama-server b11312 served a tiny llama-moe GGUF in Q8_0 through "
        "/v1/chat/completions (stream and non-stream) and /metrics "
        "(src/modelformats/engines/data/llamacpp_e2e.json)",
    )
    assert verdict.warnings == ()


@pytest.mark.parametrize("quant", ["Q2_K", "Q3_K_S", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_XS"])
def test_every_target_quant_ran_end_to_end(engine, quant):
    assert engine.check(weights(gguf_quant=quant)).level is EvidenceLevel.CPU_END_TO_END


def test_split_and_parts_of_a_tested_quant_ran_end_to_end(engine):
    split = engine.check(weights(model="/m/x-Q4_K_M-00001-of-00002.gguf", gguf_layout="split", gguf_quant="Q4_K_M"))
    assert split.level is EvidenceLevel.CPU_END_TO_END
    assert split.evidence[-1].endswith(
        "; split file layout ran with Q8_0 (src/modelformats/engines/data/llamacpp_e2e.json)"
    )
    joined = engine.check(weights(model="/m/x.Q8_0.gguf", gguf_layout="parts"))
    assert joined.level is EvidenceLevel.CPU_END_TO_END


def test_dense_llama_ran_end_to_end(engine):
    assert engine.check(weights(traits=DENSE, gguf_quant="Q6_K")).level is EvidenceLevel.CPU_END_TO_END


def test_untested_quant_is_source_read(engine):
    verdict = engine.check(weights(gguf_quant="IQ3_M"))
    assert verdict.loads and verdict.level is EvidenceLevel.SOURCE_READ
    assert verdict.evidence[-1] == (
        "not run here for IQ3_M; the llama-moe layout ran end to end on CPU with F32, IQ4_XS, Q2_K, Q3_K_S, "
        "Q4_K_M, Q4_K_S, Q5_K_M, Q5_K_S, Q6_K, Q8_0 (llamacpp_e2e.json)"
    )


def test_untested_tensor_types_are_source_read_and_cpu_only_matmuls_warn(engine):
    verdict = engine.check(weights(gguf_tensor_types=("F32", "Q8_0", "TQ2_0")))
    assert verdict.loads and verdict.level is EvidenceLevel.SOURCE_READ
    assert verdict.evidence[-1].startswith("not run here for tensor types TQ2_0;")
    assert verdict.warnings == (
        "Tensor types TQ2_0 load, but llama.cpp's CUDA backend has no matrix multiplication for them "
        "(ggml-cuda.cu supports_op): those run on the CPU, slowly.",
    )


def test_other_architectures_are_source_read(engine):
    verdict = engine.check(weights(traits=ModelTraits(gguf_architecture="qwen2moe", num_experts=60)))
    assert verdict.loads and verdict.level is EvidenceLevel.SOURCE_READ
    assert verdict.evidence == ("llama.cpp b11312 builds architecture 'qwen2moe' (src/llama-arch.cpp:34)",)


def test_unknown_architecture_loads_with_a_warning(engine):
    verdict = engine.check(weights(traits=ModelTraits()))
    assert verdict.loads and verdict.level is EvidenceLevel.SOURCE_READ
    assert verdict.warnings == (
        "The GGUF architecture was not read (no header): llama.cpp loads 151 architectures; read one header "
        "to be sure.",
    )


def test_multimodal_without_projector_warns(engine):
    verdict = engine.check(weights(needs_projector=True))
    assert verdict.loads
    assert verdict.warnings == (
        "The model is multimodal but no projector (mmproj) file is given: llama-server serves it text-only; "
        "pass the mmproj file to serve images (--mmproj).",
    )


def test_verdict_ignores_a_refusal_case_as_proof():
    # Only the Q4_0_4_4 refusal ran for this layout: nothing proves the layout loads.
    e2e = {
        "llama_cpp_build": 11312,
        "cases": [
            {
                "layout": "llama-moe",
                "quant": "Q4_0_4_4",
                "files": "single",
                "expect": "refused",
                "passed": True,
            }
        ],
    }
    engine = LlamaCppEngine(e2e=e2e)
    assert engine.check(weights()).level is EvidenceLevel.SOURCE_READ


def test_llama_server_applied_the_planned_experts_override():
    """`plan --experts-per-token 3` on the tiny MoE (4 experts, 2 used): llama.cpp's own log says it used 3."""
    (case,) = [c for c in load_e2e_results()["cases"] if c.get("experts_per_token")]
    assert case["passed"] and case["layout"] == "llama-moe" and case["experts_per_token"] == 3
    assert case["override_kv_logged"] == ["llama.expert_used_count", 3]
    assert case["n_expert_used_logged"] == 3
    assert case["completion_tokens"] == case["stream_completion_tokens"] == 8
    assert load_e2e_results()["argv_flags_in_help"]["--override-kv"] is True
