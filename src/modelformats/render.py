"""Output for people: the answer first, fitted to the terminal; the full reasoning one flag away.

`render_plan(plan)` prints the decision (what, files and bytes, engine and evidence, GPU and price,
the command as a copyable block), a bar per memory term against the GPU budget and the ranked
alternatives, one line each. `render_plan(plan, explain=True)` adds everything else: every file,
the sources and formulas of the memory terms, the engine's evidence, the full reasons and warnings.
Every line fits `width` columns (default: the terminal's, `shutil.get_terminal_size`).

The command block is one flag per line with `\\` continuations, so it pastes into a shell as is.
A single word longer than the line (a long model path) is cut with a backslash-newline and continued
at column 0: the shell removes backslash-newline before it splits words, so the word comes back whole.
Colour is used only when asked (`Style(colour=True)`: a TTY without NO_COLOR, see `use_colour`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from modelformats.deployment import DeploymentPlan
from modelformats.gpu.decision import GpuSummary

if TYPE_CHECKING:
    from modelformats.download import DownloadReport

__all__ = [
    "Style",
    "command_block",
    "render_download",
    "render_gguf_header",
    "render_gpus",
    "render_plan",
    "terminal_width",
    "use_colour",
]

_MIN_WIDTH = 60
_LABEL = 8  # "engine  ": the label column of the decision lines
_BAR_BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a character cell
_SHARD = re.compile(r"^(?P<head>.*?)(?P<n>\d{5})(?P<tail>-of-(?P<total>\d{5}).*)$")


def terminal_width(default: int = 80) -> int:
    """Columns of the terminal (COLUMNS first, as `shutil.get_terminal_size` reads it), at least 60."""
    return max(shutil.get_terminal_size((default, 24)).columns, _MIN_WIDTH)


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass(frozen=True, kw_only=True, slots=True)
class Style:
    """ANSI colour, or plain text. Applied after layout: escape codes take no columns."""

    colour: bool = False

    def _sgr(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour and text else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def good(self, text: str) -> str:
        return self._sgr("32", text)

    def bad(self, text: str) -> str:
        return self._sgr("31", text)

    def warn(self, text: str) -> str:
        return self._sgr("33", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)


# --- small text helpers -----------------------------------------------------------------------------


def _gb(n: float | None) -> str:
    return "unknown" if n is None else f"{n / 1e9:,.2f} GB"


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _wrap(text: str, width: int, first: str = "", rest: str | None = None) -> list[str]:
    """`text` wrapped to `width`; long words (repo ids) break after a hyphen or at the edge."""
    rest = " " * len(first) if rest is None else rest
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=True) or [
        first.rstrip()
    ]


def _clip(text: str, width: int) -> str:
    """`text` in `width` columns, cut at a word boundary with `…` when it is longer."""
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width - 1)
    return (text[:cut] if cut > width // 2 else text[: width - 1]) + "…"


def _field(label: str, text: str, width: int) -> list[str]:
    """A decision line: `label` in the label column, `text` wrapped under itself."""
    return _wrap(text, width, first=f"{label:<{_LABEL}}", rest=" " * _LABEL)


def _compress_shards(names: Sequence[str]) -> list[str]:
    """`model-00001-of-00008.safetensors` ... `-00008-` as one `model-{00001..00008}-of-00008.safetensors`."""
    groups: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str] | str] = []
    for name in names:
        m = _SHARD.match(name)
        if m is None:
            order.append(name)
            continue
        key = (m["head"], m["tail"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(m["n"])
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
            continue
        numbers = sorted(groups[item])
        if len(numbers) == 1:
            out.append(f"{item[0]}{numbers[0]}{item[1]}")
        else:
            out.append(f"{item[0]}{{{numbers[0]}..{numbers[-1]}}}{item[1]}")
    return out


# --- the command block --------------------------------------------------------------------------------


def _split_word(word: str, first_room: int, width: int) -> list[str]:
    """Pieces of one shell word: the first fits `first_room`, the others `width`, each but the last
    followed by a backslash (so one column is kept for it). Prefers a cut after `/` or `-`."""
    pieces = []
    room = first_room
    while len(word) > room:
        cut = room - 1
        soft = max(word.rfind("/", 0, cut), word.rfind("-", 0, cut))
        if soft >= cut // 2:
            cut = soft + 1
        pieces.append(word[:cut] + "\\")
        word = word[cut:]
        room = width - 2  # " \" may follow the last piece
    pieces.append(word)
    return pieces


def _groups(argv: Sequence[str]) -> list[list[str]]:
    """[program and its leading words], then each flag with the values that follow it."""
    groups: list[list[str]] = []
    for i, arg in enumerate(argv):
        if i == 0 or (arg.startswith("-") and len(arg) > 1) or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def command_block(
    argv: Sequence[str], width: int, *, indent: int = 2, env: Mapping[str, str] | None = None
) -> list[str]:
    """The command as lines that paste into a shell: one flag per line, `\\` continuations, none wider
    than `width`. The program, a subcommand and a positional path share the first line."""
    words = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    groups = _groups(argv)
    if groups and len(groups[0]) > 1:
        lead = groups[0]
        # `vllm serve /models/x`: program + subcommand, then the path on its own line.
        groups = [words + lead, *groups[1:]]
    elif words:
        groups = [words + (groups[0] if groups else []), *groups[1:]]
    lines: list[str] = []
    for n, group in enumerate(groups):
        pad = " " * (indent if n == 0 else indent + 2)
        last = n == len(groups) - 1
        tail = "" if last else " \\"
        text = " ".join(shlex.quote(w) for w in group)
        if len(pad) + len(text) + len(tail) <= width:
            lines.append(pad + text + tail)
            continue
        # Too long: the words go on as far as they fit, a word that cannot fit is cut with a
        # backslash-newline and continues at column 0 (the shell joins it back).
        line = pad
        for k, word in enumerate(group):
            quoted = shlex.quote(word)
            end = tail if k == len(group) - 1 else ""
            sep = "" if line == pad else " "
            if len(line) + len(sep) + len(quoted) + len(end) <= width or quoted != word:
                line += sep + quoted + end
                continue
            # Room for the tail too: a word that fits only without it is still cut (never repeated).
            pieces = _split_word(word, width - len(line) - len(sep) - len(end), width)
            lines.append(line + sep + pieces[0])
            lines += pieces[1:-1]
            line = pieces[-1] + end
        lines.append(line)
    return lines


# --- the plan -----------------------------------------------------------------------------------------


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
        shown = _compress_shards(item.files)
        if item.repo_id not in (plan.weights_repo_id, plan.repo_id):
            shown = [f"{n} (from {item.repo_id})" for n in shown]
        if not item.files and item.allow_patterns:
            # A repo whose listing is not recorded: standard names, skipped by the Hub when absent.
            shown = [f"tokenizer/config of {item.repo_id} if present"]
        names += shown
    count = sum(len(i.files) for i in plan.downloads)
    est = " (estimated)" if plan.download_bytes_estimated else ""
    head = f"{count} file(s), {_gb(plan.download_bytes)}{est}: "
    for k in range(len(names), 0, -1):
        more = f" +{len(names) - k} more" if k < len(names) else ""
        lines = _field("files", head + ", ".join(names[:k]) + more, width)
        if most is None or len(lines) <= most:
            return lines
    return _field("files", head + f"{len(names)} name(s), --explain lists them", width)


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
    cells = max(min(width - _LABEL - name_w - 28, 32), 8)
    lines = []
    for n, t in enumerate(terms):
        size = float(t.per_gpu_bytes or t.bytes or 0)
        flags = (("assumed", t.assumed), ("outside budget", not t.in_budget))
        tags = [tag for tag, on in flags if on]
        bar = _bar(size / budget if budget else 0.0, cells)
        tag = f"  {', '.join(tags)}" if tags else ""
        label = "memory" if n == 0 else ""
        line = f"{label:<{_LABEL}}{t.name:<{name_w}} {bar} {_gb(size):>9}"
        lines.append(line + style.warn(tag) if len(line) + len(tag) <= width else line)
    return lines


def _alternative_lines(plan: DeploymentPlan, width: int, style: Style) -> list[str]:
    lines = []
    for n, alt in enumerate(plan.alternatives):
        mark = style.good("ok") if alt.loads else style.bad("no")
        why = alt.reason.split(":", 1)[0]
        price = f", ${alt.price_per_hour:.2f}/h" if alt.price_per_hour is not None else ""
        text = f"{alt.label}{price}; {why}"
        head = f"{'others' if n == 0 else '':<{_LABEL}}{alt.rank}. "
        lines.append(head + mark + " " + _clip(text, width - len(head) - 3))
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
        lines = [style.bold(line) for line in _wrap(title + tail, width)]
    else:
        # The full id is in the command below (and in --explain); here it may lose its middle.
        lines = [
            style.bold(_elide(title, width - len(tail)) + tail if len(tail) < width // 3 else _elide(title, width))
        ]
    lines += _field("serve", _what(plan, width - _LABEL), width)
    lines += _files(plan, width, most=None if explain else 2)
    verdict = plan.engine.verdict.level.description if plan.engine.verdict is not None else ""
    engine = f"{plan.engine.name} {plan.engine.version}: {verdict}"
    lines += _field("engine", engine, width) if explain else [_clip(f"{'engine':<{_LABEL}}{engine}", width)]
    lines += _field("gpu", _gpu_line(plan), width)
    for note in plan.gpu.notes if plan.gpu is not None else ():
        # A note is a sentence of its own: from column 0 when that keeps it on one line.
        lines += [note] if len(note) <= width else _wrap(note, width, first=" " * _LABEL)
    rt = plan.runtime
    if rt and explain:
        limits = f"max_model_len {rt.max_model_len}, max_num_seqs {rt.max_num_seqs}"
        lines += _field("limits", limits, width)
    lines += _memory_lines(plan, width, style)
    needs = " ".join(plan.engine.requirements) or plan.engine.image or ""
    lines.append(style.bold("command") + (f" ({_clip(needs, width - 12)})" if needs else ""))
    lines += command_block(plan.engine.argv, width, env=plan.engine.env)
    lines += _alternative_lines(plan, width, style)
    if explain:
        lines += _explain_lines(plan, width)
    else:
        warnings = [f"warning: {_short(w)} (--explain)" for w in plan.warnings]
        lines += [
            style.warn(w) if len(w) <= width else style.warn(_clip(w[: -len(" (--explain)")], width)) for w in warnings
        ]
        if not warnings:
            lines.append(style.dim("sources, formulas and the full reasoning: --explain"))
    return "\n".join(lines)


def _explain_lines(plan: DeploymentPlan, width: int) -> list[str]:
    """Everything the decision lines summarise: files, memory sources, evidence, reasons, warnings."""
    return [
        *_explain_download(plan, width),
        *_explain_memory(plan, width),
        *_explain_engine(plan, width),
        *_explain_reasons(plan, width),
    ]


def _explain_download(plan: DeploymentPlan, width: int) -> list[str]:
    lines = ["download" + (" (estimated)" if plan.download_bytes_estimated else "")]
    lines += _wrap(f"{_gb(plan.download_bytes)} to {plan.download_root}", width, first="  ")
    for item in plan.downloads:
        lines += _wrap(f"{item.repo_id} -> {item.local_dir}", width, first="  ", rest="    ")
        for name in item.files:
            size = item.sizes.get(name)
            lines += _wrap(name + (f" ({_size(size)})" if size is not None else ""), width, first="    ")
        if not item.files:
            note = "no file of this repo is recorded: the names below are requested and skipped where absent"
            lines += _wrap(note, width, first="    ", rest="    ")
        if item.allow_patterns and tuple(item.allow_patterns) != tuple(item.files):
            lines += _wrap("allow_patterns: " + ", ".join(item.allow_patterns), width, first="    ", rest="      ")
    for join in plan.joins:
        lines += _wrap(f"then join {len(join.parts)} parts -> {join.output}", width, first="  ")
    for step in plan.converts:
        base = f", config and tokenizer from {step.base} if it holds a config.json" if step.base else ""
        text = f"then convert {step.gguf} -> {step.output} ({step.dtype}{base}; {step.estimate_basis})"
        lines += _wrap(text, width, first="  ", rest="    ")
    for excluded in plan.excluded:
        lines += _wrap(f"not fetched ({excluded.reason}):", width, first="  ", rest="    ")
        for path in excluded.paths:
            lines += _wrap(path, width, first="    ", rest="      ")
    return lines


def _explain_memory(plan: DeploymentPlan, width: int) -> list[str]:
    lines: list[str] = []
    if plan.memory is not None:
        lines.append("memory terms (sources)")
        for term in plan.memory.terms:
            lines += _wrap(f"{term.name} {_gb(term.bytes)}: {term.basis}", width, first="  ", rest="    ")
            if term.formula and term.formula != term.basis:
                lines += _wrap(f"= {term.formula}", width, first="    ", rest="      ")
        for note in plan.memory.notes:
            lines += _wrap(note, width, first="  ", rest="    ")
    return lines


def _explain_engine(plan: DeploymentPlan, width: int) -> list[str]:
    lines = [f"engine {plan.engine.name} {plan.engine.version}"]
    for key, value in (
        ("requirements", " ".join(plan.engine.requirements)),
        ("image", plan.engine.image or ""),
        ("env", " ".join(f"{k}={v}" for k, v in plan.engine.env.items())),
    ):
        if value:
            lines += _wrap(f"{key}: {value}", width, first="  ", rest="    ")
    verdict = plan.engine.verdict
    for reason in (*(verdict.reasons if verdict else ()), *plan.engine.notes):
        lines += _wrap(str(reason), width, first="  - ", rest="    ")
    for evidence in verdict.evidence if verdict else ():
        lines += _wrap(f"evidence: {evidence}", width, first="  ", rest="    ")
    for warning in verdict.warnings if verdict else ():
        lines += _wrap(f"engine warning: {warning}", width, first="  ", rest="    ")
    if plan.gpu is not None:
        g = plan.gpu
        src = f"price ${g.price_per_gpu_hour}/GPU-hour from {g.price_source} ({g.price_date})"
        lines += _wrap(src + (", secondary quote" if g.price_secondary else ""), width, first="  ", rest="    ")
    return lines


def _explain_reasons(plan: DeploymentPlan, width: int) -> list[str]:
    lines: list[str] = []
    if plan.alternatives:
        lines.append("alternatives (reasons)")
        for alt in plan.alternatives:
            lines += _wrap(f"{alt.rank}. {alt.label}: {alt.reason}", width, first="  ", rest="     ")
    lines.append("why")
    for sentence in plan.explanation:
        lines += _wrap(sentence, width, first="  - ", rest="    ")
    for warning in plan.warnings:
        lines += _wrap(f"warning: {warning}", width, rest="  ")
    return lines


# --- download, gpus, inspect --------------------------------------------------------------------------


def render_download(report: DownloadReport, *, width: int | None = None, explain: bool = False) -> str:
    """What a download fetched (or would): per repo, its files and sizes; guessed names only with `explain`."""
    width = width or terminal_width()
    head = "would fetch" if report.dry_run else "fetched"
    planned = [f for f in report.files if not f.optional]
    guessed = [f for f in report.files if f.optional]
    total = "unknown size" if report.total_bytes is None else _size(report.total_bytes)
    est = " (estimated)" if report.total_estimated else ""
    lines = _wrap(f"{head} {len(planned)} file(s), {total}{est}, into {report.root}", width)
    by_repo: dict[str, list[Any]] = {}
    for f in report.files if explain else planned:
        by_repo.setdefault(f.repo_id, []).append(f)
    for repo, files in by_repo.items():
        lines += _wrap(repo, width)
        sizes = ["if present" if f.optional else _size(f.bytes) for f in files]
        size_w = max(len(size) for size in sizes)
        for f, size in zip(files, sizes, strict=True):
            # Size first, in a column as wide as the widest: long file names then have the room.
            lines += _wrap(f"{size:>{size_w}}  {f.path}", width, first="  ", rest=" " * (size_w + 4))
            if explain:
                lines += _wrap(f"-> {f.local_path}", width, first="    ", rest="      ")
    if guessed and not explain:
        lines += _wrap(
            f"+ {len(guessed)} standard tokenizer/config name(s) fetched only if the repo has them "
            "(--explain lists them)",
            width,
        )
    for output in report.joins:
        lines += _wrap(f"{'join' if report.dry_run else 'joined'} parts -> {output}", width)
    for output in report.converts:
        done = "convert" if report.dry_run else "converted" if output in report.converted else "already converted"
        lines += _wrap(f"{done} GGUF -> {output}", width)
    if report.hash_verified:
        lines += _wrap(
            f"verified: {len(report.hash_verified)} file(s) match the Hub's hashes; "
            f"{report.transferred_bytes:,} B transferred",
            width,
        )
    if report.copied:
        lines += _wrap(f"copied: {len(report.copied)} file(s) from the local model directory", width)
    lines += _wrap(f"plan: {report.plan_path}", width)
    return "\n".join(lines)


def render_gpus(*, width: int | None = None, explain: bool = False) -> str:
    """The GPU catalogue as a table that fits `width`; `explain` adds aliases and price sources."""
    from modelformats.gpu.catalogue import GPU_CATALOGUE, format_compute_capability, render_catalogue

    width = width or terminal_width()
    if explain:
        return "\n".join(line for text in render_catalogue().splitlines() for line in _wrap(text, width, rest="  "))
    header = ("GPU", "memory", "CC", "arch", "max", "NVLink", "$/h")
    rows = [header]
    for gpu in GPU_CATALOGUE:
        memory = f"{gpu.memory_bytes / 1e9:.0f} GB"
        if gpu.usable_memory_bytes != gpu.memory_bytes:
            memory += f" ({gpu.usable_memory_bytes / 1e9:.0f})"
        rows.append((
            gpu.name, memory, format_compute_capability(gpu.compute_capability), gpu.architecture,
            str(gpu.max_count) + ("" if gpu.max_count_stated else "*"), "yes" if gpu.nvlink else "no",
            f"{gpu.price_per_hour:.2f}",
        ))  # fmt: skip
    lines = _table(rows, right={1, 4, 6})
    lines += _wrap(
        "$/h per GPU (secondary quotes of modal.com/pricing); memory in parentheses: usable; "
        "* Modal states no per-container limit. Aliases and sources: --explain.",
        width,
    )
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    aligned = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def fmt(row: Sequence[str]) -> str:
        cells = (c.rjust(w) if i in aligned else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "  ".join(cells).rstrip()

    return [fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows[1:])]


def render_gguf_header(data: Mapping[str, Any], *, width: int | None = None) -> str:
    """A GGUF header (`GGUFHeader.to_dict()`) as `key  value` lines: what the model is first, then the file."""
    width = width or terminal_width()
    summary = dict(data.get("summary") or {})
    if summary.get("file_type_name"):
        summary["file_type"] = f"{summary.pop('file_type_name')} ({summary.get('file_type')})"
    rows = [(k, _plain(v)) for k, v in summary.items()]
    first = ("parameter_count", "tensor_data_bytes", "tensor_types")
    rows += [(k, _plain(data[k])) for k in first if k in data]
    rows += [(k, _plain(v)) for k, v in data.items() if k not in (*first, "summary", "metadata")]
    key_w = min(max((len(k) for k, _ in rows), default=0), 28)
    lines = []
    for key, text in rows:
        lines += _wrap(text, width, first=f"{key:<{key_w}}  ", rest=" " * (key_w + 2))
    return "\n".join(lines)


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "-"
    return str(value)
