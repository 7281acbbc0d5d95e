"""CPU proof of `modelformats convert` (`nox -s gguf_convert_proof`), run in the vllm-0.33.0 venv.

1. Tiny random HF checkpoints (tools/gguf_proof/checkpoints.py: dense Llama; Mixtral, i.e. llama with
   experts, tied embeddings and llama3 rope; qwen.py: Qwen2 with random q/k/v biases, and Qwen3-MoE with
   Q/K norms, routed experts and no shared expert, every norm weight drawn at random) -> llama.cpp's own
   convert_hf_to_gguf.py -> F32, F16, BF16, Q8_0. For one K-quant, 256-wide variants of the Llama, Mixtral,
   Qwen2 and Qwen3-MoE checkpoints (K-quant blocks hold 256 values; narrower rows fall back to other types) -> F32
   GGUF -> llama.cpp's own quantizer (`llama_model_quantize` of llama-cpp-python) -> Q4_K_M.
2. `convert_gguf` -> a float32 HF checkpoint (with the original as --base, which the llama3 rope needs;
   dense F32 also without --base: config and tokenizer from the GGUF's metadata).
3. Per tensor: equal to the `gguf` package's quantize -> dequantize of the original in the GGUF
   tensor's own type (F32: the original itself, bit-exact); for Q4_K_M (gguf-py has no K-quant quantizer),
   equal to the `gguf` package's dequantize of the quantized GGUF's own tensors, put back in HF row order by
   this file's inverse of llama.cpp's Q/K permute (itself checked: applied to the F32 GGUF it gives the
   original exactly); transformers' logits of the converted checkpoint vs the model holding those expected
   weights, on the proof prompts; the rebuilt tokenizer encodes them identically.
4. Negative controls: with the Q/K un-permute off (llama layouts) or forced on (qwen2 and qwen3moe, which
   llama.cpp does not permute), exactly every layer's q_proj and k_proj tensors must mismatch.
Writes the verdicts as JSON (no paths, no timings); exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.gguf_convert_proof.qwen import QWEN2, QWEN3MOE, QWEN_ARCHITECTURES, build_qwen, qwen_vocab  # noqa: E402
from tools.gguf_proof.checkpoints import LAYOUTS, PROMPTS, Layout, build  # noqa: E402  (shared builders)

SCHEMA = "modelformats-gguf-convert-proof/2"
OUTTYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q8_0": "q8_0"}
# The K-quant llama.cpp's quantizer writes here (Q4_K for most matrices, Q6_K for some: recorded per case).
K_QUANT = "Q4_K_M"
# K-quant super-blocks hold 256 values (QK_K): every matrix row of these variants is a multiple of 256.
WIDE = {"hidden_size": 256, "head_dim": 64}
WIDE_INTERMEDIATE = {"llama": 512, "llama+experts": 256, "qwen2": 512, "qwen3moe+experts": 512}
# Which negative control a layout gets: its declared Q/K un-permute flipped.
CONTROL = {True: "Q/K un-permute off", False: "Q/K un-permute forced on"}
# transformers' logits of the converted checkpoint vs the original model holding the expected weights
# (the original, or its quantize->dequantize in each GGUF tensor's type): the same weights, so equal.
LOGIT_TOLERANCE = 1e-5
# Not proven here (and why), for the record.
UNPROVEN = {
    "K-quants other than Q4_K_M's Q4_K and Q6_K tensors (Q2_K, Q3_K, Q5_K), the IQ types": "dequantized by "
    "gguf-py's reference dequantizer, not run here",
    "qwen2moe, gemma3": "refused: no conversion layout",
    "qwen3moe with a shared expert or dense layers (mlp_only_layers)": "llama.cpp's qwen3moe has neither",
    "vLLM load of the converted directory": "not run by this proof (nox -s vllm_cpu_generation)",
}


def slug(layout: str) -> str:
    return layout.replace("+", "_")


def build_layout(layout: Layout, directory: Path, vocab: Path) -> Path:
    """checkpoints.build, or for Qwen2 and Qwen3-MoE qwen.py's builder (random biases and norms; `vocab`: the
    BPE vocabulary Qwen3-MoE's tokenizer is rebuilt from)."""
    if layout.architecture in QWEN_ARCHITECTURES:
        return build_qwen(layout, directory, vocab=vocab)
    return build(layout, directory)


def wide(layout: Layout) -> Layout:
    """`layout` with every matrix row a multiple of 256 values, so llama.cpp's K-quants apply to all."""
    experts = {"moe_intermediate_size": 256} if "moe_intermediate_size" in layout.config else {}
    return Layout(
        name=layout.name,
        architecture=layout.architecture,
        config={**layout.config, **WIDE, "intermediate_size": WIDE_INTERMEDIATE[layout.name], **experts},
    )


def quantize_with_llama_cpp(source: Path, out: Path, ftype: str) -> None:
    """llama.cpp's own quantizer (llama-cpp-python's binding of `llama_model_quantize`), no imatrix."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = 2
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize failed for {source} ({ftype})")


def convert_with_llama_cpp(converter: Path, hf_dir: Path, outtype: str, out: Path) -> None:
    log = out.with_suffix(".log")
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, str(converter), str(hf_dir), "--outtype", outtype, "--outfile", str(out)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed for {hf_dir} ({outtype}); see {log}")


def original_tensors(hf_dir: Path) -> dict[str, Any]:
    from safetensors.numpy import load_file

    tensors: dict[str, Any] = {}
    for shard in sorted(hf_dir.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def gguf_types(gguf_path: Path, layout_key: tuple[str, bool], layers: int) -> dict[str, int]:
    """HF tensor name (experts with {expert}) -> the GGML type llama.cpp stored it in."""
    import gguf

    from modelformats.convert import default_layouts

    layout = default_layouts().find(*layout_key)
    assert layout is not None
    arch = gguf.MODEL_ARCH[layout.gguf_architecture.upper()]
    names = layout.name_map(layers, gguf.get_tensor_name_map(arch, layers).get_name)
    reader = gguf.GGUFReader(str(gguf_path))
    return {names[t.name]: int(t.tensor_type) for t in reader.tensors if t.name in names}


def type_counts(gguf_path: Path) -> dict[str, int]:
    """GGML type name -> how many of the GGUF's tensors llama.cpp stored in it."""
    import collections

    import gguf

    return dict(
        sorted(collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(str(gguf_path)).tensors).items())
    )


def llama_cpp_unpermute(weights: Any, n_head: int) -> Any:
    """The inverse of llama.cpp's `LlamaModel.permute` (convert_hf_to_gguf.py), written here, not imported:
    permute reshapes rows to (n_head, 2, rows/n_head/2) and swaps the last two; this swaps them back."""
    rows = weights.shape[0]
    return weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def dequantized_gguf(gguf_path: Path, layout: Layout, gguf_layout: Any) -> dict[str, Any]:
    """HF name -> the GGUF's tensor as the `gguf` package dequantizes it, experts split, Q/K rows put back in
    HF order with `llama_cpp_unpermute`: what the conversion of a K-quant GGUF must write."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    layers = int(layout.config["num_hidden_layers"])
    arch = gguf.MODEL_ARCH[gguf_layout.gguf_architecture.upper()]
    names = gguf_layout.name_map(layers, gguf.get_tensor_name_map(arch, layers).get_name)
    heads = {"q_proj": int(layout.config["num_attention_heads"]), "k_proj": int(layout.config["num_key_value_heads"])}
    found: dict[str, Any] = {}
    for tensor in gguf.GGUFReader(str(gguf_path)).tensors:
        if tensor.name not in names:  # rope_freqs: derived from the config, not a checkpoint tensor
            continue
        values = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        name = names[tensor.name]
        module = name.rsplit(".", 2)[-2]
        if gguf_layout.qk_permuted and module in heads:
            values = llama_cpp_unpermute(values, heads[module])
        if "{expert}" in name:
            found.update(
                {name.replace("{expert}", str(e)): np.ascontiguousarray(values[e]) for e in range(len(values))}
            )
        else:
            found[name] = values
    return found


def expected_of(name: str, original: Any, types: dict[str, int]) -> Any:
    import re

    import gguf
    import numpy as np
    from gguf.quants import dequantize, quantize

    key = re.sub(r"\.experts\.\d+\.", ".experts.{expert}.", name)
    kind = gguf.GGMLQuantizationType(types[key])
    values = np.asarray(original, dtype=np.float32)
    if kind == gguf.GGMLQuantizationType.F32:
        return values
    return dequantize(quantize(values, kind), kind).reshape(values.shape)


def compare_tensors(original: dict[str, Any], converted: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    mismatched = sorted(
        name
        for name in original
        if name in converted and not (name in expected and np.array_equal(converted[name], expected[name]))
    )
    return {
        "compared": len(set(original) & set(converted)),
        "missing": sorted(set(original) - set(converted)),
        "unexpected": sorted(set(converted) - set(original)),
        "mismatched": mismatched,
    }


def logits_diffs(original_dir: Path, converted_dir: Path, expected_weights: dict[str, Any]) -> dict[str, float]:
    """Max |logit difference| of the converted model vs the expected-weights model, and vs the original."""
    import torch
    import transformers
    from safetensors.numpy import save_file

    tokenizer = transformers.AutoTokenizer.from_pretrained(original_dir)
    load = transformers.AutoModelForCausalLM.from_pretrained
    original = load(original_dir, dtype=torch.float32).eval()
    # The expected weights as a checkpoint of their own, loaded the way transformers loads any checkpoint
    # (a plain load_state_dict would skip Mixtral's per-expert names, which transformers 5 fuses at load).
    reference = converted_dir.with_name(converted_dir.name + "-expected")
    shutil.rmtree(reference, ignore_errors=True)
    shutil.copytree(original_dir, reference, ignore=shutil.ignore_patterns("*.safetensors*"))
    save_file(expected_weights, reference / "model.safetensors")
    expected = load(reference, dtype=torch.float32).eval()
    converted = load(converted_dir, dtype=torch.float32).eval()
    worst = {"vs expected weights": 0.0, "vs original (quantization error, not a check)": 0.0}
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            got = converted(ids).logits
            for key, model in zip(worst, (expected, original), strict=True):
                worst[key] = max(worst[key], float((got - model(ids).logits).abs().max()))
    return {key: round(value, 3 if "original" in key else 6) for key, value in worst.items()}


def tokenizer_matches(original_dir: Path, converted_dir: Path) -> bool:
    import transformers

    a = transformers.AutoTokenizer.from_pretrained(original_dir)
    b = transformers.AutoTokenizer.from_pretrained(converted_dir)
    return all(a.encode(p) == b.encode(p) for p in PROMPTS)


def run_case(
    layout: Any,
    quant: str,
    hf_dir: Path,
    gguf_path: Path,
    work: Path,
    *,
    with_base: bool,
    control: bool = False,
    quantized_from: Path | None = None,
) -> dict[str, Any]:
    """One conversion checked; `control`: the layout's Q/K un-permute flipped (the negative control);
    `quantized_from`: the F32 GGUF llama.cpp's quantizer read (expected values from the quantized GGUF)."""
    from modelformats.convert import ConversionLayouts, convert_gguf, default_layouts

    registry = default_layouts()
    gguf_layout = registry.find(str(layout_key(layout)[0]), layout_key(layout)[1])
    assert gguf_layout is not None
    if control:
        registry = ConversionLayouts.of(
            *(dataclasses.replace(item, qk_permuted=not item.qk_permuted) for item in registry.by_key.values())
        )
    out = work / f"{slug(layout.name)}-{quant}-{'base' if with_base else 'gguf'}-{'control' if control else 'ok'}"
    shutil.rmtree(out, ignore_errors=True)
    result = convert_gguf(gguf_path, out, dtype="float32", base=hf_dir if with_base else None, layouts=registry)
    layers = int(layout.config["num_hidden_layers"])
    originals = original_tensors(hf_dir)
    case: dict[str, Any] = {
        "layout": layout.name,
        "quant": quant,
        "base": with_base,
        "negative_control": CONTROL[gguf_layout.qk_permuted] if control else None,
        "hf_architecture": result.hf_architecture,
        "tensor_types": type_counts(gguf_path),
    }
    if quantized_from is None:
        types = gguf_types(gguf_path, layout_key(layout), layers)
        expected = {name: expected_of(name, value, types) for name, value in originals.items()}
        case["expected"] = "gguf package's quantize -> dequantize of the original, in each tensor's GGUF type"
    else:
        expected = dequantized_gguf(gguf_path, layout, gguf_layout)
        case["expected"] = "gguf package's dequantize of the quantized GGUF's tensors"
        case["quantized_by"] = f"llama.cpp's llama_model_quantize (llama-cpp-python), {quant}, no imatrix, from F32"
        # The expected values' Q/K order is this file's inverse permute: applied to the quantizer's F32
        # input it must give the original exactly.
        unpermuted = dequantized_gguf(quantized_from, layout, gguf_layout)
        case["inverse_permute_checked_on_f32"] = set(unpermuted) == set(originals) and all(
            (unpermuted[name] == value).all() for name, value in originals.items()
        )
    case["tensors"] = compare_tensors(originals, original_tensors(out), expected)
    if not control:
        case["max_logit_diff"] = logits_diffs(hf_dir, out, expected)
        if not with_base:
            case["tokenizer_from_gguf_matches"] = tokenizer_matches(hf_dir, out)
    return case


def layout_key(layout: Layout) -> tuple[str, bool]:
    """(GGUF architecture, has experts) of a proof layout ("llama", "llama+experts", "qwen2", "qwen3moe+experts")."""
    architecture, _, experts = layout.name.partition("+")
    return (architecture, experts == "experts")


def refusal(layout: Any, quant: str, gguf_path: Path, work: Path) -> dict[str, Any]:
    from modelformats.convert import convert_gguf
    from modelformats.errors import ConversionError

    out = work / f"{slug(layout.name)}-{quant}-refused"
    try:
        convert_gguf(gguf_path, out, dtype="float32")
    except ConversionError as exc:
        return {"layout": layout.name, "quant": quant, "base": False, "refused": exc.problem, "left": out.exists()}
    return {"layout": layout.name, "quant": quant, "base": False, "refused": None, "left": out.exists()}


def verdict(case: dict[str, Any]) -> bool:
    if "refused" in case:
        return bool(case["refused"]) and "rope scaling" in case["refused"] and not case["left"]
    tensors = case["tensors"]
    clean = not tensors["missing"] and not tensors["unexpected"] and tensors["compared"] > 0
    if case["negative_control"]:
        # Predicted: exactly every layer's q_proj and k_proj tensors (their biases too, where the layout has
        # them: llama.cpp permutes a Q/K bias with its weight) mismatch.
        parameters = ("weight", "bias") if case["layout"] == "qwen2" else ("weight",)
        expected = sorted(
            f"model.layers.{i}.self_attn.{p}.{s}" for i in range(2) for p in ("k_proj", "q_proj") for s in parameters
        )
        return clean and tensors["mismatched"] == expected  # the negative control fails as predicted
    ok = clean and not tensors["mismatched"] and case["max_logit_diff"]["vs expected weights"] <= LOGIT_TOLERANCE
    return ok and case.get("tokenizer_from_gguf_matches", True) and case.get("inverse_permute_checked_on_f32", True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--converter", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    cases: list[dict[str, Any]] = []
    (args.work / "gguf").mkdir()
    vocab = qwen_vocab(args.converter, args.work)
    for layout in (*LAYOUTS, QWEN2, QWEN3MOE):
        hf_dir = build_layout(layout, args.work / "hf" / slug(layout.name), vocab)
        for quant, outtype in OUTTYPES.items():
            gguf_path = args.work / "gguf" / f"{slug(layout.name)}-{quant}.gguf"
            convert_with_llama_cpp(args.converter, hf_dir, outtype, gguf_path)
            cases.append(run_case(layout, quant, hf_dir, gguf_path, args.work, with_base=True))
            if quant == "F32":
                cases.append(run_case(layout, quant, hf_dir, gguf_path, args.work, with_base=True, control=True))
                if "rope_parameters" not in layout.config:
                    cases.append(run_case(layout, quant, hf_dir, gguf_path, args.work, with_base=False))
                else:  # llama3 rope: the header lacks its parameters, so without --base it is refused
                    cases.append(refusal(layout, quant, gguf_path, args.work))
            print(f"{layout.name} {quant}: done", flush=True)
    for layout in (wide(item) for item in (*LAYOUTS, QWEN2, QWEN3MOE)):
        hf_dir = build_layout(layout, args.work / "hf" / f"{slug(layout.name)}-wide", vocab)
        source = args.work / "gguf" / f"{slug(layout.name)}-wide-F32.gguf"
        convert_with_llama_cpp(args.converter, hf_dir, "f32", source)
        gguf_path = args.work / "gguf" / f"{slug(layout.name)}-wide-{K_QUANT}.gguf"
        quantize_with_llama_cpp(source, gguf_path, K_QUANT)
        for control in (False, True):
            kwargs: dict[str, Any] = {"with_base": True, "control": control, "quantized_from": source}
            cases.append(run_case(layout, K_QUANT, hf_dir, gguf_path, args.work, **kwargs))
        print(f"{layout.name} (256 wide) {K_QUANT}: done", flush=True)
    for case in cases:
        case["passed"] = verdict(case)
    data = {"schema": SCHEMA, "cases": cases, "unproven": UNPROVEN, "passed": all(c["passed"] for c in cases)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    for case in cases:
        label = f"{case['layout']} {case['quant']} base={case['base']} control={case.get('negative_control')}"
        detail = case.get("refused") or [case["tensors"]["mismatched"], case.get("max_logit_diff")]
        print(f"{'PASS' if case['passed'] else 'FAIL'} {label}: {json.dumps(detail)[:300]}")
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
