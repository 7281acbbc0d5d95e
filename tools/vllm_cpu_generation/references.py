"""Reference greedy generations: llama.cpp (llama-cpp-python) on the GGUF, transformers on the HF checkpoint.

Usage: python -m tools.vllm_cpu_generation.references CASES_JSON OUT_JSON. For each case and prompt:
16 greedy tokens from the same token-id prompt, with the top-1 and top-2 log-probabilities at each
position (float64 log-softmax of the engine's logits). The transformers model holds exactly what the
GGUF stores: every parameter rounded to the tensor type the converter wrote (F32 or F16), computed
in float32.
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
import torch
import transformers

GGML_TYPE_F32 = 0


def _no_repack_params() -> Any:
    # As tools/gguf_proof/llamacpp_check.py: llama.cpp's AMX/CPU repack buffers crash on this CPU.
    params = _default_model_params()
    params.use_extra_bufts = False
    return params


_default_model_params = llama_cpp_lib.llama_model_default_params
llama_cpp_lib.llama_model_default_params = _no_repack_params


def top2(logits: np.ndarray) -> tuple[int, float, float]:
    """Greedy token, its log-probability and the runner-up's (float64 log-softmax)."""
    values = logits.astype(np.float64)
    logprobs = values - (values.max() + np.log(np.exp(values - values.max()).sum()))
    first, second = np.argsort(-logprobs, kind="stable")[:2]
    return int(first), float(logprobs[first]), float(logprobs[second])


def file_type(gguf_path: Path) -> gguf.GGMLQuantizationType:
    """The type llama.cpp's converter gave the matrices (`--outtype`): 1-D tensors and the MoE router
    `ffn_gate_inp` always stay F32 (convert_hf_to_gguf.py, prepare_tensors)."""
    reader = gguf.GGUFReader(gguf_path)
    matrices = {t.tensor_type for t in reader.tensors if len(t.shape) >= 2 and ".ffn_gate_inp." not in t.name}
    kept = {t.tensor_type for t in reader.tensors if len(t.shape) < 2 or ".ffn_gate_inp." in t.name}
    if len(matrices) != 1 or kept - {gguf.GGMLQuantizationType.F32}:
        raise ValueError(f"{gguf_path}: unexpected tensor types {matrices} / {kept}")
    (found,) = matrices
    if found not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        raise ValueError(f"{gguf_path} stores {found.name}; the generation proof covers F32 and F16")
    return found


def reference_model(hf_dir: Path, gguf_path: Path) -> Any:
    """The HF model with every matrix rounded as the GGUF stores it (F16 or F32), computed in float32."""
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    if file_type(gguf_path) == gguf.GGMLQuantizationType.F16:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                # The router is `mlp.gate` in transformers 5's Mixtral (not `mlp.gate_proj`).
                if parameter.ndim >= 2 and ".mlp.gate." not in name:
                    parameter.copy_(parameter.half().float())
    return model.eval()


def transformers_generate(model: Any, prompt: list[int], steps: int) -> dict[str, Any]:
    tokens, top1, second = list(prompt), [], []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([tokens])).logits[0, -1].numpy()
            token, lp1, lp2 = top2(logits)
            tokens.append(token)
            top1.append(lp1)
            second.append(lp2)
    return {"tokens": tokens[len(prompt) :], "top1": top1, "top2": second}


def llamacpp_generate(llm: Any, prompt: list[int], steps: int) -> dict[str, Any]:
    llm.reset()
    llm.eval(prompt)
    out, top1, second = [], [], []
    for _ in range(steps):
        token, lp1, lp2 = top2(np.asarray(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        top1.append(lp1)
        second.append(lp2)
        llm.eval([token])
    return {"tokens": out, "top1": top1, "top2": second}


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    hf_dir, gguf_path = Path(case["hf_dir"]), Path(case["gguf"])
    model = reference_model(hf_dir, gguf_path)
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
    prompts = case["prompts"]
    tokenized = [llm.tokenize(text.encode(), add_bos=True) for text in case["prompt_texts"]]
    result = {
        "case": case["name"],
        "llama.cpp tokenizer equals the checkpoint's": tokenized == prompts,
        "transformers": [transformers_generate(model, p, case["steps"]) for p in prompts],
        "llama.cpp": [llamacpp_generate(llm, p, case["steps"]) for p in prompts],
    }
    llm.close()
    return result


def main() -> None:
    torch.set_num_threads(2)
    cases = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps([run_case(case) for case in cases], indent=1) + "\n")


if __name__ == "__main__":
    main()
