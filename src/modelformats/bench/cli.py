"""`modelformats bench`: parse arguments, run the sweep, write the JSON and HTML reports, print the table."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelformats.bench.html import render_html
from modelformats.bench.report import BenchReport, render_bench
from modelformats.bench.run import DEFAULT_BENCH_MAX_TOKENS, DEFAULT_LEVELS, concurrency_levels, run_bench
from modelformats.errors import InvalidRequestError
from modelformats.listing import write_json_atomic
from modelformats.smoke import (
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_PROMPTS,
    DEFAULT_TIMEOUT_S,
    add_api_key_argument,
    load_prompts,
)

__all__ = ["add_bench_parser", "write_reports"]


def _levels(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {value!r}") from None
    if not levels or any(n < 1 for n in levels):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {value!r}")
    return levels


@dataclass(frozen=True, kw_only=True, slots=True)
class _Target:
    base_url: str
    model: str | None
    levels: tuple[int, ...]
    price_per_hour: float | None
    price_source: str | None


def _plan_target(path: str) -> dict[str, Any]:
    from modelformats.validate import read_plan_file

    _, plan = read_plan_file(path)
    gpu = plan.gpu
    return {
        "base_url": f"http://127.0.0.1:{plan.port}",
        "model": plan.served_model_name,
        "max_num_seqs": plan.runtime.max_num_seqs,
        "price_per_hour": gpu.price_per_hour if gpu is not None else None,
        "price_source": f"plan: {gpu.name} x{gpu.count}" if gpu is not None else None,
    }


def _target(args: argparse.Namespace) -> _Target:
    planned: dict[str, Any] = _plan_target(args.plan_file) if args.plan_file else {}
    base_url: str | None = args.base_url or planned.get("base_url")
    if base_url is None:
        raise InvalidRequestError(
            "bench needs a server: pass --base-url URL (e.g. http://127.0.0.1:8000), or --plan plan.json "
            "to bench the plan's server on its port."
        )
    if args.concurrency:
        levels = args.concurrency
    elif isinstance(planned.get("max_num_seqs"), int):
        levels = concurrency_levels(planned["max_num_seqs"])
    else:
        levels = DEFAULT_LEVELS
    price: float | None
    source: str | None
    if args.price_per_hour is not None:
        if args.price_per_hour < 0:
            raise InvalidRequestError(f"--price-per-hour {args.price_per_hour} is negative; pass dollars per hour.")
        price, source = args.price_per_hour, "--price-per-hour"
    else:
        price, source = planned.get("price_per_hour"), planned.get("price_source")
    return _Target(
        base_url=base_url,
        model=args.model or planned.get("model"),
        levels=levels,
        price_per_hour=price,
        price_source=source if price is not None else None,
    )


def write_reports(report: BenchReport, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write `bench.json` and `bench.html` into `directory` (created), each atomically; return their paths."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidRequestError(
            f"Cannot create --output-dir {str(out)!r}: {exc}. Pass a writable directory."
        ) from None
    json_path, html_path = out / "bench.json", out / "bench.html"
    write_json_atomic(json_path, report.to_dict())
    tmp = html_path.with_name(f".{html_path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(render_html(report), encoding="utf-8")
        tmp.replace(html_path)
    finally:
        tmp.unlink(missing_ok=True)
    return json_path, html_path


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `modelformats bench` (handler in `func`, returns the exit code)."""
    parser = subparsers.add_parser(
        "bench",
        help="load-test a running OpenAI-compatible server: latency, throughput, cost per request",
        description=(
            "Sweep concurrency 1, 2, 4, ... (up to the plan's max_num_seqs, or --concurrency) against a "
            "running server; measure TTFT, inter-token and end-to-end latency percentiles, output tokens/s, "
            "errors and the server's /metrics; price each request from the plan's $/h. Writes bench.json "
            "and bench.html (inline SVG plots) and prints a table. Exit 0 only if every request worked."
        ),
    )
    parser.add_argument("--base-url", help="server root, e.g. http://127.0.0.1:8000 (default: the plan's port)")
    parser.add_argument(
        "--plan", dest="plan_file", metavar="FILE",
        help="a plan from `modelformats plan --json`: its port, model name, max_num_seqs and $/h",
    )  # fmt: skip
    parser.add_argument("--model", help="model name to request (default: the plan's, else /v1/models)")
    add_api_key_argument(parser)
    parser.add_argument(
        "--concurrency", type=_levels, metavar="LIST",
        help="requests in flight per level, e.g. 1,2,4 (default: 1, 2, 4, ... up to max_num_seqs, else 1,2,4,8)",
    )  # fmt: skip
    parser.add_argument(
        "--requests", type=int, metavar="N", help="requests per level (default: 4 per concurrent worker, at least 8)"
    )
    parser.add_argument("--prompts", metavar="FILE", help="one prompt per line, or a .json list of strings")
    parser.add_argument(
        "--max-tokens", type=int, default=DEFAULT_BENCH_MAX_TOKENS, metavar="N",
        help=f"max tokens per answer (default {DEFAULT_BENCH_MAX_TOKENS})",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"seconds allowed per request (default {DEFAULT_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.add_argument(
        "--health-timeout", type=float, default=DEFAULT_HEALTH_TIMEOUT_S, metavar="S",
        help=f"seconds to wait for the server to be ready (default {DEFAULT_HEALTH_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.add_argument(
        "--price-per-hour", type=float, metavar="USD", help="what the server costs per hour (default: the plan's)"
    )
    parser.add_argument(
        "--output-dir", default="bench-report", metavar="DIR",
        help="where bench.json and bench.html go (default ./bench-report)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    parser.set_defaults(func=_bench_command)


def _bench_command(args: argparse.Namespace) -> int:
    target = _target(args)
    prompts = load_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
    report = run_bench(
        target.base_url,
        levels=target.levels,
        requests_per_level=args.requests,
        prompts=prompts,
        model=target.model,
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        health_timeout=args.health_timeout,
        api_key=args.api_key,
        price_per_hour=target.price_per_hour,
        price_source=target.price_source,
    )
    json_path, html_path = write_reports(report, args.output_dir)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))  # noqa: T201 - CLI output
    else:
        # Server-chosen text (model ids, error bodies) is shown escaped, never obeyed by the terminal.
        from modelformats.terminal import escape_values, outside_strings

        text = escape_values(render_bench(report), outside_strings(report.to_dict()))
        print(text)  # noqa: T201 - CLI output
        print(f"reports: {json_path}, {html_path}")  # noqa: T201 - CLI output
    return report.exit_code
