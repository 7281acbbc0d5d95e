"""`modelformats convert`: tiny GGUFs written here with gguf-py (as llama.cpp's converter lays them out)
converted back and compared tensor by tensor. The proof against llama.cpp's own converter and
transformers is `nox -s gguf_convert_proof` (tools/gguf_convert_proof)."""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize

from modelformats.cli import main
from modelformats.convert import ConversionLayouts, ConvertProgress, convert_gguf, default_layouts
from modelformats.convert._config import llama3_rope_factors
from modelformats.convert._safetensors import encode
from modelformats.errors import ConversionError
from modelformats.gguf.hf_names import permute_qk

HIDDEN, HEADS, KV_HEADS, FF, VOCAB, LAYERS, EXPERTS = 64, 4, 2, 96, 32, 2, 4


def _hf_tensors(experts: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    t = {
        "model.embed_tokens.weight": w(VOCAB, HIDDEN),
        "model.norm.weight": w(HIDDEN),
        "lm_head.weight": w(VOCAB, HIDDEN),
    }
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        t |= {
            f"{p}.input_layernorm.weight": w(HIDDEN),
            f"{p}.post_attention_layernorm.weight": w(HIDDEN),
            f"{p}.self_attn.q_proj.weight": w(HEADS * head_dim, HIDDEN),
            f"{p}.self_attn.k_proj.weight": w(KV_HEADS * head_dim, HIDDEN),
            f"{p}.self_attn.v_proj.weight": w(KV_HEADS * head_dim, HIDDEN),
            f"{p}.self_attn.o_proj.weight": w(HIDDEN, HEADS * head_dim),
        }
        if experts:
            t[f"{p}.block_sparse_moe.gate.weight"] = w(experts, HIDDEN)
            for e in range(experts):
                q = f"{p}.block_sparse_moe.experts.{e}"
                t |= {f"{q}.w1.weight": w(FF, HIDDEN), f"{q}.w2.weight": w(HIDDEN, FF), f"{q}.w3.weight": w(FF, HIDDEN)}
        else:
            t |= {
                f"{p}.mlp.gate_proj.weight": w(FF, HIDDEN),
                f"{p}.mlp.up_proj.weight": w(FF, HIDDEN),
                f"{p}.mlp.down_proj.weight": w(HIDDEN, FF),
            }
    return t


def _write_gguf(
    path: Path, hf: dict[str, np.ndarray], *, experts: int, qtype: str = "F32", arch: str = "llama"
) -> None:
    """A GGUF laid out as llama.cpp's LlamaModel writes it (Q/K permuted, experts merged), or for
    arch="qwen3moe" as its Qwen3MoeModel does (nothing permuted, experts merged, the expert size in the header)."""
    qwen3moe = arch == "qwen3moe"
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3MOE if qwen3moe else gguf.MODEL_ARCH.LLAMA, LAYERS)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    # Qwen3-MoE: feed_forward_length is the (unused) dense size, expert_feed_forward_length the experts'.
    writer.add_feed_forward_length(3 * FF if qwen3moe else FF)
    if qwen3moe:
        writer.add_expert_feed_forward_length(FF)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if experts:
        writer.add_expert_count(experts)
        writer.add_expert_used_count(2)
    merged: dict[str, list[np.ndarray]] = {}
    for name, data in hf.items():
        if ".experts." in name:
            prefix, _, rest = name.partition(".experts.")
            _, _, shard = rest.partition(".")
            merged.setdefault(f"{prefix}.experts.{shard}", []).append(data)
            continue
        heads = HEADS if "q_proj" in name else KV_HEADS if "k_proj" in name else None
        stored = permute_qk(data, heads) if heads and not qwen3moe else data
        _add(writer, names.get_name(name, try_suffixes=(".weight", ".bias")), stored, qtype)
    for name, parts in merged.items():
        _add(writer, names.get_name(name, try_suffixes=(".weight",)), np.stack(parts), qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add(writer: gguf.GGUFWriter, name: str, data: np.ndarray, qtype: str) -> None:
    kind = gguf.GGMLQuantizationType[qtype]
    if data.ndim == 1 or kind == gguf.GGMLQuantizationType.F32:
        writer.add_tensor(name, data)
    else:
        writer.add_tensor(name, quantize(data, kind), raw_dtype=kind)


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header.pop("__metadata__")
    out = {}
    for name, info in header.items():
        start, end = (8 + length + o for o in info["data_offsets"])
        kind = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}[info["dtype"]]
        values = np.frombuffer(raw[start:end], dtype=kind)
        if info["dtype"] == "BF16":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        out[name] = values.astype(np.float32).reshape(info["shape"])
    return out


def _base(tmp: Path, *, experts: int) -> Path:
    base = tmp / "base"
    base.mkdir()
    config = {
        "architectures": ["MixtralForCausalLM" if experts else "LlamaForCausalLM"],
        "model_type": "mixtral" if experts else "llama",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        **({"num_local_experts": experts} if experts else {}),
    }
    (base / "config.json").write_text(json.dumps(config))
    (base / "tokenizer.json").write_text("{}")
    return base


def _load_dir(out: Path) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(out.glob("*.safetensors")):
        tensors |= _read_safetensors(shard)
    return tensors


@pytest.mark.parametrize("experts", [0, EXPERTS])
def test_f32_round_trip_is_bit_exact_with_qk_unpermuted_and_experts_split(tmp_path, experts):
    hf = _hf_tensors(experts, np.random.default_rng(0))
    _write_gguf(tmp_path / "m.gguf", hf, experts=experts)
    result = convert_gguf(tmp_path / "m.gguf", tmp_path / "out", dtype="float32", base=_base(tmp_path, experts=experts))
    got = _load_dir(tmp_path / "out")
    assert set(got) == set(hf)
    assert all(np.array_equal(got[name], hf[name]) for name in hf)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["architectures"], config["tie_word_embeddings"], config["torch_dtype"]) == (
        ["MixtralForCausalLM" if experts else "LlamaForCausalLM"],
        False,
        "float32",
    )
    assert (result.tokenizer, result.tensors, (tmp_path / "out" / "tokenizer.json").is_file()) == (
        "base",
        len(hf),
        True,
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


def _qwen3moe_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Qwen3-MoE's names: Q/K norms (one weight per head dimension), router `mlp.gate`, per-expert MLPs."""
    t = {
        name: value
        for name, value in _hf_tensors(EXPERTS, rng).items()
        if ".block_sparse_moe." not in name  # Mixtral's names; Qwen3-MoE's are drawn below
    }
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        t[f"{p}.self_attn.q_norm.weight"] = rng.standard_normal(head_dim).astype(np.float32)
        t[f"{p}.self_attn.k_norm.weight"] = rng.standard_normal(head_dim).astype(np.float32)
        t[f"{p}.mlp.gate.weight"] = rng.standard_normal((EXPERTS, HIDDEN)).astype(np.float32)
        for e in range(EXPERTS):
            for module, shape in (("gate_proj", (FF, HIDDEN)), ("up_proj", (FF, HIDDEN)), ("down_proj", (HIDDEN, FF))):
                t[f"{p}.mlp.experts.{e}.{module}.weight"] = rng.standard_normal(shape).astype(np.float32)
    return t


def _qwen3moe_base(tmp: Path, **changes: int) -> Path:
    base = tmp / "base"
    base.mkdir(exist_ok=True)
    config = {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "num_experts": EXPERTS,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": FF,
        **changes,
    }
    (base / "config.json").write_text(json.dumps(config))
    (base / "tokenizer.json").write_text("{}")
    return base


def test_qwen3moe_round_trip_is_bit_exact_with_qk_rows_as_stored_and_experts_split(tmp_path):
    hf = _qwen3moe_tensors(np.random.default_rng(8))
    _write_gguf(tmp_path / "m.gguf", hf, experts=EXPERTS, arch="qwen3moe")
    result = convert_gguf(tmp_path / "m.gguf", tmp_path / "out", dtype="float32", base=_qwen3moe_base(tmp_path))
    got = _load_dir(tmp_path / "out")
    assert set(got) == set(hf)
    assert [name for name in hf if not np.array_equal(got[name], hf[name])] == []
    assert (result.gguf_architecture, result.hf_architecture) == ("qwen3moe", "Qwen3MoeForCausalLM")


def test_qwen3moe_config_from_the_header_and_checked_against_a_base(tmp_path):
    from modelformats.convert._config import HeaderFacts, config_from_header

    hf = _qwen3moe_tensors(np.random.default_rng(9))
    _write_gguf(tmp_path / "m.gguf", hf, experts=EXPERTS, arch="qwen3moe")
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    facts = HeaderFacts(
        source="m.gguf",
        architecture="qwen3moe",
        values={k: f.contents() for k, f in reader.fields.items() if len(f.types) == 1},
        vocab_size=VOCAB,
        tied_embeddings=False,
        has_rope_freqs=False,
    )
    layout = default_layouts().find("qwen3moe", True)
    assert layout is not None and not layout.qk_permuted
    config = config_from_header(facts, layout, dtype="bfloat16")
    keys = ("architectures", "model_type", "num_experts", "num_experts_per_tok", "moe_intermediate_size")
    assert {k: config[k] for k in (*keys, "intermediate_size", "norm_topk_prob", "mlp_only_layers")} == {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "num_experts": EXPERTS,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": FF,
        "intermediate_size": 3 * FF,
        "norm_topk_prob": True,  # llama.cpp's qwen3moe graph always renormalizes the top-k weights
        "mlp_only_layers": (),
    }
    with pytest.raises(ConversionError, match=r"config\.json has num_experts = 8 but the GGUF has 4"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out", base=_qwen3moe_base(tmp_path, num_experts=8))
    with pytest.raises(ConversionError, match=r"config\.json has moe_intermediate_size = 32 but the GGUF has 96"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out", base=_qwen3moe_base(tmp_path, moe_intermediate_size=32))


def test_a_permuted_qk_bias_is_unpermuted_as_a_vector(tmp_path):
    # llama.cpp's LlamaModel.permute reorders a Q/K bias with its weight's rows; a layout that maps biases
    # (here llama with attention biases, a registry of the caller's) gets them back in HF order.
    hf = _hf_tensors(0, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    for i in range(LAYERS):
        for module, rows in (
            ("q_proj", HIDDEN),
            ("k_proj", KV_HEADS * HIDDEN // HEADS),
            ("v_proj", KV_HEADS * HIDDEN // HEADS),
        ):
            hf[f"model.layers.{i}.self_attn.{module}.bias"] = rng.standard_normal(rows).astype(np.float32)
    _write_gguf(tmp_path / "m.gguf", hf, experts=0)
    llama = default_layouts().find("llama", False)
    assert llama is not None
    layouts = ConversionLayouts.of(replace(llama, parameters=("weight", "bias")))
    convert_gguf(
        tmp_path / "m.gguf", tmp_path / "out", dtype="float32", base=_base(tmp_path, experts=0), layouts=layouts
    )
    got = _load_dir(tmp_path / "out")
    assert set(got) == set(hf)
    assert [name for name in hf if not np.array_equal(got[name], hf[name])] == []


def test_q8_0_equals_gguf_quantize_dequantize_and_bf16_rounds_to_nearest_even(tmp_path):
    hf = _hf_tensors(0, np.random.default_rng(1))
    _write_gguf(tmp_path / "m.gguf", hf, experts=0, qtype="Q8_0")
    convert_gguf(tmp_path / "m.gguf", tmp_path / "out", base=_base(tmp_path, experts=0))
    got = _load_dir(tmp_path / "out")
    for name, original in hf.items():
        if original.ndim == 1:
            expected = original
        else:
            expected = dequantize(quantize(original, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0)
        bf16 = (encode(expected, "bfloat16").astype(np.uint32) << 16).view(np.float32)
        assert np.array_equal(got[name], bf16), name
        assert np.allclose(got[name], original, atol=0.1), name


def test_bf16_encoding():
    values = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, -2.5, np.inf, np.nan], dtype=np.float32)
    bits = encode(values, "bfloat16")
    assert bits.tolist()[:5] == [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F80]
    assert bits[5] == 0x7FC0


def test_header_config_and_generation_config_without_base(tmp_path, monkeypatch):
    hf = _hf_tensors(EXPERTS, np.random.default_rng(2))
    _write_gguf(tmp_path / "m.gguf", hf, experts=EXPERTS)
    monkeypatch.setitem(sys.modules, "transformers", None)  # the tokenizer rebuild needs transformers
    with pytest.raises(ConversionError, match="needs transformers") as caught:
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    assert "--base" in caught.value.fix
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "m.gguf"]
    from modelformats.convert._config import HeaderFacts, config_from_header
    from modelformats.convert._layouts import default_layouts

    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    values = {k: f.contents() for k, f in reader.fields.items() if len(f.types) == 1}
    facts = HeaderFacts(
        source="m.gguf",
        architecture="llama",
        values=values,
        vocab_size=VOCAB,
        tied_embeddings=False,
        has_rope_freqs=False,
    )
    layout = default_layouts().find("llama", True)
    assert layout is not None
    config = config_from_header(facts, layout, dtype="bfloat16")
    assert {
        k: config[k] for k in ("model_type", "num_local_experts", "num_experts_per_tok", "num_key_value_heads")
    } == {
        "model_type": "mixtral",
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": 2,
        "num_key_value_heads": KV_HEADS,
    }
    assert (config["head_dim"], config["intermediate_size"], config["bos_token_id"]) == (HIDDEN // HEADS, FF, 1)


def test_sharded_output_has_an_index(tmp_path):
    hf = _hf_tensors(0, np.random.default_rng(3))
    _write_gguf(tmp_path / "m.gguf", hf, experts=0)
    result = convert_gguf(
        tmp_path / "m.gguf", tmp_path / "out", dtype="float32", base=_base(tmp_path, experts=0), max_shard_bytes=40_000
    )
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert result.shards > 1 and set(index["weight_map"]) == set(hf)
    assert sorted(set(index["weight_map"].values())) == sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    assert set(_load_dir(tmp_path / "out")) == set(hf)


def test_an_interrupted_conversion_leaves_nothing(tmp_path):
    hf = _hf_tensors(0, np.random.default_rng(4))
    _write_gguf(tmp_path / "m.gguf", hf, experts=0)
    base = _base(tmp_path, experts=0)

    def stop(step: ConvertProgress) -> None:
        if step.done_tensors == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out", base=base, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "m.gguf"]


def test_refusals_name_the_problem_and_the_fix(tmp_path):
    hf = _hf_tensors(0, np.random.default_rng(5))
    _write_gguf(tmp_path / "m.gguf", hf, experts=0, arch="gpt2")
    with pytest.raises(ConversionError, match="GGUF architecture 'gpt2' has no conversion layout; supported: llama"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ConversionError, match="exists and is not empty"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "full")
    with pytest.raises(ConversionError, match="dtype 'int8'"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out", dtype="int8")
    with pytest.raises(ConversionError, match=r"-00002-of-00002\.gguf is missing"):
        (tmp_path / "s-00001-of-00002.gguf").write_bytes((tmp_path / "m.gguf").read_bytes())
        convert_gguf(tmp_path / "s-00001-of-00002.gguf", tmp_path / "out")


def test_base_config_must_match_the_gguf(tmp_path):
    hf = _hf_tensors(EXPERTS, np.random.default_rng(6))
    _write_gguf(tmp_path / "m.gguf", hf, experts=EXPERTS)
    with pytest.raises(ConversionError, match=r"names architectures \['LlamaForCausalLM'\]"):
        convert_gguf(tmp_path / "m.gguf", tmp_path / "out", base=_base(tmp_path, experts=0))


def test_llama3_rope_factors_match_llama_cpp():
    config = {
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        }
    }
    factors = llama3_rope_factors(config, 16)
    assert factors is not None and len(factors) == 8
    assert factors[0] == 1.0 and factors[-1] == 32.0


def test_cli_convert(tmp_path, capsys):
    hf = _hf_tensors(0, np.random.default_rng(7))
    _write_gguf(tmp_path / "m.gguf", hf, experts=0)
    base = _base(tmp_path, experts=0)
    code = main(["convert", str(tmp_path / "m.gguf"), "--out", str(tmp_path / "out"), "--base", str(base), "--json"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["hf_architecture"] == "LlamaForCausalLM"
    assert "converting: 100%" in captured.err
    code = main(["convert", str(tmp_path / "m.gguf"), "--out", str(tmp_path / "out")])
    assert code == 2 and "exists and is not empty" in capsys.readouterr().err
