"""`__all__` is sorted and complete (as httpx's tests/test_exported_members.py checks), and importing
the package pulls in no engine, accelerator or cloud SDK."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import modelformats


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions and other lower-case names.
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_all_is_sorted_and_complete():
    exported = modelformats.__all__
    assert exported == sorted(exported, key=_isort_key)
    assert len(set(exported)) == len(exported)
    public = {n for n in vars(modelformats) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(modelformats, n)).__name__ == "module"}
    assert set(exported) - {"__version__"} == public - modules


def test_version_matches_the_distribution():
    assert modelformats.__version__ == version("modelformats")


def test_the_core_imports_no_heavy_or_optional_package():
    code = (
        "import sys, modelformats, modelformats.cli, modelformats.planner;"
        "modelformats.plan();"
        "print(sorted(m for m in ('vllm', 'torch', 'modal', 'numpy', 'gguf', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_exported_name_shadows_a_submodule():
    """`modelformats.plan` is the function; no module of the package may be called like an export."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(modelformats.__path__)}
    assert submodules & set(modelformats.__all__) == set()
