"""`modelformats smoke` against a real OpenAI-compatible server on CPU: llama.cpp's `llama-server`.

    python -m tools.smoke_e2e [--cache DIR] [--binary PATH] [--jobs N]      (nox -s smoke)

llama-server is built once from the llama.cpp sources vendored in the llama-cpp-python sdist
(tools/llamacpp_server, cached under `<cache>/llamacpp/`); a tiny GGUF in the target's layout
(llama + 4 experts, Q8_0) is written with the `gguf` package. Then, against the real server:

1. the library's `run_smoke` with the three default prompts, a start time (load time), `/metrics`;
2. the CLI (`python -m modelformats smoke --json`), as a user runs it;
3. a request the server refuses (a prompt longer than the context): a per-request error, exit 1;
4. the same URL after the server stopped: "not ready", exit 1, within the health bound;
5. a server started with --api-key: without the key an authentication error with the fix in < 2 s
   (library and CLI), a wrong key refused, the right key (flag or OPENAI_API_KEY) answered.

It prints build/start times, TTFT, latency and tokens/s, and exits non-zero when a check fails.
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.llamacpp_server.build import ensure_llama_server, shared_cache
from tools.llamacpp_server.server import start_llama_server
from tools.llamacpp_server.tiny_gguf import write_tiny_gguf

from modelformats.smoke import SmokeReport, render_report, run_smoke

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = 512
SLOTS = 2
MAX_TOKENS = 32


def _check(checks: list[tuple[str, bool]], name: str, ok: bool) -> None:
    checks.append((name, ok))
    print(f"  [{'ok' if ok else 'FAIL'}] {name}")


def _check_main_run(report: SmokeReport, checks: list[tuple[str, bool]]) -> None:
    results = report.results
    _check(checks, "all three prompts answered (exit code 0)", report.exit_code == 0 and len(results) == 3)
    _check(checks, "token counts come from the server's usage", all(r.token_source == "usage" for r in results))
    _check(
        checks,
        "TTFT < latency for every request",
        all(0 < (r.ttft_s or 0) < (r.latency_s or 0) for r in results),
    )
    _check(checks, "load time measured from the given start", (report.load_time_s or 0) > 0)
    engine = report.metrics_after.engine if report.metrics_after else None
    _check(checks, "/metrics read as llama.cpp's (started with --metrics)", engine == "llamacpp")
    generated = sum(r.output_tokens or 0 for r in results)
    delta = report.metrics_delta.get("generation_tokens_total")
    _check(
        checks,
        f"llamacpp:tokens_predicted_total grew by the usage total ({delta} vs {generated})",
        delta == generated,
    )


def _check_api_key(binary: Path, model: Path, tmp: Path, checks: list[tuple[str, bool]]) -> None:
    """A server started with --api-key (what the Modal example's serve function adds): without the key the
    smoke run stops at the first 401 with the fix, in under 2 s; with it (flag or OPENAI_API_KEY) it passes."""
    key = "modelformats-smoke-e2e-key"  # a throwaway key for a loopback server
    server_args = [
        "-m", str(model), "--alias", "tiny-llama-moe", "--jinja", "--metrics",
        "-c", str(CONTEXT * SLOTS), "--parallel", str(SLOTS), "-t", "2", "--api-key", key,
    ]  # fmt: skip
    with start_llama_server(binary, server_args, log_path=tmp / "server-api-key.log") as url:
        started = time.monotonic()
        refused = run_smoke(url, max_tokens=8, timeout=60, health_timeout=30)
        refused_s = time.monotonic() - started
        warning = refused.warnings[0] if refused.warnings else ""
        print(f"  without the key ({refused_s:.2f} s) -> {warning}")
        _check(
            checks,
            f"no key: an authentication error naming --api-key, exit 1, in {refused_s:.2f} s (< 2 s)",
            refused.exit_code == 1
            and warning.startswith("authentication failed (")
            and "HTTP 401" in warning
            and "pass --api-key KEY or set OPENAI_API_KEY" in warning
            and refused_s < 2,
        )
        wrong = run_smoke(url, max_tokens=8, timeout=60, health_timeout=30, api_key="not-the-key")
        _check(
            checks,
            "a wrong key: an authentication error saying the key was refused, exit 1",
            wrong.exit_code == 1 and "refused the API key sent" in (wrong.warnings[0] if wrong.warnings else ""),
        )
        ok = run_smoke(url, max_tokens=8, timeout=60, health_timeout=30, api_key=key)
        _check(checks, "with --api-key: all prompts answered, exit 0", ok.exit_code == 0 and len(ok.results) == 3)
        env = {**os.environ, "OPENAI_API_KEY": key}
        cli = subprocess.run(
            [sys.executable, "-m", "modelformats", "smoke", "--base-url", url + "/v1", "--json",
             "--max-tokens", "8", "--timeout", "60"],
            capture_output=True, text=True, timeout=300, check=False, env=env,
        )  # fmt: skip
        data = json.loads(cli.stdout) if cli.stdout.startswith("{") else {}
        _check(checks, "CLI with OPENAI_API_KEY: exit 0, ok=true", cli.returncode == 0 and data.get("ok") is True)
        cli = subprocess.run(
            [sys.executable, "-m", "modelformats", "smoke", "--base-url", url + "/v1", "--max-tokens", "8"],
            capture_output=True, text=True, timeout=300, check=False,
            env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
        )  # fmt: skip
        shown = cli.stdout + cli.stderr
        _check(
            checks,
            "CLI without a key: exit 1 and the authentication error on screen",
            cli.returncode == 1 and "authentication failed" in shown and "--api-key" in shown,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="build cache (default: the shared cache)")
    parser.add_argument("--binary", type=Path, help="use this llama-server instead of building one")
    parser.add_argument("--jobs", type=int, default=2, help="compile jobs (the CI machine has 2 cores)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    binary = args.binary or ensure_llama_server(args.cache or shared_cache(), jobs=args.jobs)
    build_s = time.monotonic() - started
    checks: list[tuple[str, bool]] = []
    with tempfile.TemporaryDirectory(prefix="modelformats-smoke-") as tmp:
        (model,) = write_tiny_gguf(Path(tmp) / "tiny-llama-moe-Q8_0.gguf", layout="llama-moe", quant="Q8_0")
        server_args = [
            "-m", str(model), "--alias", "tiny-llama-moe", "--jinja", "--metrics",
            "-c", str(CONTEXT * SLOTS), "--parallel", str(SLOTS), "-t", "2",
        ]  # fmt: skip
        launched = time.time()
        with start_llama_server(binary, server_args, log_path=Path(tmp) / "server.log") as url:
            report = run_smoke(url, started_at=launched, max_tokens=MAX_TOKENS, timeout=120, health_timeout=60)
            print(render_report(report))
            print("checks:")
            _check_main_run(report, checks)

            cli = subprocess.run(
                [sys.executable, "-m", "modelformats", "smoke", "--base-url", url + "/v1", "--json",
                 "--max-tokens", "8", "--timeout", "60"],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            data = json.loads(cli.stdout) if cli.stdout.startswith("{") else {}
            _check(
                checks,
                "CLI: exit 0 and JSON report with ok=true",
                cli.returncode == 0 and data.get("ok") is True,
            )

            too_long = run_smoke(url, prompts=["word " * (CONTEXT * 2)], max_tokens=8, timeout=60)
            error = too_long.results[0].error or ""
            print(f"  over-long prompt -> {error}")
            _check(
                checks,
                "a request the server refuses is a per-request HTTP error, exit 1",
                too_long.exit_code == 1 and error.startswith("HTTP 400: "),
            )
        gone_started = time.monotonic()
        gone = run_smoke(url, health_timeout=3)
        gone_s = time.monotonic() - gone_started
        _check(
            checks,
            f"a stopped server is reported not ready within the bound ({gone_s:.1f} s), exit 1",
            gone.exit_code == 1 and not gone.health.ready and gone_s < 6,
        )

        _check_api_key(binary, model, Path(tmp), checks)

    print(f"llama-server binary: {binary} (ready in {build_s:.1f} s: cold = built now, warm = cached)")
    print(f"server load time: {report.load_time_s:.2f} s" if report.load_time_s is not None else "")
    for i, r in enumerate(report.results, 1):
        rate = f"{r.tokens_per_s:.1f}" if r.tokens_per_s else "-"
        print(f"request {i}: TTFT {r.ttft_s or 0:.3f} s, latency {r.latency_s or 0:.3f} s, {rate} tok/s")
    failed = [name for name, ok in checks if not ok]
    print("smoke e2e: " + ("OK" if not failed else f"FAILED ({len(failed)}): " + "; ".join(failed)))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
