"""Generate (or check) src/modelformats/engines/data/llamacpp_facts.json from the llama.cpp sources.

    python -m tools.llamacpp_facts --sdist PATH.tar.gz [--check]

Without --sdist the llama-cpp-python sdist is fetched from PyPI into .cache/llamacpp/<version>/sdist.
--check exits 1 when the committed file differs from what the sources say (the nox session
`llamacpp_e2e` runs it, so a stale file fails CI).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from tools.llamacpp_facts.extract import extract_facts
from tools.llamacpp_server.build import LLAMA_CPP_PYTHON_VERSION, download_sdist

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "src" / "modelformats" / "engines" / "data" / "llamacpp_facts.json"


def render(facts: dict[str, object]) -> str:
    return json.dumps(facts, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="llama-cpp-python sdist (.tar.gz); default: pip download it")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)
    sdist = args.sdist or download_sdist(ROOT / ".cache" / "llamacpp" / LLAMA_CPP_PYTHON_VERSION / "sdist")
    text = render(extract_facts(sdist))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), "committed", "from sources", lineterm=""
            )
            print("\n".join(list(diff)[:80]))
            print(f"{args.output} is stale: run `python -m tools.llamacpp_facts` and commit it", file=sys.stderr)
            return 1
        print(f"{args.output} matches {sdist.name}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
