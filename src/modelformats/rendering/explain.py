"""What `render_plan(..., explain=True)` adds under the decision lines: every file and where it goes, the
sources and formulas of the memory terms, the engine's requirements and evidence, every reason and warning."""

from __future__ import annotations

from modelformats.deployment import DeploymentPlan
from modelformats.rendering.text import format_gb, format_size, wrap

__all__ = ["explain_lines"]


def explain_lines(plan: DeploymentPlan, width: int) -> list[str]:
    """Everything the decision lines summarise: files, memory sources, evidence, reasons, warnings."""
    return [
        *_explain_download(plan, width),
        *_explain_memory(plan, width),
        *_explain_engine(plan, width),
        *_explain_reasons(plan, width),
    ]


def _explain_download(plan: DeploymentPlan, width: int) -> list[str]:
    lines = ["download" + (" (estimated)" if plan.download_bytes_estimated else "")]
    lines += wrap(f"{format_gb(plan.download_bytes)} to {plan.download_root}", width, first="  ")
    for item in plan.downloads:
        lines += wrap(f"{item.repo_id} -> {item.local_dir}", width, first="  ", rest="    ")
        for name in item.files:
            size = item.sizes.get(name)
            lines += wrap(name + (f" ({format_size(size)})" if size is not None else ""), width, first="    ")
        if not item.files:
            note = "no file of this repo is recorded: the names below are requested and skipped where absent"
            lines += wrap(note, width, first="    ", rest="    ")
        if item.allow_patterns and tuple(item.allow_patterns) != tuple(item.files):
            lines += wrap("allow_patterns: " + ", ".join(item.allow_patterns), width, first="    ", rest="      ")
    for join in plan.joins:
        lines += wrap(f"then join {len(join.parts)} parts -> {join.output}", width, first="  ")
    for step in plan.converts:
        base = f", config and tokenizer from {step.base} if it holds a config.json" if step.base else ""
        text = f"then convert {step.gguf} -> {step.output} ({step.dtype}{base}; {step.estimate_basis})"
        lines += wrap(text, width, first="  ", rest="    ")
    for excluded in plan.excluded:
        lines += wrap(f"not fetched ({excluded.reason}):", width, first="  ", rest="    ")
        for path in excluded.paths:
            lines += wrap(path, width, first="    ", rest="      ")
    return lines


def _explain_memory(plan: DeploymentPlan, width: int) -> list[str]:
    lines: list[str] = []
    if plan.memory is not None:
        lines.append("memory terms (sources)")
        for term in plan.memory.terms:
            lines += wrap(f"{term.name} {format_gb(term.bytes)}: {term.basis}", width, first="  ", rest="    ")
            if term.formula and term.formula != term.basis:
                lines += wrap(f"= {term.formula}", width, first="    ", rest="      ")
        for note in plan.memory.notes:
            lines += wrap(note, width, first="  ", rest="    ")
    return lines


def _explain_engine(plan: DeploymentPlan, width: int) -> list[str]:
    lines = [f"engine {plan.engine.name} {plan.engine.version}"]
    for key, value in (
        ("requirements", " ".join(plan.engine.requirements)),
        ("image", plan.engine.image or ""),
        ("env", " ".join(f"{k}={v}" for k, v in plan.engine.env.items())),
    ):
        if value:
            lines += wrap(f"{key}: {value}", width, first="  ", rest="    ")
    verdict = plan.engine.verdict
    for reason in (*(verdict.reasons if verdict else ()), *plan.engine.notes):
        lines += wrap(str(reason), width, first="  - ", rest="    ")
    for evidence in verdict.evidence if verdict else ():
        lines += wrap(f"evidence: {evidence}", width, first="  ", rest="    ")
    for warning in verdict.warnings if verdict else ():
        lines += wrap(f"engine warning: {warning}", width, first="  ", rest="    ")
    if plan.gpu is not None:
        g = plan.gpu
        src = f"price ${g.price_per_gpu_hour}/GPU-hour from {g.price_source} ({g.price_date})"
        lines += wrap(src + (", secondary quote" if g.price_secondary else ""), width, first="  ", rest="    ")
    return lines


def _explain_reasons(plan: DeploymentPlan, width: int) -> list[str]:
    lines: list[str] = []
    if plan.alternatives:
        lines.append("alternatives (reasons)")
        for alt in plan.alternatives:
            lines += wrap(f"{alt.rank}. {alt.label}: {alt.reason}", width, first="  ", rest="     ")
    lines.append("why")
    for sentence in plan.explanation:
        lines += wrap(sentence, width, first="  - ", rest="    ")
    for warning in plan.warnings:
        lines += wrap(f"warning: {warning}", width, rest="  ")
    return lines
