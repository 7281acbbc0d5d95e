"""A self-contained HTML report of a `BenchReport`: inline SVG plots and tables, no script, no fetches.

The page must render where the network is closed (CI, an air-gapped host): every style is inline,
every plot is SVG drawn here, and nothing is loaded from anywhere.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelformats.bench.report import BenchReport

__all__ = ["render_html"]

_W, _H = 560, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 150, 24, 48
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Series:
    label: str
    points: tuple[tuple[float, float], ...]


def _nice_max(value: float) -> float:
    """The smallest 1/2/5 x 10^k at or above `value` (the axis top)."""
    if value <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    return next(step * base for step in (1, 2, 5, 10) if step * base >= value)


def _plot(title: str, x_label: str, y_label: str, series: Sequence[_Series], xs: Sequence[int]) -> str:
    """One line chart: concurrency levels on x (evenly spaced, as the sweep doubles), values on y."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    top = _nice_max(max((y for s in series for _, y in s.points), default=1.0))
    # Levels evenly spaced, 20 px in from both axes so the first point does not sit on the y axis.
    inner = plot_w - 40
    slots = {x: _LEFT + 20 + (inner * i / (len(xs) - 1) if len(xs) > 1 else inner / 2) for i, x in enumerate(xs)}

    def y_at(v: float) -> float:
        return _TOP + plot_h - plot_h * v / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#fff"/>',
        f'<text x="{_LEFT}" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i in range(5):
        value = top * i / 4
        y = y_at(value)
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    for x, px in slots.items():
        parts.append(f'<text x="{px:.1f}" y="{_TOP + plot_h + 18}" text-anchor="middle">{x}</text>')
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" stroke="#333"/>'
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" stroke="#333"/>'
        f'<text x="{_LEFT + plot_w / 2}" y="{_H - 8}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text x="14" y="{_TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + plot_h / 2})">{html.escape(y_label)}</text>'
    )
    for n, s in enumerate(series):
        colour = _COLOURS[n % len(_COLOURS)]
        coords = [(slots[int(x)], y_at(y)) for x, y in s.points if int(x) in slots]
        if len(coords) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>' for px, py in coords]
        ly = _TOP + 14 + 18 * n
        parts.append(
            f'<rect x="{_W - _RIGHT + 12}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{_W - _RIGHT + 30}" y="{ly + 1}">{html.escape(s.label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, fmt)


def render_html(report: BenchReport) -> str:
    """The whole page as one string (write it with UTF-8)."""
    xs = [lv.concurrency for lv in report.levels]
    throughput = [
        _Series(
            label="output tok/s",
            points=tuple((lv.concurrency, lv.output_tokens_per_s or 0.0) for lv in report.levels),
        )
    ]
    latency: list[_Series] = []
    for label, key, pct in (
        ("TTFT p50", "ttft_s", "p50"),
        ("E2E p50", "e2e_s", "p50"),
        ("E2E p90", "e2e_s", "p90"),
        ("ITL p50", "inter_token_s", "p50"),
    ):
        points = []
        for lv in report.levels:
            value = lv.latency_stats()[key][pct]
            if value is not None:
                points.append((float(lv.concurrency), value * 1000))
        latency.append(_Series(label=label, points=tuple(points)))
    rows = []
    for lv in report.levels:
        lat = lv.latency_stats()
        peak = lv.metrics_peak
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    lv.concurrency,
                    len(lv.results),
                    f"{lv.error_rate:.0%}",
                    _cell(lat["ttft_s"]["p50"], ".0f", 1000),
                    _cell(lat["ttft_s"]["p99"], ".0f", 1000),
                    _cell(lat["inter_token_s"]["p50"], ".1f", 1000),
                    _cell(lat["e2e_s"]["p50"], ".0f", 1000),
                    _cell(lat["e2e_s"]["p90"], ".0f", 1000),
                    _cell(lat["e2e_s"]["p99"], ".0f", 1000),
                    _cell(lv.output_tokens_per_s, ".1f"),
                    _cell(lv.requests_per_s, ".2f"),
                    _cell(lv.cost_per_request, ".5f"),
                    _cell(lv.cost_per_million_output_tokens, ".2f"),
                    _cell(peak.get("kv_cache_usage"), ".0%"),
                    _cell(peak.get("requests_running"), ".0f"),
                    _cell(peak.get("requests_waiting"), ".0f"),
                )
            )
            + "</tr>"
        )
    head = (
        "concurrency", "requests", "errors", "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "E2E p50 ms",
        "E2E p90 ms", "E2E p99 ms", "output tok/s", "req/s", "$ / request", "$ / 1M out tok",
        "peak KV cache", "peak running", "peak waiting",
    )  # fmt: skip
    price = (
        f"${report.price_per_hour:.2f}/h ({html.escape(report.price_source or '')})"
        if report.price_per_hour is not None
        else "no price given"
    )
    notes = [*report.warnings, *([report.stopped] if report.stopped else [])]
    if report.metrics_note:
        notes.append(f"/metrics: {report.metrics_note}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>modelformats bench — {html.escape(report.model or report.base_url)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 16px; }}
.result-ok {{ color: #2ca02c; }} .result-failed {{ color: #d62728; }}
</style></head><body>
<h1>modelformats bench</h1>
<p>Server <code>{html.escape(report.base_url)}</code>, model <code>{html.escape(report.model or "unnamed")}</code>,
max_tokens {report.max_tokens}, {len(report.prompts)} prompt(s), price {price}.
Result: <b class="result-{"ok" if report.ok else "failed"}">{"OK" if report.ok else "FAILED"}</b></p>
<div class="plots">
<figure id="throughput">{_plot("Throughput vs concurrency", "concurrency", "output tokens/s", throughput, xs)}</figure>
<figure id="latency">{_plot("Latency vs concurrency", "concurrency", "milliseconds", latency, xs)}</figure>
</div>
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>
{"".join(rows)}
</table>
{"".join(f"<p>note: {html.escape(n)}</p>" for n in notes)}
</body></html>
"""
