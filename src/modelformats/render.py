"""Human-readable rendering of a `DeploymentPlan` (the CLI's default output)."""

from __future__ import annotations

import shlex
from typing import Any

from modelformats.deployment import DeploymentPlan

__all__ = ["render_plan"]


def _gb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e9:.2f} GB"


def _price(p: float | None) -> str:
    return "-" if p is None else f"${p:.2f}/h"


def _gpu(gpu: Any) -> str:
    if not gpu:
        return "-"
    count = gpu.get("count", 1)
    nodes = gpu.get("nodes", 1)
    where = f"{count} x {gpu.get('name')}" + (f" x {nodes} nodes" if nodes and nodes > 1 else "")
    util = gpu.get("gpu_memory_utilization")
    return where + (f" @ {util:.2f}" if isinstance(util, float) else "")


def render_plan(plan: DeploymentPlan) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"repo            {plan.repo_id}" + (f" @ {plan.revision}" if plan.revision else ""))
    fmt = (
        plan.format
        + (f" ({plan.quant})" if plan.quant else "")
        + (f", quantization {plan.quantization}" if plan.quantization and plan.quantization != "gguf" else "")
    )
    add(f"serve           {fmt} from {plan.weights_repo_id}")
    verdict = plan.engine.verdict.level.description if plan.engine.verdict is not None else ""
    add(f"engine          {plan.engine.name} {plan.engine.version} — {verdict}")
    add(f"gpu             {_gpu(plan.gpu)}  {_price((plan.gpu or {}).get('price_per_hour'))}")
    rt = plan.runtime
    add(f"limits          max_model_len {rt.max_model_len}, max_num_seqs {rt.max_num_seqs}")
    est = " (estimated)" if plan.download_bytes_estimated else ""
    add(f"download        {_gb(plan.download_bytes)}{est} to {plan.download_root}")
    for item in plan.downloads:
        add(f"  {item.repo_id}:")
        for f in item.files:
            add(f"    {f}")
    for join in plan.joins:
        add(f"  then join {len(join.parts)} parts -> {join.output}")
    if plan.memory:
        add("memory")
        for term in plan.memory.get("terms", ()):
            add(f"  {term.get('name', ''):<14} {_gb(term.get('bytes'))}  {term.get('basis', '')}")
    add("command")
    add("  " + shlex.join(plan.engine.argv))
    if plan.engine.requirements:
        add("requirements    " + " ".join(plan.engine.requirements))
    if plan.alternatives:
        add("alternatives")
        for alt in plan.alternatives:
            mark = "ok " if alt.loads else "no "
            add(f"  {alt.rank}. [{mark}] {alt.label}  {_gpu(alt.gpu)}  {_price(alt.price_per_hour)}")
            add(f"        {alt.reason}")
    add("why")
    for sentence in plan.explanation:
        add(f"  - {sentence}")
    for w in plan.warnings:
        add(f"warning: {w}")
    return "\n".join(lines)
