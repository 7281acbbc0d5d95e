"""(a) The GGUF is faithful: llama.cpp's logits on the GGUF match transformers' on the HF checkpoint.

Usage: llamacpp_check.py CASES_JSON OUT_JSON, CASES_JSON a list of {layout, quant, gguf, hf_dir}.
For Q8_0 the reference is the HF model with every Q8_0-stored tensor replaced by its dequantized
GGUF values (computed with gguf-py from the HF tensor, not read from the file), so what remains is
llama.cpp's own arithmetic: its Q8_0 matmul also quantizes activations to 8 bits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib
import numpy as np
import sentencepiece as spm
import torch
import transformers
from checkpoints import PROMPTS
from gguf.quants import dequantize, quantize

# Max |logit difference| allowed, as a fraction of max |reference logit| (measured: F32 ~1e-6,
# Q8_0 ~1e-2 from llama.cpp's 8-bit activations; see docs/vllm-plugin.md).
TOLERANCE = {"F32": 1e-4, "Q8_0": 5e-2}
GGML_TYPE_F32 = 0


def _no_repack_params() -> Any:
    # llama.cpp's AMX/CPU repack buffers (use_extra_bufts, llama.cpp's --no-repack) crash with SIGSEGV
    # on Q8_0 on this machine's AMX CPU; plain CPU buffers run the same Q8_0 kernels' math.
    params = _default_model_params()
    params.use_extra_bufts = False
    return params


_default_model_params = llama_cpp_lib.llama_model_default_params
llama_cpp_lib.llama_model_default_params = _no_repack_params


def reference_model(hf_dir: Path, gguf_path: Path) -> Any:
    """The HF model, its tensors replaced by what the GGUF stores (dequantized), as gguf-py computes it."""
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    stored_types = {t.name: t.tensor_type for t in gguf.GGUFReader(gguf_path).tensors}
    quant_types = {t for t in stored_types.values() if t not in (gguf.GGMLQuantizationType.F32,)}
    if not quant_types:
        return model
    (qtype,) = quant_types
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim < 2:
                continue  # norms stay F32 in a Q8_0 file
            if "mlp.gate." in name:
                continue  # the router (ffn_gate_inp) stays F32 in llama.cpp's Q8_0 output
            values = parameter.detach().numpy()
            parameter.copy_(torch.from_numpy(dequantize(quantize(values, qtype), qtype)))
    return model


def check(case: dict[str, Any]) -> dict[str, Any]:
    hf_dir, gguf_path = Path(case["hf_dir"]), Path(case["gguf"])
    model = reference_model(hf_dir, gguf_path)
    # The checkpoint's own transformers tokenizer (checkpoints.save_tokenizer), checked against the
    # SentencePiece model it was converted from and against llama.cpp's tokenizer of the GGUF.
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    pieces = spm.SentencePieceProcessor(model_file=str(hf_dir / "tokenizer.model"))
    llm = llama_cpp.Llama(
        str(gguf_path),
        logits_all=True,
        n_ctx=128,
        n_threads=2,
        seed=0,
        verbose=False,
        # F32 KV cache: llama.cpp's default F16 cache alone adds ~1e-3 differences.
        type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32,
    )
    worst, scale, agree, total, token_match = 0.0, 0.0, 0, 0, True
    for prompt in PROMPTS:
        tokens = tokenizer.encode(prompt)
        if len(tokens) < 2 or tokens != [pieces.bos_id(), *pieces.encode(prompt)]:
            raise RuntimeError(f"{hf_dir}: the transformers tokenizer gives {tokens} for {prompt!r}")
        token_match &= llm.tokenize(prompt.encode(), add_bos=True) == tokens
        with torch.no_grad():
            expected = model(torch.tensor([tokens])).logits[0].numpy()
        llm.reset()
        llm.eval(tokens)
        got = np.array(llm.scores[: len(tokens)])
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
        agree += int((got.argmax(-1) == expected.argmax(-1)).sum())
        total += len(tokens)
    relative = worst / scale
    return {
        "layout": case["layout"],
        "quant": case["quant"],
        "passed": relative <= TOLERANCE[case["quant"]],
        "max_abs_diff": worst,
        "max_abs_logit": scale,
        "relative": relative,
        "tolerance": TOLERANCE[case["quant"]],
        "argmax_agreement": f"{agree}/{total}",
        "llama_cpp_tokenizer_matches_sentencepiece": token_match,
    }


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    results = [check(case) for case in cases]
    Path(sys.argv[2]).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
