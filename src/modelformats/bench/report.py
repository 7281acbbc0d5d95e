"""The load test's records: one `LevelResult` per concurrency, the `BenchReport`, and its text table.

Latencies are summarised as percentiles over the successful requests of a level (nearest-rank on
the sorted values, so p50 of [1, 2, 3, 4] is 2: a value that was really measured). Cost figures
assume the server is rented for the bench's wall time at `price_per_hour` and does nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelformats.smoke import RequestResult

__all__ = ["BENCH_SCHEMA", "PERCENTILES", "BenchReport", "LevelResult", "percentile", "render_bench"]

BENCH_SCHEMA = "modelformats-bench/1"
PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `pct` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _inter_token_s(r: RequestResult) -> float | None:
    """Mean gap between output tokens after the first (the decode pace a reader sees)."""
    rate = r.decode_tokens_per_s
    return 1 / rate if rate else None


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    stats: dict[str, float | None] = {f"p{p}": percentile(present, p) for p in PERCENTILES}
    stats["mean"] = sum(present) / len(present) if present else None
    return stats


@dataclass(frozen=True, kw_only=True, slots=True)
class LevelResult:
    """Every request sent at one concurrency, the level's wall time and what /metrics showed meanwhile."""

    concurrency: int
    results: tuple[RequestResult, ...]
    wall_s: float
    # The largest value of each /metrics gauge seen during the level (kv_cache_usage, requests_*).
    metrics_peak: Mapping[str, float] = field(default_factory=dict)
    # How much each /metrics counter grew during the level.
    metrics_delta: Mapping[str, float] = field(default_factory=dict)
    price_per_hour: float | None = None

    @property
    def ok_results(self) -> tuple[RequestResult, ...]:
        return tuple(r for r in self.results if r.ok)

    @property
    def errors(self) -> int:
        return len(self.results) - len(self.ok_results)

    @property
    def error_rate(self) -> float:
        return self.errors / len(self.results) if self.results else 1.0

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens or 0 for r in self.ok_results)

    @property
    def output_tokens_per_s(self) -> float | None:
        """Output tokens of all successful requests over the level's wall time: the server's throughput."""
        return self.output_tokens / self.wall_s if self.wall_s > 0 else None

    @property
    def requests_per_s(self) -> float | None:
        return len(self.ok_results) / self.wall_s if self.wall_s > 0 else None

    @property
    def cost_per_request(self) -> float | None:
        """Dollars per successful request: the level's rented seconds shared by its answers."""
        if self.price_per_hour is None or not self.ok_results:
            return None
        return self.price_per_hour * self.wall_s / 3600 / len(self.ok_results)

    @property
    def cost_per_million_output_tokens(self) -> float | None:
        rate = self.output_tokens_per_s
        if self.price_per_hour is None or not rate:
            return None
        return self.price_per_hour / 3600 / rate * 1e6

    def latency_stats(self) -> dict[str, dict[str, float | None]]:
        good = self.ok_results
        return {
            "ttft_s": _stats([r.ttft_s for r in good]),
            "inter_token_s": _stats([_inter_token_s(r) for r in good]),
            "e2e_s": _stats([r.latency_s for r in good]),
        }

    def to_dict(self) -> dict[str, Any]:
        errors = sorted({r.error for r in self.results if r.error})
        return {
            "concurrency": self.concurrency,
            "requests": len(self.results),
            "errors": self.errors,
            "error_rate": self.error_rate,
            "error_messages": errors[:5],
            "wall_s": self.wall_s,
            "output_tokens": self.output_tokens,
            "output_tokens_per_s": self.output_tokens_per_s,
            "requests_per_s": self.requests_per_s,
            "latency": self.latency_stats(),
            "cost_per_request": self.cost_per_request,
            "cost_per_million_output_tokens": self.cost_per_million_output_tokens,
            "metrics_peak": dict(self.metrics_peak),
            "metrics_delta": dict(self.metrics_delta),
            "token_sources": sorted({r.token_source for r in self.ok_results if r.token_source}),
            "samples": [
                {
                    "ok": r.ok,
                    "ttft_s": r.ttft_s,
                    "inter_token_s": _inter_token_s(r),
                    "e2e_s": r.latency_s,
                    "output_tokens": r.output_tokens,
                    "error": r.error,
                }
                for r in self.results
            ],
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchReport:
    """The sweep: where, what, at which price, and one `LevelResult` per concurrency, lowest first."""

    base_url: str
    model: str | None
    levels: tuple[LevelResult, ...]
    max_tokens: int
    prompts: tuple[str, ...]
    price_per_hour: float | None = None
    # Where the price came from: "--price-per-hour", "plan: H100 x1", or None.
    price_source: str | None = None
    metrics_engine: str | None = None
    metrics_note: str | None = None
    # Why the sweep ended before the last asked level (every request of a level failed), if it did.
    stopped: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.levels) and self.stopped is None and all(lv.errors == 0 for lv in self.levels)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def best(self) -> LevelResult | None:
        """The level with the highest output throughput (the cheapest per token)."""
        rated = [lv for lv in self.levels if lv.output_tokens_per_s]
        return max(rated, key=lambda lv: lv.output_tokens_per_s or 0.0) if rated else None

    def to_dict(self) -> dict[str, Any]:
        best = self.best()
        return {
            "schema": BENCH_SCHEMA,
            "base_url": self.base_url,
            "model": self.model,
            "ok": self.ok,
            "max_tokens": self.max_tokens,
            "prompts": list(self.prompts),
            "price_per_hour": self.price_per_hour,
            "price_source": self.price_source,
            "metrics_engine": self.metrics_engine,
            "metrics_note": self.metrics_note,
            "best_concurrency": best.concurrency if best else None,
            "levels": [lv.to_dict() for lv in self.levels],
            "stopped": self.stopped,
            "warnings": list(self.warnings),
        }


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value * 1000:.{digits}f}"


def render_bench(report: BenchReport) -> str:
    """The short table: one line per concurrency, then the best level in words; fits 80 columns."""
    lines = [f"modelformats bench — {report.base_url} (model: {report.model or 'unnamed'})"]
    price = (
        f"${report.price_per_hour:.2f}/h ({report.price_source})"
        if report.price_per_hour is not None
        else "no price (pass --price-per-hour or --plan)"
    )
    lines.append(f"max_tokens {report.max_tokens}, {len(report.prompts)} prompt(s), {price}")
    header = ("conc", "reqs", "err", "TTFT p50", "ITL p50", "E2E p50", "E2E p90", "tok/s", "$/1M tok", "$/req")
    rows = [header, ("", "", "", "ms", "ms", "ms", "ms", "", "", "")]
    for lv in report.levels:
        lat = lv.latency_stats()
        rows.append((
            str(lv.concurrency), str(len(lv.results)), f"{lv.error_rate:.0%}",
            _ms(lat["ttft_s"]["p50"]), _ms(lat["inter_token_s"]["p50"], 1),
            _ms(lat["e2e_s"]["p50"]), _ms(lat["e2e_s"]["p90"]),
            _f(lv.output_tokens_per_s, ".1f"),
            _f(lv.cost_per_million_output_tokens, ".2f"), _f(lv.cost_per_request, ".5f"),
        ))  # fmt: skip
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    best = report.best()
    if best is not None:
        cost = best.cost_per_million_output_tokens
        lines.append(
            f"best: concurrency {best.concurrency}, {_f(best.output_tokens_per_s, '.1f')} output tok/s"
            + (f", ${cost:.2f} per 1M output tokens" if cost is not None else "")
        )
    peaks = {lv.concurrency: lv.metrics_peak for lv in report.levels if lv.metrics_peak}
    if peaks:
        top = max(peaks)
        peak = peaks[top]
        shown = [f"KV cache {peak['kv_cache_usage']:.0%}"] if "kv_cache_usage" in peak else []
        shown += [
            f"{k.removeprefix('requests_')} {peak[k]:.0f}"
            for k in ("requests_running", "requests_waiting")
            if k in peak
        ]
        lines.append(f"/metrics ({report.metrics_engine}) peak at concurrency {top}: {', '.join(shown)}")
    elif report.metrics_note:
        lines.append(f"/metrics: {report.metrics_note}")
    for lv in report.levels:
        for message in lv.to_dict()["error_messages"][:2]:
            lines.append(f"error at concurrency {lv.concurrency}: {message}")
    if report.stopped:
        lines.append(f"stopped: {report.stopped}")
    lines += [f"warning: {w}" for w in report.warnings]
    lines.append("result: " + ("OK" if report.ok else "FAILED"))
    return "\n".join(_fit(line) for line in lines)


def _fit(line: str, width: int = 80) -> str:
    """One terminal line: long error texts are cut with an ellipsis (the JSON report keeps them whole)."""
    return line if len(line) <= width else line[: width - 1] + "…"
