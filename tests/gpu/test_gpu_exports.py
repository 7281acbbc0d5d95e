"""`modelformats.gpu` exports: sorted, complete, and importable without vllm/torch/modal/numpy."""

from __future__ import annotations

import subprocess
import sys

import modelformats.gpu as gpu
from modelformats.gpu import (
    activations,
    capability,
    catalogue,
    decision,
    estimate,
    explain,
    kept_modules,
    kv,
    memory,
    mla_weights,
    moe_kernels,
    overheads,
    policy,
    rules,
    search,
    sizing,
)


def test_all_is_sorted_and_complete():
    assert gpu.__all__ == sorted(gpu.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))
    for module in (
        activations,
        capability,
        catalogue,
        decision,
        estimate,
        explain,
        kept_modules,
        kv,
        memory,
        mla_weights,
        moe_kernels,
        overheads,
        policy,
        rules,
        search,
        sizing,
    ):
        for name in module.__all__:
            assert getattr(module, name) is not None
    public = {n for n in dir(gpu) if not n.startswith("_") and n not in {"annotations"}}
    modules = {
        "activations",
        "capability",
        "catalogue",
        "decision",
        "estimate",
        "explain",
        "kept_modules",
        "kv",
        "memory",
        "mla_weights",
        "moe_kernels",
        "overheads",
        "policy",
        "rules",
        "search",
        "sizing",
    }
    assert public - modules == set(gpu.__all__)


def test_core_imports_no_heavy_packages():
    heavy = "('vllm', 'torch', 'modal', 'numpy')"
    code = f"import sys, modelformats.gpu; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
