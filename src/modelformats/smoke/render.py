"""The smoke report for people (the JSON is `SmokeReport.to_dict()`)."""

from __future__ import annotations

from modelformats.smoke.report import MetricsSnapshot, SmokeReport


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_report(report: SmokeReport) -> str:
    """A table for people: one row per prompt, then answers, errors, load time, metrics and GPU memory."""
    lines = [f"modelformats smoke — {report.base_url} (model: {report.model or 'unnamed'})"]
    health = report.health
    state = "ready" if health.ready else "NOT READY"
    lines.append(f"server: {state} on {health.path} after {health.elapsed_s:.1f} s ({health.attempts} probe(s))")
    if report.load_time_s is not None:
        lines.append(f"server load time: {report.load_time_s:.1f} s (from the given start time to ready)")
    header = ("#", "prompt", "status", "TTFT s", "latency s", "tokens", "tok/s", "decode tok/s")
    rows = [header]
    for i, r in enumerate(report.results, 1):
        tokens = "-" if r.output_tokens is None else f"{r.output_tokens} ({r.token_source})"
        rows.append((
            str(i), _clip(r.prompt, 36), "ok" if r.ok else "ERROR", _num(r.ttft_s), _num(r.latency_s),
            tokens, _num(r.tokens_per_s, ".1f"), _num(r.decode_tokens_per_s, ".1f"),
        ))  # fmt: skip
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    summary = report.summary()
    lines.append(
        f"errors: {summary['errors']}/{summary['requests']} ({summary['error_rate']:.0%}); "
        f"mean TTFT {_num(summary['ttft_s_mean'])} s, mean latency {_num(summary['latency_s_mean'])} s, "
        f"mean {_num(summary['tokens_per_s_mean'], '.1f')} tok/s"
    )
    for i, r in enumerate(report.results, 1):
        lines.append(f"  {i}. {'answer: ' + _clip(r.answer, 100) if r.ok else 'error: ' + (r.error or '')}")
    lines.append(_render_metrics(report))
    if report.gpu_memory is not None:
        gpu = report.gpu_memory
        peaks = ", ".join(
            f"{p:.0f}" + (f"/{gpu.total_mib[i]:.0f}" if i < len(gpu.total_mib) else "")
            for i, p in enumerate(gpu.peak_used_mib)
        )
        lines.append(f"GPU memory peak (MiB, per GPU): {peaks} ({gpu.source}, {gpu.samples} samples)")
    lines += [f"warning: {w}" for w in report.warnings]
    lines.append("result: " + ("OK" if report.ok else "FAILED"))
    return "\n".join(lines)


def _render_metrics(report: SmokeReport) -> str:
    if report.metrics_after is None and report.metrics_before is None:
        return f"metrics: {report.metrics_note or 'none'}"
    engine = (report.metrics_after or report.metrics_before or MetricsSnapshot(engine="?", values={})).engine
    parts = []
    peak = report.metrics_peak
    if "kv_cache_usage" in peak:
        parts.append(f"peak KV-cache usage {peak['kv_cache_usage']:.1%}")
    for name in ("requests_running", "requests_waiting"):
        if name in peak:
            parts.append(f"peak {name.replace('_', ' ')} {peak[name]:.0f}")
    for name, delta in report.metrics_delta.items():
        parts.append(f"{name.removesuffix('_total').replace('_', ' ')} +{delta:.0f}")
    text = f"metrics ({engine}): " + (", ".join(parts) or "no known values")
    return text + (f" [{report.metrics_note}]" if report.metrics_note else "")
