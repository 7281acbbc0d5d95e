"""Build llama-server (CPU) from the llama-cpp-python sdist and run the end-to-end matrix.

    python -m tools.llamacpp_server [--update] [--only TEXT]

Compares the run with src/modelformats/engines/data/llamacpp_e2e.json and fails on any difference
(with --update, writes it, with its provenance: tools/evidence.py); prints cold/warm timings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from tools.evidence import BY_NAME, finish
from tools.llamacpp_server.build import ensure_llama_binaries, shared_cache
from tools.llamacpp_server.e2e import run_matrix

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="build cache (default: the shared cache)")
    parser.add_argument("--update", action="store_true", help="write the committed file instead of comparing")
    parser.add_argument("--only", help="run only cases whose 'layout quant files' label contains this")
    parser.add_argument("--jobs", type=int, default=2, help="compile jobs (the CI machine has 2 cores)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    binaries = ensure_llama_binaries(args.cache or shared_cache(), jobs=args.jobs)
    built = time.monotonic()
    work = ROOT / ".cache" / "llamacpp" / "e2e"
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
    code = 0
    if args.only:
        print("--only: results not compared or written")
    else:
        code = finish(BY_NAME["llamacpp_e2e"], document, update=args.update)
    if failed:
        names = ", ".join(f"{c['layout']} {c['quant']} {c['files']}" for c in failed)
        print(f"{len(failed)} case(s) failed: {names}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
