"""Compare modelformats' GPU catalogue with what the installed modal client parses.

Modal's client (modal/_utils/function_utils.py: parse_gpu_config, modal 1.6.4) only upper-cases the
type and splits `TYPE:COUNT`; it does NOT check the type against any list (`"NOT-A-GPU"` passes and
fails later on Modal's server), and it does not check the count against a per-type limit. So this
script can check our strings' *format* and counts, not our names: names, memory and prices come from
shared/notes/modal.md and must be re-checked by hand against https://modal.com/docs/guide/gpu.

Checks, for every catalogue type, its aliases and every count 1..max_count:
- modal parses our `modal_string` to the same (type, count) we mean;
- our parser and modal agree on case (modal upper-cases; our names are upper-case already);
- a bad count modal rejects (`H100:x`) is rejected by us too.
Exit status 1 on any mismatch. Run: `python tools/check_gpu_catalogue.py` (needs `modal`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from modelformats.errors import InvalidRequestError, UnknownGpuError
from modelformats.gpu import GPU_CATALOGUE, GpuSelection, parse_gpu

Parse = Callable[[str], Any]


def _check_types(parse_gpu_config: Parse) -> tuple[int, list[str]]:
    """Every catalogue string modal would receive parses to the (type, count) we mean."""
    problems: list[str] = []
    checked = 0
    for gpu in GPU_CATALOGUE:
        if gpu.name != gpu.name.upper():
            problems.append(f"{gpu.name}: modal upper-cases types, so the catalogue name must be upper-case")
        for count in range(1, gpu.max_count + 1):
            ours = GpuSelection(gpu=gpu, count=count).modal_string
            config = parse_gpu_config(ours)
            checked += 1
            if (config.gpu_type, config.count) != (gpu.name, count):
                problems.append(f"{ours!r}: modal parses ({config.gpu_type}, {config.count})")
            if parse_gpu(ours.lower()).modal_string != ours:
                problems.append(f"{ours.lower()!r}: our parser does not round-trip to {ours!r}")
        for alias in gpu.aliases:
            config = parse_gpu_config(alias.lower())
            mapped = parse_gpu(alias).gpu.name
            checked += 1
            if config.gpu_type != alias.upper() or mapped != gpu.name:
                problems.append(f"alias {alias!r}: modal sends {config.gpu_type}, we map it to {mapped}")
    # Modal's suffixes travel inside the type string ("H100!" never upgrades, "B200+" may run on a B300).
    for text in ("H100!:2", "B200+"):
        config = parse_gpu_config(text)
        ours = parse_gpu(text).modal_string
        checked += 1
        if f"{config.gpu_type}:{config.count}" != (ours if ":" in ours else f"{ours}:1"):
            problems.append(f"{text!r}: modal parses ({config.gpu_type}, {config.count}), we write {ours!r}")
    return checked, problems


def _check_rejections(parse_gpu_config: Parse, invalid_error: type[Exception]) -> list[str]:
    """Counts modal rejects we reject too; names modal lets through we reject."""
    problems: list[str] = []
    for bad in ("H100:x", "H100:1.5"):
        try:
            parse_gpu_config(bad)
            problems.append(f"{bad!r}: modal accepted it (expected InvalidError)")
        except invalid_error:
            pass
        try:
            parse_gpu(bad)
            problems.append(f"{bad!r}: modelformats accepted a count modal rejects")
        except InvalidRequestError:
            pass
    unknown = parse_gpu_config("NOT-A-GPU")
    print(
        "modal does not validate GPU type names: 'NOT-A-GPU' parsed as "
        f"{unknown.gpu_type} x{unknown.count or 1}; modelformats keeps the allowlist."
    )
    try:
        parse_gpu("NOT-A-GPU")
        problems.append("'NOT-A-GPU': modelformats accepted an unknown type")
    except UnknownGpuError:
        pass
    return problems


def main() -> int:
    try:
        import modal
        from modal._utils.function_utils import parse_gpu_config
        from modal.exception import InvalidError
    except ImportError:
        print("modal is not installed: pip install 'modelformats[modal]'")
        return 2
    checked, problems = _check_types(parse_gpu_config)
    problems += _check_rejections(parse_gpu_config, InvalidError)
    print(f"modal {modal.__version__}: {checked} GPU strings checked, {len(problems)} problem(s).")
    for p in problems:
        print(f"- {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
