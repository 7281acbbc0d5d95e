"""The plan for people, answer first: what is served, files and bytes, engine and evidence, GPU and price,
a bar per memory term against the GPU budget, the command block and the ranked alternatives, one line each
(`--explain` appends `rendering.explain`'s sections)."""

from __future__ import annotations

from modelformats.deployment import DeploymentPlan
from modelformats.gpu.decision import GpuSummary
from modelformats.rendering.command import command_block
from modelformats.rendering.explain import explain_lines
from modelformats.rendering.text import (
    LABEL,
    Style,
    clip,
    compress_shards,
    field_lines,
    format_gb,
    terminal_width,
    wrap,
)

__all__ = ["render_plan"]

_BAR_BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a character cell


def _traits(plan: DeploymentPlan) -> str:
    t = plan.traits
    parts = []
    if t.model_type:
        parts.append(t.model_type + (" MoE" if t.is_moe else ""))
    elif t.is_moe:
        parts.append("MoE")
    if t.params_total is not None:
        parts.append(f"{t.params_total / 1e9:.1f}B")
    return ", ".join(parts)


def _elide(text: str, room: int) -> str:
    """`text` in `room` columns, the middle replaced by `…` (repo ids keep owner and tail)."""
    if len(text) <= room:
        return text
    keep = room - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]


def _what(plan: DeploymentPlan, room: int) -> str:
    detected = plan.detection.format
    fmt = plan.format + (f" {plan.quant}" if plan.quant else "")
    if plan.quantization and plan.quantization != plan.format:
        fmt += f" ({plan.quantization})"
    for step in plan.converts:
        fmt = f"{detected}{f' {plan.quant}' if plan.quant else ''} converted to {plan.format} ({step.dtype}) "
        return fmt + f"after download, {step.estimate_basis}"
    if plan.weights_repo_id != plan.repo_id:
        head = f"{fmt} weights of base repo "
        return head + _elide(plan.weights_repo_id, room - len(head))
    return f"{fmt} weights of this repo" + (f" ({detected})" if detected != plan.format else "")


def _files(plan: DeploymentPlan, width: int, *, most: int | None) -> list[str]:
    """`N file(s), GB: names` in at most `most` lines; names that do not fit become `+K more`."""
    names: list[str] = []
    for item in plan.downloads:
        shown = compress_shards(item.files)
        if item.repo_id not in (plan.weights_repo_id, plan.repo_id):
            shown = [f"{n} (from {item.repo_id})" for n in shown]
        if not item.files and item.allow_patterns:
            # A repo whose listing is not recorded: standard names, skipped by the Hub when absent.
            shown = [f"tokenizer/config of {item.repo_id} if present"]
        names += shown
    count = sum(len(i.files) for i in plan.downloads)
    est = " (estimated)" if plan.download_bytes_estimated else ""
    head = f"{count} file(s), {format_gb(plan.download_bytes)}{est}: "
    for k in range(len(names), 0, -1):
        more = f" +{len(names) - k} more" if k < len(names) else ""
        lines = field_lines("files", head + ", ".join(names[:k]) + more, width)
        if most is None or len(lines) <= most:
            return lines
    return field_lines("files", head + f"{len(names)} name(s), --explain lists them", width)


def _gpu_text(gpu: GpuSummary | None) -> str:
    if gpu is None:
        return "-"
    nodes = gpu.nodes or 1
    text = f"{gpu.count} x {gpu.name}" + (f" x {nodes} nodes" if nodes > 1 else "")
    text += f" @ {gpu.gpu_memory_utilization:.2f}"
    return text + f", ${gpu.price_per_hour:.2f}/h"


def _budget(gpu: GpuSummary) -> float:
    """Bytes per GPU the engine may use: the GPU's usable memory x the utilization."""
    return float(gpu.memory_bytes_per_gpu) * float(gpu.gpu_memory_utilization or 1.0)


def _gpu_line(plan: DeploymentPlan) -> str:
    gpu, memory = plan.gpu, plan.memory
    text = _gpu_text(gpu)
    budget = _budget(gpu) if gpu is not None else 0.0
    if budget and memory is not None:
        used = memory.per_gpu_in_budget_bytes
        per = " per GPU" if memory.gpus > 1 else ""
        text += f"; needs {used / 1e9:.1f} of {budget / 1e9:.1f} GB{per} ({100 * used / budget:.0f} %)"
    return text


def _bar(fraction: float, cells: int) -> str:
    eighths = round(max(fraction, 0.0) * cells * 8)
    full, part = divmod(min(eighths, cells * 8), 8)
    return ("█" * full + (_BAR_BLOCKS[part] if part else "")).ljust(cells)


def _memory_lines(plan: DeploymentPlan, width: int, style: Style) -> list[str]:
    """One bar per memory term, against the per-GPU budget (memory x utilization)."""
    memory, gpu = plan.memory, plan.gpu
    if memory is None or gpu is None:
        return []
    budget = _budget(gpu)
    terms = memory.terms
    name_w = max((len(t.name) for t in terms), default=8)
    cells = max(min(width - LABEL - name_w - 28, 32), 8)
    lines = []
    for n, t in enumerate(terms):
        size = float(t.per_gpu_bytes or t.bytes or 0)
        flags = (("assumed", t.assumed), ("outside budget", not t.in_budget))
        tags = [tag for tag, on in flags if on]
        bar = _bar(size / budget if budget else 0.0, cells)
        tag = f"  {', '.join(tags)}" if tags else ""
        label = "memory" if n == 0 else ""
        line = f"{label:<{LABEL}}{t.name:<{name_w}} {bar} {format_gb(size):>9}"
        lines.append(line + style.warn(tag) if len(line) + len(tag) <= width else line)
    return lines


def _alternative_lines(plan: DeploymentPlan, width: int, style: Style) -> list[str]:
    lines = []
    for n, alt in enumerate(plan.alternatives):
        # "[ok]" loads, "[no]" refused: bracketed, so it never reads as part of the label ("no gguf weights").
        plain = "[ok]" if alt.loads else "[no]"
        mark = style.good(plain) if alt.loads else style.bad(plain)
        why = alt.reason.split(":", 1)[0]
        price = f", ${alt.price_per_hour:.2f}/h" if alt.price_per_hour is not None else ""
        text = f"{alt.label}{price}; {why}"
        head = f"{'others' if n == 0 else '':<{LABEL}}{alt.rank}. "
        lines.append(head + mark + " " + clip(text, width - len(head) - len(plain) - 1))
    return lines


def _short(text: str) -> str:
    """The part of a sentence before its details (the first colon), for one-line summaries."""
    head = text.split(": ", 1)[0]
    return head if len(head) < len(text) else text


def render_plan(
    plan: DeploymentPlan, *, width: int | None = None, explain: bool = False, style: Style | None = None
) -> str:
    """The plan for people: the decision first, then memory, command, alternatives; `explain` adds all."""
    width = width or terminal_width()
    style = style or Style()
    what = _traits(plan)
    tail = f" ({what})" if what else ""
    title = plan.repo_id + (f" @ {plan.revision}" if plan.revision else "")
    if explain:
        lines = [style.bold(line) for line in wrap(title + tail, width)]
    else:
        # The full id is in the command below (and in --explain); here it may lose its middle.
        lines = [
            style.bold(_elide(title, width - len(tail)) + tail if len(tail) < width // 3 else _elide(title, width))
        ]
    lines += field_lines("serve", _what(plan, width - LABEL), width)
    lines += _files(plan, width, most=None if explain else 2)
    verdict = plan.engine.verdict.level.description if plan.engine.verdict is not None else ""
    engine = f"{plan.engine.name} {plan.engine.version}: {verdict}"
    lines += field_lines("engine", engine, width) if explain else [clip(f"{'engine':<{LABEL}}{engine}", width)]
    lines += field_lines("gpu", _gpu_line(plan), width)
    for note in plan.gpu.notes if plan.gpu is not None else ():
        # A note is a sentence of its own: from column 0 when that keeps it on one line.
        lines += [note] if len(note) <= width else wrap(note, width, first=" " * LABEL)
    rt = plan.runtime
    if rt and explain:
        limits = f"max_model_len {rt.max_model_len}, max_num_seqs {rt.max_num_seqs}"
        lines += field_lines("limits", limits, width)
    lines += _memory_lines(plan, width, style)
    needs = " ".join(plan.engine.requirements) or plan.engine.image or ""
    lines.append(style.bold("command") + (f" ({clip(needs, width - 12)})" if needs else ""))
    lines += command_block(plan.engine.argv, width, env=plan.engine.env)
    lines += _alternative_lines(plan, width, style)
    if explain:
        lines += explain_lines(plan, width)
    else:
        warnings = [f"warning: {_short(w)} (--explain)" for w in plan.warnings]
        lines += [
            style.warn(w) if len(w) <= width else style.warn(clip(w[: -len(" (--explain)")], width)) for w in warnings
        ]
        if not warnings:
            lines.append(style.dim("sources, formulas and the full reasoning: --explain"))
    return "\n".join(lines)
