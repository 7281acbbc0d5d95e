"""Build llama-server (CPU) from the llama-cpp-python sdist and run the end-to-end matrix.

    python -m tools.llamacpp_server [--check] [--only TEXT]

Writes src/modelformats/engines/data/llamacpp_e2e.json (or, with --check, fails when the run's
results differ from the committed file) and prints cold/warm timings.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shutil
import sys
import time
from pathlib import Path

from tools.llamacpp_server.build import ensure_llama_binaries
from tools.llamacpp_server.e2e import run_matrix

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "src" / "modelformats" / "engines" / "data" / "llamacpp_e2e.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    parser.add_argument("--only", help="run only cases whose 'layout quant files' label contains this")
    parser.add_argument("--jobs", type=int, default=2, help="compile jobs (the CI machine has 2 cores)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    binaries = ensure_llama_binaries(args.cache, jobs=args.jobs)
    built = time.monotonic()
    work = args.cache / "llamacpp" / "e2e"
    shutil.rmtree(work, ignore_errors=True)
    document, timings = run_matrix(binaries, work, only=args.only)
    finished = time.monotonic()
    print(f"\n{'case':<34} {'total s':>8} {'ready s':>8} {'chat s':>7} {'stop s':>7}")
    for row in timings:
        cells = [
            f"{row.get(k, float('nan')):>{w}.2f}"
            for k, w in (("total_s", 8), ("ready_s", 8), ("chat_s", 7), ("stop_s", 7))
        ]
        print(f"{row['case']:<34} " + " ".join(cells))
    total = finished - started
    print(f"\nbuild/reuse {built - started:.0f} s, matrix {finished - built:.0f} s, total {total:.0f} s")
    failed = [c for c in document["cases"] if not c["passed"]]
    text = json.dumps(document, indent=1) + "\n"
    if args.only:
        print("--only: results not written")
    elif args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), "committed", "this run", lineterm="")
            print("\n".join(list(diff)[:80]))
            rerun = "rerun `python -m tools.llamacpp_server` and commit it"
            print(f"{args.output} differs from this run: {rerun}", file=sys.stderr)
            return 1
        print(f"{args.output} matches this run")
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    if failed:
        names = ", ".join(f"{c['layout']} {c['quant']} {c['files']}" for c in failed)
        print(f"{len(failed)} case(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
