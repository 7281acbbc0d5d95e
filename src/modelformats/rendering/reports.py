"""The other commands' output for people: what a download fetched (or would), the GPU catalogue as a table,
and a GGUF header as `key  value` lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelformats.rendering.text import format_size, terminal_width, wrap

if TYPE_CHECKING:
    from modelformats.download import DownloadReport

__all__ = ["render_download", "render_gguf_header", "render_gpus"]


def render_download(report: DownloadReport, *, width: int | None = None, explain: bool = False) -> str:
    """What a download fetched (or would): per repo, its files and sizes; guessed names only with `explain`."""
    width = width or terminal_width()
    head = "would fetch" if report.dry_run else "fetched"
    planned = [f for f in report.files if not f.optional]
    guessed = [f for f in report.files if f.optional]
    total = "unknown size" if report.total_bytes is None else format_size(report.total_bytes)
    est = " (estimated)" if report.total_estimated else ""
    lines = wrap(f"{head} {len(planned)} file(s), {total}{est}, into {report.root}", width)
    by_repo: dict[str, list[Any]] = {}
    for f in report.files if explain else planned:
        by_repo.setdefault(f.repo_id, []).append(f)
    for repo, files in by_repo.items():
        lines += wrap(repo, width)
        sizes = ["if present" if f.optional else format_size(f.bytes) for f in files]
        size_w = max(len(size) for size in sizes)
        for f, size in zip(files, sizes, strict=True):
            # Size first, in a column as wide as the widest: long file names then have the room.
            lines += wrap(f"{size:>{size_w}}  {f.path}", width, first="  ", rest=" " * (size_w + 4))
            if explain:
                lines += wrap(f"-> {f.local_path}", width, first="    ", rest="      ")
    if guessed and not explain:
        lines += wrap(
            f"+ {len(guessed)} standard tokenizer/config name(s) fetched only if the repo has them "
            "(--explain lists them)",
            width,
        )
    for output in report.joins:
        lines += wrap(f"{'join' if report.dry_run else 'joined'} parts -> {output}", width)
    for output in report.converts:
        done = "convert" if report.dry_run else "converted" if output in report.converted else "already converted"
        lines += wrap(f"{done} GGUF -> {output}", width)
    if report.hash_verified:
        lines += wrap(
            f"verified: {len(report.hash_verified)} file(s) match the Hub's hashes; "
            f"{report.transferred_bytes:,} B transferred",
            width,
        )
    if report.copied:
        lines += wrap(f"copied: {len(report.copied)} file(s) from the local model directory", width)
    lines += wrap(f"plan: {report.plan_path}", width)
    return "\n".join(lines)


def render_gpus(*, width: int | None = None, explain: bool = False) -> str:
    """The GPU catalogue as a table that fits `width`; `explain` adds aliases and price sources."""
    from modelformats.gpu.catalogue import GPU_CATALOGUE, format_compute_capability, render_catalogue

    width = width or terminal_width()
    if explain:
        return "\n".join(line for text in render_catalogue().splitlines() for line in wrap(text, width, rest="  "))
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
    lines += wrap(
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
        lines += wrap(text, width, first=f"{key:<{key_w}}  ", rest=" " * (key_w + 2))
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
