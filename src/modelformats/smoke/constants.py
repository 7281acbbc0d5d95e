"""Defaults and bounds of the smoke client, and what each engine calls its metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

DEFAULT_PROMPTS: tuple[str, ...] = (
    "Hello! Testing GGUF format support.",
    "What is a Mixture of Experts model?",
    "Thank you for the demonstration!",
)
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_TOKENS = 128
DEFAULT_HEALTH_TIMEOUT_S = 30.0

TokenSource = Literal["usage", "chunks"]

# What each engine calls the numbers we report: field -> (Prometheus sample name, how label sets
# combine). vLLM: vllm/v1/metrics/loggers.py in the 0.33.0 wheel (:620, :528, :538, counters :748,
# :799; prometheus_client appends `_total`). llama.cpp: tools/server/server-task.cpp:1523-1590 in the
# llama-cpp-python 0.3.36 sdist (`to_metrics()`; served only with `--metrics`), which has no KV-cache
# gauge. vLLM labels every sample with model_name/engine: a data-parallel server has one series per
# engine, so counts add up and the usage fraction takes the fullest engine.
SERVER_METRICS: Mapping[str, Mapping[str, tuple[str, Literal["sum", "max"]]]] = {
    "vllm": {
        "kv_cache_usage": ("vllm:kv_cache_usage_perc", "max"),  # a fraction: 1.0 = 100 %
        "requests_running": ("vllm:num_requests_running", "sum"),
        "requests_waiting": ("vllm:num_requests_waiting", "sum"),
        "prompt_tokens_total": ("vllm:prompt_tokens_total", "sum"),
        "generation_tokens_total": ("vllm:generation_tokens_total", "sum"),
    },
    "llamacpp": {
        "requests_running": ("llamacpp:requests_processing", "sum"),
        "requests_waiting": ("llamacpp:requests_deferred", "sum"),
        "prompt_tokens_total": ("llamacpp:prompt_tokens_total", "sum"),
        "generation_tokens_total": ("llamacpp:tokens_predicted_total", "sum"),
    },
}
_GAUGES = ("kv_cache_usage", "requests_running", "requests_waiting")
_COUNTERS = ("prompt_tokens_total", "generation_tokens_total")

# Bounds on what a misbehaving server can make us hold: one SSE line, and a non-streamed body.
_MAX_LINE_BYTES = 1 << 20
_MAX_BODY_BYTES = 8 << 20
# /health and /metrics answer in milliseconds when a server is up; longer means it is not.
_PROBE_TIMEOUT_S = 10.0
_HEALTH_INTERVAL_S = 0.5
_METRICS_INTERVAL_S = 0.5
_SHOWN_ERROR_CHARS = 300
