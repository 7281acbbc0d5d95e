"""Serve one GGUF with vLLM (+ vllm-gguf-plugin + modelformats' plugin) and with llama.cpp; compare.

For anyone with a GPU: the CPU proof (`nox -s gguf_plugin_proof`) shows that every vLLM parameter
receives the right tensor; this script checks what the proof cannot - vLLM's CUDA GGUF kernels and
the generated text - on a real file. Both engines get the same prompt token ids (from the HF tokenizer)
and decode greedily; per prompt it reports where the tokens first differ and how close the two
engines' top choices were there. A wrong rotary layout or unloaded experts diverge at once with
confident garbage; Q8_0 numerics diverge late, if at all, and only at near ties.

    python examples/gpu_validation/validate_gguf_on_vllm.py \\
        --gguf /models/Llama-3.2-8X3B-...-Q8_0.gguf --hf-config <base repo or dir> [--json out.json]

Each engine runs in its own subprocess (so the GPU memory of one is freed before the other starts).
Only the standard library is imported at module level; see README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

PROMPTS = (
    "Hello! Testing GGUF format support.",
    "What is a Mixture of Experts model?",
    "Thank you for the demonstration!",
)
# Where greedy decoding may legitimately differ between two correct engines: both top-2 candidates
# within this many nats of each other at the first differing step (Q8_0 dot products differ slightly).
NEAR_TIE_NATS = 0.5
# Tokens that must agree before any divergence counts as a near tie rather than a broken model.
MIN_AGREEING_TOKENS = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """One engine's greedy continuation of one prompt."""

    tokens: list[int]
    # Per generated position: {token id: logprob} for the engine's top candidates.
    top_logprobs: list[dict[int, float]]
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PromptVerdict:
    prompt: str
    agreeing_tokens: int
    compared_tokens: int
    ok: bool
    reason: str
    vllm_text: str
    llama_cpp_text: str


def _gap(top: dict[int, float], a: int, b: int) -> float | None:
    """|logprob(a) - logprob(b)| in one engine's top list, None if either is missing."""
    if a in top and b in top:
        return abs(top[a] - top[b])
    return None


def compare_runs(prompt: str, vllm: Run, llama_cpp: Run) -> PromptVerdict:
    """Where two greedy runs first differ, and whether that is a near tie (fine) or a real disagreement."""
    compared = min(len(vllm.tokens), len(llama_cpp.tokens))
    agreeing = next((i for i in range(compared) if vllm.tokens[i] != llama_cpp.tokens[i]), compared)

    def verdict(ok: bool, reason: str) -> PromptVerdict:
        return PromptVerdict(
            prompt=prompt,
            agreeing_tokens=agreeing,
            compared_tokens=compared,
            ok=ok,
            reason=reason,
            vllm_text=vllm.text,
            llama_cpp_text=llama_cpp.text,
        )

    if compared == 0:
        return verdict(False, "an engine generated no tokens")
    if agreeing == compared:
        return verdict(True, f"all {compared} greedy tokens identical")
    mine, theirs = vllm.tokens[agreeing], llama_cpp.tokens[agreeing]
    gaps = [
        gap
        for gap in (
            _gap(vllm.top_logprobs[agreeing], mine, theirs),
            _gap(llama_cpp.top_logprobs[agreeing], mine, theirs),
        )
        if gap is not None
    ]
    if agreeing >= MIN_AGREEING_TOKENS and gaps and max(gaps) <= NEAR_TIE_NATS:
        return verdict(
            True,
            f"first {agreeing} tokens identical, then a near tie ({max(gaps):.2f} nats between the choices)",
        )
    detail = f"{max(gaps):.2f} nats apart" if gaps else "each outside the other's top candidates"
    return verdict(False, f"tokens differ at position {agreeing} ({mine} vs {theirs}, {detail})")


# --- engines (each in a child process) ----------------------------------------------------------------


def prompt_token_ids(tokenizer_source: str) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    return [tokenizer(prompt)["input_ids"] for prompt in PROMPTS]


def run_vllm(args: argparse.Namespace, prompts: list[list[int]]) -> list[Run]:
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=args.gguf,
        hf_config_path=args.hf_config,
        tokenizer=args.tokenizer or args.hf_config,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        dtype=args.dtype,
    )
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, logprobs=args.top_logprobs)
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params)
    runs = []
    for output in outputs:
        completion = output.outputs[0]
        tops = [{int(t): float(lp.logprob) for t, lp in step.items()} for step in completion.logprobs or []]
        runs.append(Run(tokens=list(completion.token_ids), top_logprobs=tops, text=completion.text))
    return runs


def run_llama_cpp(args: argparse.Namespace, prompts: list[list[int]]) -> list[Run]:
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(
        args.gguf,
        n_gpu_layers=args.llama_cpp_gpu_layers,
        n_ctx=max(len(ids) for ids in prompts) + args.max_tokens + 8,
        logits_all=True,  # keeps one logits row per evaluated token in llm.scores
        verbose=False,
    )
    runs = []
    for ids in prompts:
        # Greedy decoding by hand: exact token ids and log-probabilities, no text round trip.
        llm.reset()
        llm.eval(ids)
        tokens: list[int] = []
        tops: list[dict[int, float]] = []
        for _ in range(args.max_tokens):
            logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            logprobs = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
            best = np.argsort(-logprobs)[: args.top_logprobs]
            tokens.append(int(best[0]))
            tops.append({int(t): float(logprobs[t]) for t in best})
            if tokens[-1] == llm.token_eos():
                break
            llm.eval([tokens[-1]])
        runs.append(Run(tokens=tokens, top_logprobs=tops, text=llm.detokenize(tokens).decode(errors="replace")))
    return runs


# --- driver ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", required=True, help="local .gguf file (first shard of a split file)")
    parser.add_argument("--hf-config", required=True, help="HF repo id or dir with the base model's config.json")
    parser.add_argument("--tokenizer", help="HF repo id or dir with tokenizer files (default: --hf-config)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--top-logprobs", type=int, default=5)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--dtype", default="auto", help="vLLM --dtype (use 'half' on Blackwell)")
    parser.add_argument("--llama-cpp-gpu-layers", type=int, default=-1, help="-1: all (needs a CUDA build)")
    parser.add_argument("--json", type=Path, help="also write the verdicts here")
    parser.add_argument("--engine", choices=("vllm", "llama.cpp"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _child(args: argparse.Namespace) -> None:
    prompts = prompt_token_ids(args.tokenizer or args.hf_config)
    runs = run_vllm(args, prompts) if args.engine == "vllm" else run_llama_cpp(args, prompts)
    print(json.dumps([asdict(run) for run in runs]))


def _spawn(engine: str, argv: list[str]) -> list[Run]:
    done = subprocess.run(
        [sys.executable, __file__, *argv, "--engine", engine], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return [
        Run(
            tokens=r["tokens"],
            top_logprobs=[{int(k): v for k, v in s.items()} for s in r["top_logprobs"]],
            text=r["text"],
        )
        for r in rows
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.engine is not None:
        _child(args)
        return 0
    llama_cpp_runs = _spawn("llama.cpp", argv)
    vllm_runs = _spawn("vllm", argv)
    verdicts = [compare_runs(p, v, c) for p, v, c in zip(PROMPTS, vllm_runs, llama_cpp_runs, strict=True)]
    for v in verdicts:
        print(f"{'OK  ' if v.ok else 'FAIL'} {v.prompt!r}: {v.reason}")
        print(f"     vLLM     : {v.vllm_text!r}")
        print(f"     llama.cpp: {v.llama_cpp_text!r}")
    passed = all(v.ok for v in verdicts)
    print("VERDICT: vLLM and llama.cpp agree on this GGUF" if passed else "VERDICT: vLLM disagrees with llama.cpp")
    if args.json is not None:
        args.json.write_text(json.dumps({"passed": passed, "prompts": [asdict(v) for v in verdicts]}, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
