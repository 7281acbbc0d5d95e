"""`modelformats bench` against a real llama-server on CPU, and its HTML report seen by a real browser.

    python -m tools.bench_e2e [--cache DIR] [--binary PATH] [--out DIR] [--chromium PATH]   (nox -s bench)

1. llama-server is built once from the llama-cpp-python sdist (tools/llamacpp_server; cached under
   `<cache>/llamacpp/`), serving a tiny GGUF in the target's layout (llama + 4 experts, Q8_0) with
   4 slots, `--metrics`, and the plan's served model name as its alias;
2. `modelformats plan --format gguf --json` (the offline default target) gives the price ($/h) and
   max_num_seqs 4, so `modelformats bench --plan` sweeps concurrency 1, 2, 4 against that server;
3. the JSON report is checked (levels, no errors, token counts from usage equal to llama.cpp's own
   `tokens_predicted_total` growth, /metrics read, costs);
4. the HTML report is opened in headless chromium; the screenshot must exist, not be blank, and
   show both plots (the throughput line's blue on the left, the latency plot's red on the right).

Artifacts (bench.json, bench.html, bench.png, server.log) stay in `--out` (default `.cache/bench/`).
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from tools.llamacpp_server.build import ensure_llama_server, shared_cache
from tools.llamacpp_server.server import start_llama_server
from tools.llamacpp_server.tiny_gguf import write_tiny_gguf

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 4
CONTEXT_PER_SLOT = 256
MAX_TOKENS = 32
REQUESTS = 16
WINDOW = (1400, 900)
# The plot colours of modelformats.bench.html: the throughput line, and the latency plot's E2E p50.
BLUE, RED = (0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def _check(checks: list[tuple[str, bool]], name: str, ok: bool) -> None:
    checks.append((name, ok))
    print(f"  [{'ok' if ok else 'FAIL'}] {name}")


# --- PNG: enough of the format to read chromium's 8-bit RGB(A) screenshots --------------------------


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of a non-interlaced 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def colour_pixels(rows: list[bytes], colour: tuple[int, int, int], x_range: tuple[int, int]) -> int:
    """How many pixels within `x_range` are `colour` (give or take 24 per channel: anti-aliasing)."""
    count = 0
    for row in rows:
        for x in range(x_range[0], min(x_range[1], len(row) // 3)):
            r, g, b = row[3 * x : 3 * x + 3]
            if abs(r - colour[0]) < 24 and abs(g - colour[1]) < 24 and abs(b - colour[2]) < 24:
                count += 1
    return count


def ensure_chromium(explicit: Path | None) -> Path:
    """Debian's chromium: the given path, or on PATH, or installed with apt-get (root, Debian's mirror)."""
    if explicit is not None:
        return explicit
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return Path(found)
    print("chromium is missing; installing Debian's package (apt-get install chromium)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=1200)
    found = shutil.which("chromium")
    if not found:
        raise FileNotFoundError("apt-get installed chromium but it is not on PATH")
    return Path(found)


def screenshot(chromium: Path, page: Path, png: Path) -> subprocess.CompletedProcess[str]:
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelformats-chromium-") as profile:
        command = [
            str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", page.resolve().as_uri(),
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _check_report(data: dict, delta_ok: bool, checks: list[tuple[str, bool]]) -> None:
    levels = data.get("levels", [])
    _check(checks, "exit 0 and ok=true", data.get("ok") is True)
    concurrency = [lv["concurrency"] for lv in levels]
    _check(checks, "levels 1, 2, 4 (from the plan's max_num_seqs 4)", concurrency == [1, 2, 4])
    clean = all(lv["requests"] == REQUESTS and lv["errors"] == 0 for lv in levels)
    _check(checks, f"{REQUESTS} requests per level, no errors", clean)
    _check(checks, "token counts from the server's usage", all(lv["token_sources"] == ["usage"] for lv in levels))
    ordered = all(
        0 < lv["latency"]["ttft_s"]["p50"] <= lv["latency"]["e2e_s"]["p50"] <= lv["latency"]["e2e_s"]["p99"]
        for lv in levels
    )
    _check(checks, "TTFT p50 <= E2E p50 <= E2E p99 at every level", ordered)
    _check(checks, "/metrics read as llama.cpp's", data.get("metrics_engine") == "llamacpp")
    _check(checks, "llamacpp:tokens_predicted_total grew by each level's usage total", delta_ok)
    priced = str(data.get("price_source")).startswith("plan:") and all(
        lv["cost_per_request"] and lv["cost_per_million_output_tokens"] for lv in levels
    )
    _check(checks, "priced from the plan ($/request, $/1M output tokens)", priced)


def _run_bench(url: str, plan_file: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    command = [
        sys.executable, "-m", "modelformats", "bench", "--plan", str(plan_file), "--base-url", url,
        "--requests", str(REQUESTS), "--max-tokens", str(MAX_TOKENS), "--timeout", "120", "--output-dir", str(out),
    ]  # fmt: skip
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    print(run.stdout + run.stderr)
    print(f"bench took {time.monotonic() - started:.1f} s")
    path = out / "bench.json"
    return run, json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="build cache (default: the shared cache)")
    parser.add_argument("--binary", type=Path, help="use this llama-server instead of building one")
    parser.add_argument("--jobs", type=int, default=2, help="compile jobs (the CI machine has 2 cores)")
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench", help="artifacts directory")
    parser.add_argument("--chromium", type=Path, help="the chromium binary (default: on PATH, else apt-get)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    binary = args.binary or ensure_llama_server(args.cache or shared_cache(), jobs=args.jobs)
    print(f"llama-server: {binary} (ready in {time.monotonic() - started:.1f} s)")
    chromium = ensure_chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)
    checks: list[tuple[str, bool]] = []
    plan_file = args.out / "plan.json"
    plan = subprocess.run(
        [sys.executable, "-m", "modelformats", "plan", "--format", "gguf", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    plan_file.write_text(plan.stdout)
    alias = json.loads(plan.stdout)["served_model_name"]
    with tempfile.TemporaryDirectory(prefix="modelformats-bench-") as tmp:
        (model,) = write_tiny_gguf(Path(tmp) / "tiny-llama-moe-Q8_0.gguf", layout="llama-moe", quant="Q8_0")
        server_args = [
            "-m", str(model), "--alias", alias, "--jinja", "--metrics",
            "-c", str(CONTEXT_PER_SLOT * SLOTS), "--parallel", str(SLOTS), "-t", "2",
        ]  # fmt: skip
        with start_llama_server(binary, server_args, log_path=args.out / "server.log") as url:
            run, data = _run_bench(url, plan_file, args.out)
    print("checks:")
    _check(checks, "modelformats bench exited 0", run.returncode == 0)
    delta_ok = bool(data.get("levels")) and all(
        lv["metrics_delta"].get("generation_tokens_total") == lv["output_tokens"] for lv in data["levels"]
    )
    _check_report(data, delta_ok, checks)
    html = args.out / "bench.html"
    png = args.out / "bench.png"
    shot = screenshot(chromium, html, png) if html.exists() else None
    _check(checks, f"chromium wrote the screenshot {png}", png.exists() and png.stat().st_size > 0)
    if png.exists() and png.stat().st_size > 0:
        width, height, rows = read_png(png)
        middle = width // 2
        distinct = len({row[i : i + 3] for row in rows[::8] for i in range(0, len(row), 24)})
        _check(checks, f"the screenshot is not blank ({width}x{height}, {distinct} sampled colours)", distinct > 8)
        blue = colour_pixels(rows, BLUE, (0, middle))
        red = colour_pixels(rows, RED, (middle, width))
        _check(checks, f"the throughput plot is drawn (left: {blue} pixels of its line colour)", blue > 200)
        _check(checks, f"the latency plot is drawn (right: {red} pixels of its E2E p50 colour)", red > 200)
    elif shot is not None:
        print(shot.stdout[-2000:] + shot.stderr[-2000:])
    failed = [name for name, ok in checks if not ok]
    print(f"artifacts: {args.out} (bench.json, bench.html, bench.png, server.log)")
    print("bench e2e: " + ("OK" if not failed else f"FAILED ({len(failed)}): " + "; ".join(failed)))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
