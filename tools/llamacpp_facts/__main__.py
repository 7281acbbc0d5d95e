"""Generate (or check) src/modelformats/engines/data/llamacpp_facts.json from the llama.cpp sources.

    python -m tools.llamacpp_facts [--sdist PATH.tar.gz] [--update]

Without --sdist the llama-cpp-python sdist is fetched from PyPI into the shared cache. Without
--update it exits 1 when the committed file differs from what the sources say (the nox session
`llamacpp_e2e` runs it, so a stale file fails CI); the file carries its provenance (tools/evidence.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.evidence import BY_NAME, finish
from tools.llamacpp_facts.extract import extract_facts
from tools.llamacpp_server.build import LLAMA_CPP_PYTHON_VERSION, download_sdist, shared_cache

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="llama-cpp-python sdist (.tar.gz); default: pip download it")
    parser.add_argument("--update", action="store_true", help="write the committed file instead of comparing")
    args = parser.parse_args(argv)
    sdist = args.sdist or download_sdist(shared_cache() / "llamacpp" / LLAMA_CPP_PYTHON_VERSION / "sdist")
    return finish(BY_NAME["llamacpp_facts"], extract_facts(sdist), update=args.update)


if __name__ == "__main__":
    raise SystemExit(main())
