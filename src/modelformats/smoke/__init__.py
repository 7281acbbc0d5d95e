"""Smoke test and small benchmark of a running OpenAI-compatible server (vLLM or llama.cpp's server).

`run_smoke(base_url)` waits for the server to be ready (`/health`, or `/v1/models` where a server has
no `/health`), sends each prompt to `/v1/chat/completions` with `stream: true` and measures, per
request, time to first token, latency and output tokens/s. Token counts come from the server's
`usage` (requested with `stream_options.include_usage`) or, when the server sends none, from the
number of content chunks, and the report says which. While the prompts run, `/metrics`
(Prometheus text) is sampled when the server has it: KV-cache usage, running/waiting requests and
the token counters of vLLM (`vllm:*`) or llama.cpp's server (`llamacpp:*`, with `--metrics`).

A server that errors, hangs, closes the stream or sends garbage is reported (a per-request error,
a non-zero `exit_code`), never raised: every network wait has a deadline, enforced by a socket
timeout per read plus a watchdog that closes the socket when the request's total time runs out.
Only the standard library is used.
"""

from __future__ import annotations

from modelformats.smoke.cli import add_api_key_argument, add_smoke_parser, load_prompts
from modelformats.smoke.client import discover_model, wait_for_health
from modelformats.smoke.constants import DEFAULT_HEALTH_TIMEOUT_S, DEFAULT_PROMPTS, DEFAULT_TIMEOUT_S, SERVER_METRICS
from modelformats.smoke.metrics import MetricsSampler, parse_prometheus, read_metrics
from modelformats.smoke.render import render_report
from modelformats.smoke.report import GpuMemory, HealthResult, MetricsSnapshot, RequestResult, SmokeReport
from modelformats.smoke.run import run_smoke
from modelformats.smoke.stream import stream_chat

__all__ = [
    "DEFAULT_HEALTH_TIMEOUT_S",
    "DEFAULT_PROMPTS",
    "DEFAULT_TIMEOUT_S",
    "SERVER_METRICS",
    "GpuMemory",
    "HealthResult",
    "MetricsSampler",
    "MetricsSnapshot",
    "RequestResult",
    "SmokeReport",
    "add_api_key_argument",
    "add_smoke_parser",
    "discover_model",
    "load_prompts",
    "parse_prometheus",
    "read_metrics",
    "render_report",
    "run_smoke",
    "stream_chat",
    "wait_for_health",
]
