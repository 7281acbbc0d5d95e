"""`modelformats bench`: a bounded load test of a running OpenAI-compatible server.

`run_bench(base_url, levels=(1, 2, 4))` sweeps concurrency through the smoke client's streaming
requests and returns a `BenchReport` (latency percentiles, throughput, errors, /metrics, cost);
`render_bench` prints its table, `render_html` draws the self-contained HTML report.
"""

from modelformats.bench.cli import add_bench_parser, write_reports
from modelformats.bench.html import render_html
from modelformats.bench.report import BENCH_SCHEMA, BenchReport, LevelResult, percentile, render_bench
from modelformats.bench.run import DEFAULT_BENCH_MAX_TOKENS, DEFAULT_LEVELS, concurrency_levels, run_bench

__all__ = [
    "BENCH_SCHEMA",
    "DEFAULT_BENCH_MAX_TOKENS",
    "DEFAULT_LEVELS",
    "BenchReport",
    "LevelResult",
    "add_bench_parser",
    "concurrency_levels",
    "percentile",
    "render_bench",
    "render_html",
    "run_bench",
    "write_reports",
]
