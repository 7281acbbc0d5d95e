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

import argparse
import contextlib
import http.client
import json
import math
import os
import socket
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from modelformats.errors import InvalidRequestError

__all__ = [
    "DEFAULT_PROMPTS",
    "SERVER_METRICS",
    "GpuMemory",
    "HealthResult",
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


# --- value objects ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthResult:
    """The readiness wait: which endpoint answered, when, and the last failure seen."""

    ready: bool
    path: str
    elapsed_s: float
    attempts: int
    # Epoch seconds when the server first answered 200 (None when it never did).
    ready_at: float | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "path": self.path,
            "elapsed_s": self.elapsed_s,
            "attempts": self.attempts,
            "ready_at": self.ready_at,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestResult:
    """One streamed chat completion, measured from the moment the request was sent."""

    prompt: str
    ok: bool
    answer: str = ""
    error: str | None = None
    http_status: int | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    token_source: TokenSource | None = None
    finish_reason: str | None = None
    chunks: int = 0

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens over the whole latency: what a caller waiting for the answer sees."""
        if not self.output_tokens or not self.latency_s:
            return None
        return self.output_tokens / self.latency_s

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first over the time after the first: the engine's decode rate."""
        if self.output_tokens is None or self.output_tokens < 2 or self.ttft_s is None or self.latency_s is None:
            return None
        decode = self.latency_s - self.ttft_s
        return (self.output_tokens - 1) / decode if decode > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "ok": self.ok,
            "answer": self.answer,
            "error": self.error,
            "http_status": self.http_status,
            "ttft_s": self.ttft_s,
            "latency_s": self.latency_s,
            "output_tokens": self.output_tokens,
            "prompt_tokens": self.prompt_tokens,
            "token_source": self.token_source,
            "tokens_per_s": self.tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "finish_reason": self.finish_reason,
            "chunks": self.chunks,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricsSnapshot:
    """The SERVER_METRICS fields one `/metrics` read found, for the engine whose names matched."""

    engine: str
    values: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "values": dict(self.values)}


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuMemory:
    """Peak GPU memory used, per GPU, as sampled where the GPUs are (e.g. nvidia-smi in the container)."""

    peak_used_mib: tuple[float, ...]
    total_mib: tuple[float, ...] = ()
    samples: int = 0
    source: str = "nvidia-smi"

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_used_mib": list(self.peak_used_mib),
            "total_mib": list(self.total_mib),
            "samples": self.samples,
            "source": self.source,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class SmokeReport:
    """Everything one smoke run saw; `exit_code` is 0 only if the server was ready and all requests worked."""

    base_url: str
    model: str | None
    # "given", "/v1/models", or None when no model name could be found (requests then omit it).
    model_source: str | None
    health: HealthResult
    results: tuple[RequestResult, ...]
    started_at: float | None = None
    metrics_before: MetricsSnapshot | None = None
    metrics_after: MetricsSnapshot | None = None
    # The largest value of each gauge seen while the prompts ran.
    metrics_peak: Mapping[str, float] = field(default_factory=dict)
    metrics_note: str | None = None
    gpu_memory: GpuMemory | None = None
    warnings: tuple[str, ...] = ()

    @property
    def load_time_s(self) -> float | None:
        """Seconds from the caller's start time to the first ready answer of the server."""
        if self.started_at is None or self.health.ready_at is None:
            return None
        return self.health.ready_at - self.started_at

    @property
    def errors(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def error_rate(self) -> float:
        return self.errors / len(self.results) if self.results else 1.0

    @property
    def ok(self) -> bool:
        return self.health.ready and bool(self.results) and self.errors == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def metrics_delta(self) -> dict[str, float]:
        """How much each counter grew during the run (both reads must have it)."""
        if self.metrics_before is None or self.metrics_after is None:
            return {}
        before, after = self.metrics_before.values, self.metrics_after.values
        return {k: after[k] - before[k] for k in _COUNTERS if k in before and k in after}

    def summary(self) -> dict[str, Any]:
        good = [r for r in self.results if r.ok]
        return {
            "requests": len(self.results),
            "errors": self.errors,
            "error_rate": self.error_rate,
            "ttft_s_mean": _mean(r.ttft_s for r in good),
            "latency_s_mean": _mean(r.latency_s for r in good),
            "latency_s_max": max((r.latency_s for r in good if r.latency_s is not None), default=None),
            "tokens_per_s_mean": _mean(r.tokens_per_s for r in good),
            "decode_tokens_per_s_mean": _mean(r.decode_tokens_per_s for r in good),
            "output_tokens": sum(r.output_tokens or 0 for r in good),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "modelformats-smoke/1",
            "base_url": self.base_url,
            "model": self.model,
            "model_source": self.model_source,
            "ok": self.ok,
            "started_at": self.started_at,
            "load_time_s": self.load_time_s,
            "health": self.health.to_dict(),
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
            "metrics": {
                "before": self.metrics_before.to_dict() if self.metrics_before else None,
                "after": self.metrics_after.to_dict() if self.metrics_after else None,
                "peak": dict(self.metrics_peak),
                "delta": self.metrics_delta,
                "note": self.metrics_note,
            },
            "gpu_memory": self.gpu_memory.to_dict() if self.gpu_memory else None,
            "warnings": list(self.warnings),
        }


def _mean(values: Iterator[float | None] | Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


# --- HTTP with deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Server:
    scheme: str
    host: str
    port: int
    prefix: str
    # Sent as `Authorization: Bearer <key>` (vLLM's and llama-server's --api-key); never printed.
    api_key: str | None = field(default=None, repr=False)

    def headers(self, **extra: str) -> dict[str, str]:
        return {**extra, "Authorization": f"Bearer {self.api_key}"} if self.api_key else dict(extra)

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}{self.prefix}"


def _parse_base_url(base_url: str, api_key: str | None = None) -> _Server:
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            f"Invalid --base-url {base_url!r}: it must be an http(s) URL with a host. "
            "Pass the server root, e.g. http://127.0.0.1:8000."
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequestError(
            f"Invalid --base-url {base_url!r}: the port is not a number in 1-65535. "
            "Pass the server root, e.g. http://127.0.0.1:8000."
        ) from None
    # OpenAI clients are configured with ".../v1"; /health and /metrics live at the server root.
    prefix = parts.path.rstrip("/")
    prefix = prefix.removesuffix("/v1")
    return _Server(scheme=parts.scheme, host=parts.hostname, port=port, prefix=prefix, api_key=api_key or None)


class _Deadline:
    """Closes a connection's socket when `deadline` (time.monotonic) passes, whatever it is waiting on."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self.conn.close()

    def _fire(self) -> None:
        self.fired = True
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def arm_read(self) -> None:
        """Bound the next socket read by the time left (the watchdog bounds slow trickles)."""
        sock = self.conn.sock
        if sock is not None:
            sock.settimeout(max(self.remaining(), 0.001))


def _connect(server: _Server, timeout: float) -> http.client.HTTPConnection:
    if server.scheme == "https":
        return http.client.HTTPSConnection(
            server.host, server.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(server.host, server.port, timeout=timeout)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _get(server: _Server, path: str, timeout: float) -> tuple[int, str, bytes]:
    """GET `path`; return (status, content type, body). Raises OSError/HTTPException on failure."""
    conn = _connect(server, timeout)
    with _Deadline(conn, time.monotonic() + timeout) as guard:
        try:
            conn.request("GET", server.prefix + path, headers=server.headers(Accept="*/*"))
            guard.arm_read()
            response = conn.getresponse()
            body = response.read(_MAX_BODY_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            if guard.fired:
                raise TimeoutError(f"no complete answer within {timeout:g} s") from exc
            raise
        return response.status, response.getheader("Content-Type", ""), body


def _error_text(status: int, body: bytes) -> str:
    """`HTTP 500: message` with the server's error message when the body is OpenAI-style JSON."""
    return f"HTTP {status}: {_error_message(body)}"


def _error_message(body: bytes) -> str:
    message = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        payload = json.loads(message)
        if isinstance(payload, dict):
            error = payload.get("error", payload)
            inner = error.get("message") if isinstance(error, dict) else error
            if isinstance(inner, str) and inner:
                message = inner
    return message[:_SHOWN_ERROR_CHARS] or "(empty body)"


# --- readiness -------------------------------------------------------------------------------------


def wait_for_health(
    base_url: str,
    *,
    timeout: float = DEFAULT_HEALTH_TIMEOUT_S,
    interval: float = _HEALTH_INTERVAL_S,
    api_key: str | None = None,
) -> HealthResult:
    """Poll `/health` until it answers 200 or `timeout` seconds pass; never raises for a bad server.

    A server without `/health` (404; llama-cpp-python's server has none) is probed on `/v1/models`
    instead. Connection refusals, 503 "Loading model" (llama.cpp) and Modal's cold-start redirects
    are all "not ready yet".
    """
    server = _parse_base_url(base_url, api_key)
    start = time.monotonic()
    deadline = start + timeout
    path = "/health"
    attempts = 0
    last_error: str | None = None
    while True:
        attempts += 1
        left = deadline - time.monotonic()
        try:
            status, _, body = _get(server, path, max(min(_PROBE_TIMEOUT_S, left), 0.05))
        except (OSError, http.client.HTTPException) as exc:
            last_error = _describe(exc)
        else:
            if status == 200:
                return HealthResult(
                    ready=True, path=path, elapsed_s=time.monotonic() - start, attempts=attempts,
                    ready_at=time.time(), last_error=last_error,
                )  # fmt: skip
            last_error = _error_text(status, body)
            if status in (401, 403):
                # A refused key does not fix itself by waiting: report it at once.
                return HealthResult(
                    ready=False, path=path, elapsed_s=time.monotonic() - start, attempts=attempts,
                    last_error=last_error,
                )  # fmt: skip
            if status == 404 and path == "/health":
                path = "/v1/models"
                continue
        if time.monotonic() + interval >= deadline:
            return HealthResult(
                ready=False, path=path, elapsed_s=time.monotonic() - start, attempts=attempts,
                last_error=f"not ready within {timeout:g} s; last answer: {last_error}",
            )  # fmt: skip
        time.sleep(interval)


def discover_model(
    base_url: str, *, timeout: float = _PROBE_TIMEOUT_S, api_key: str | None = None
) -> tuple[str | None, str | None]:
    """The first model id of `/v1/models`, or (None, why not); never raises for a bad server."""
    return _discover_model(_parse_base_url(base_url, api_key), timeout)


def _discover_model(server: _Server, timeout: float) -> tuple[str | None, str | None]:
    """The first model id of `/v1/models`, or (None, why not)."""
    try:
        status, _, body = _get(server, "/v1/models", min(timeout, _PROBE_TIMEOUT_S))
    except (OSError, http.client.HTTPException) as exc:
        return None, f"GET /v1/models failed ({_describe(exc)})"
    if status != 200:
        return None, f"GET /v1/models answered {_error_text(status, body)}"
    try:
        data = json.loads(body)["data"]
        model = data[0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None, f"GET /v1/models is not an OpenAI model list: {body[:120]!r}"
    return (model, None) if isinstance(model, str) else (None, "GET /v1/models gave a non-string id")


# --- metrics ---------------------------------------------------------------------------------------


def parse_prometheus(text: str) -> dict[str, list[float]]:
    """Sample values by metric name (labels dropped) from Prometheus text exposition format."""
    samples: dict[str, list[float]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            # Label values may contain spaces; the value follows the closing brace.
            rest = rest.rpartition("}")[2]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        samples.setdefault(name.strip(), []).append(value)
    return samples


def _snapshot(samples: Mapping[str, list[float]]) -> MetricsSnapshot | None:
    for engine, table in SERVER_METRICS.items():
        values: dict[str, float] = {}
        for name, (metric, combine) in table.items():
            found = [v for v in samples.get(metric, ()) if not math.isnan(v)]
            if found:
                values[name] = sum(found) if combine == "sum" else max(found)
        if values:
            return MetricsSnapshot(engine=engine, values=values)
    return None


def read_metrics(
    base_url: str, *, timeout: float = _PROBE_TIMEOUT_S, api_key: str | None = None
) -> tuple[MetricsSnapshot | None, str | None]:
    """One `/metrics` read: (snapshot, None), or (None, why there is none); never raises for a bad server."""
    server = _parse_base_url(base_url, api_key)
    return _read_metrics(server, timeout)


def _read_metrics(server: _Server, timeout: float) -> tuple[MetricsSnapshot | None, str | None]:
    try:
        status, _, body = _get(server, "/metrics", timeout)
    except (OSError, http.client.HTTPException) as exc:
        return None, f"GET /metrics failed ({_describe(exc)})"
    if status != 200:
        # llama.cpp's server answers 501 unless it was started with --metrics.
        return None, f"no metrics: GET /metrics answered {_error_text(status, body)}"
    snapshot = _snapshot(parse_prometheus(body.decode("utf-8", "replace")))
    if snapshot is None:
        known = ", ".join(sorted(SERVER_METRICS))
        return None, f"GET /metrics has none of the {known} metrics this client reads"
    return snapshot, None


class _MetricsSampler:
    """Reads /metrics every half second in a thread while the prompts run; keeps each gauge's peak."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelformats-metrics", daemon=True)

    def __enter__(self) -> _MetricsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(_PROBE_TIMEOUT_S + 1)

    def _run(self) -> None:
        while not self._stop.wait(_METRICS_INTERVAL_S):
            snapshot, _ = _read_metrics(self.server, 2.0)
            if snapshot is not None:
                self.observe(snapshot)

    def observe(self, snapshot: MetricsSnapshot) -> None:
        for name in _GAUGES:
            if name in snapshot.values:
                self.peak[name] = max(self.peak.get(name, -math.inf), snapshot.values[name])


# --- one streamed chat completion ------------------------------------------------------------------


class _StreamError(Exception):
    """A protocol problem in the event stream (turned into a per-request error)."""


@dataclass(kw_only=True, slots=True)
class _Progress:
    sent: float
    answer: list[str] = field(default_factory=list)
    first_token: float | None = None
    chunks: int = 0
    content_chunks: int = 0
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    done: bool = False


def _iter_events(response: http.client.HTTPResponse, guard: _Deadline) -> Iterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    while True:
        guard.arm_read()
        raw = response.readline(_MAX_LINE_BYTES + 1)
        if not raw:
            if data:
                yield "\n".join(data)
            return
        if len(raw) > _MAX_LINE_BYTES:
            raise _StreamError(f"an event-stream line is longer than {_MAX_LINE_BYTES} bytes")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # an SSE comment (keep-alive)
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))


def _apply_chunk(progress: _Progress, payload: str, now: float) -> None:
    if payload.strip() == "[DONE]":
        progress.done = True
        return
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise _StreamError(f"event {progress.chunks + 1} is not JSON: {payload[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise _StreamError(f"event {progress.chunks + 1} is not a JSON object: {payload[:80]!r}")
    progress.chunks += 1
    if "error" in chunk or chunk.get("object") == "error":
        raise _StreamError("the server sent an error event: " + _error_message(payload.encode()))
    if isinstance(chunk.get("usage"), dict):
        progress.usage = chunk["usage"]
    choices = chunk.get("choices")
    if choices is None and progress.usage is not None:
        return  # the usage-only chunk that include_usage adds at the end
    if not isinstance(choices, list):
        raise _StreamError(f"event {progress.chunks} has no 'choices' list: {payload[:80]!r}")
    for choice in choices:
        if not isinstance(choice, dict):
            raise _StreamError(f"event {progress.chunks} has a choice that is not an object")
        _apply_choice(progress, choice, now)


def _apply_choice(progress: _Progress, choice: dict[str, Any], now: float) -> None:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = {}
    text = delta.get("content")
    # Reasoning models stream their thinking first; it is output the caller waits for.
    thinking = delta.get("reasoning_content") or delta.get("reasoning")
    if text or thinking:
        progress.content_chunks += 1
        if progress.first_token is None:
            progress.first_token = now
    if isinstance(text, str):
        progress.answer.append(text)
    if choice.get("finish_reason"):
        progress.finish_reason = str(choice["finish_reason"])


def _result(prompt: str, progress: _Progress, *, status: int | None, error: str | None) -> RequestResult:
    now = time.monotonic()
    usage = progress.usage or {}
    completion = usage.get("completion_tokens")
    prompt_tokens = usage.get("prompt_tokens")
    tokens: int | None
    source: TokenSource | None
    if isinstance(completion, int):
        tokens, source = completion, "usage"
    elif progress.content_chunks:
        tokens, source = progress.content_chunks, "chunks"
    else:
        tokens, source = None, None
    return RequestResult(
        prompt=prompt,
        ok=error is None,
        answer="".join(progress.answer),
        error=error,
        http_status=status,
        ttft_s=None if progress.first_token is None else progress.first_token - progress.sent,
        latency_s=now - progress.sent if error is None else None,
        output_tokens=tokens,
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
        token_source=source,
        finish_reason=progress.finish_reason,
        chunks=progress.chunks,
    )


def _timed_out(timeout: float, status: int | None, progress: _Progress) -> str:
    where = f"after {progress.chunks} event(s)" if status is not None else "before any answer"
    return f"timed out after {timeout:g} s ({where})"


def stream_chat(
    base_url: str,
    prompt: str,
    *,
    model: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    api_key: str | None = None,
) -> RequestResult:
    """Send one streamed chat completion and measure it; every failure becomes `ok=False` with an error."""
    server = _parse_base_url(base_url, api_key)
    return _stream_chat(server, prompt, model=model, timeout=timeout, max_tokens=max_tokens)


def _stream_chat(server: _Server, prompt: str, *, model: str | None, timeout: float, max_tokens: int) -> RequestResult:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        # Greedy decoding: runs of the same server are comparable.
        "temperature": 0,
    }
    if model is not None:
        body["model"] = model
    payload = json.dumps(body).encode()
    headers = server.headers(**{"Content-Type": "application/json", "Accept": "text/event-stream"})
    conn = _connect(server, timeout)
    progress = _Progress(sent=time.monotonic())
    status: int | None = None
    error: str | None = None
    with _Deadline(conn, progress.sent + timeout) as guard:
        try:
            conn.request("POST", server.prefix + "/v1/chat/completions", body=payload, headers=headers)
            guard.arm_read()
            response = conn.getresponse()
            status = response.status
            _read_stream(response, guard, progress)
        except _StreamError as exc:
            error = str(exc)
        except (OSError, http.client.HTTPException) as exc:
            timed_out = guard.fired or isinstance(exc, TimeoutError)
            error = _timed_out(timeout, status, progress) if timed_out else f"connection failed: {_describe(exc)}"
        else:
            if guard.fired:
                # The watchdog's shutdown reads as an end of stream.
                error = _timed_out(timeout, status, progress)
            elif not progress.done:
                error = f"the stream ended without 'data: [DONE]' after {progress.chunks} event(s)"
    return _result(prompt, progress, status=status, error=error)


def _read_stream(response: http.client.HTTPResponse, guard: _Deadline, progress: _Progress) -> None:
    if response.status != 200:
        guard.arm_read()
        raise _StreamError(_error_text(response.status, response.read(4096)))
    kind = response.getheader("Content-Type", "")
    if not kind.startswith("text/event-stream"):
        raise _StreamError(f"the server did not stream: Content-Type is {kind or 'missing'!r}")
    for event in _iter_events(response, guard):
        _apply_chunk(progress, event, time.monotonic())
        if progress.done:
            return


# --- the whole run ---------------------------------------------------------------------------------


def run_smoke(
    base_url: str,
    *,
    model: str | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    started_at: float | None = None,
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT_S,
    gpu_memory: Callable[[], GpuMemory | None] | None = None,
    api_key: str | None = None,
) -> SmokeReport:
    """Wait for the server, stream each prompt in turn, read its metrics; report, never raise for the server.

    `timeout` bounds each request, `health_timeout` the readiness wait. `started_at` (epoch seconds,
    when the caller started the server) turns the readiness wait into a load time. `gpu_memory` is
    called once after the prompts, by callers that can see the GPUs (the Modal example).
    `api_key` is sent as a bearer token (servers started with --api-key).
    Raises InvalidRequestError only for bad arguments (URL, empty prompts, non-positive bounds).
    """
    server = _parse_base_url(base_url, api_key)
    if not prompts:
        raise InvalidRequestError("No prompts to send: pass at least one (the default is DEFAULT_PROMPTS).")
    for label, value in (
        ("timeout", timeout),
        ("health_timeout", health_timeout),
        ("max_tokens", max_tokens),
    ):
        if not value > 0:
            raise InvalidRequestError(f"{label} must be positive, got {value!r}; pass a number of seconds or tokens.")
    health = wait_for_health(server.url, timeout=health_timeout, api_key=api_key)
    warnings: list[str] = []
    if not health.ready:
        return SmokeReport(
            base_url=server.url, model=model, model_source="given" if model else None, health=health,
            results=tuple(RequestResult(prompt=p, ok=False, error="server not ready") for p in prompts),
            started_at=started_at, warnings=(f"the server never became ready: {health.last_error}",),
        )  # fmt: skip
    source: str | None = "given"
    if model is None:
        model, why = _discover_model(server, timeout)
        source = "/v1/models" if model else None
        if why:
            warnings.append(f"{why}; requests are sent without a model name")
    before, note = _read_metrics(server, _PROBE_TIMEOUT_S)
    sampler = _MetricsSampler(server)
    # A server without metrics is not polled while the prompts run.
    with sampler if before is not None else contextlib.nullcontext(sampler):
        results = [_stream_chat(server, p, model=model, timeout=timeout, max_tokens=max_tokens) for p in prompts]
    after = None
    if before is not None:
        sampler.observe(before)
        after, note = _read_metrics(server, _PROBE_TIMEOUT_S)
        if after is not None:
            sampler.observe(after)
    if any(r.ok and r.token_source == "chunks" for r in results):  # noqa: S105 - a label, not a password
        warnings.append("the server sent no usage; output tokens are counted as streamed content chunks")
    return SmokeReport(
        base_url=server.url,
        model=model,
        model_source=source,
        health=health,
        results=tuple(results),
        started_at=started_at,
        metrics_before=before,
        metrics_after=after,
        metrics_peak=dict(sampler.peak),
        metrics_note=note,
        gpu_memory=gpu_memory() if gpu_memory is not None else None,
        warnings=tuple(warnings),
    )


# --- presentation ----------------------------------------------------------------------------------


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


# --- CLI -------------------------------------------------------------------------------------------


def load_prompts(path: str | Path) -> tuple[str, ...]:
    """Prompts from a file: a `.json` list of strings, else one prompt per non-blank line (`#` comments)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"Cannot read prompts file {str(file)!r}: {exc}. Pass a readable text file."
        ) from None
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidRequestError(
                f'Prompts file {str(file)!r} is not valid JSON ({exc}); write a list of strings, e.g. ["Hi"].'
            ) from None
        if not isinstance(data, list) or not all(isinstance(p, str) and p.strip() for p in data):
            raise InvalidRequestError(
                f'Prompts file {str(file)!r} must hold a JSON list of non-empty strings, e.g. ["Hello!"].'
            )
        prompts = tuple(data)
    else:
        stripped = (line.strip() for line in text.splitlines())
        prompts = tuple(line for line in stripped if line and not line.startswith("#"))
    if not prompts:
        raise InvalidRequestError(f"Prompts file {str(file)!r} holds no prompts; write one prompt per line.")
    return prompts


def add_api_key_argument(parser: argparse.ArgumentParser) -> None:
    """`--api-key`, defaulting to $OPENAI_API_KEY (what OpenAI clients read)."""
    parser.add_argument(
        "--api-key",
        default=os.environ.get("OPENAI_API_KEY"),
        metavar="KEY",
        help="bearer token for a server started with --api-key (default: $OPENAI_API_KEY)",
    )


def add_smoke_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `modelformats smoke` on the CLI's subparsers (handler in `func`, returns the exit code)."""
    parser = subparsers.add_parser(
        "smoke",
        help="smoke-test and time a running OpenAI-compatible server (vLLM, llama.cpp)",
        description=(
            "Stream chat completions from a running server and report time to first token, latency, "
            "tokens/s and errors, plus the server's /metrics when it has them. Exit code 0 only when the "
            "server is ready and every request works."
        ),
    )
    parser.add_argument(
        "--base-url", required=True, help="server root, e.g. http://127.0.0.1:8000 (a /v1 suffix is ok)"
    )
    parser.add_argument("--model", help="model name to request (default: the first id of /v1/models)")
    add_api_key_argument(parser)
    parser.add_argument("--prompts", metavar="FILE", help="one prompt per line, or a .json list of strings")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"seconds allowed per request (default {DEFAULT_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.add_argument(
        "--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
        help=f"max tokens per answer (default {DEFAULT_MAX_TOKENS})",
    )  # fmt: skip
    parser.add_argument(
        "--started-at", type=float, metavar="EPOCH",
        help="when the server was started (Unix seconds, e.g. $(date +%%s)); reports its load time",
    )  # fmt: skip
    parser.add_argument(
        "--health-timeout", type=float, default=DEFAULT_HEALTH_TIMEOUT_S, metavar="S",
        help=f"seconds to wait for /health to answer 200 (default {DEFAULT_HEALTH_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.set_defaults(func=_smoke_command)


def _smoke_command(args: argparse.Namespace) -> int:
    try:
        prompts = load_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
        report = run_smoke(
            args.base_url,
            model=args.model,
            prompts=prompts,
            timeout=args.timeout,
            max_tokens=args.max_tokens,
            started_at=args.started_at,
            health_timeout=args.health_timeout,
            api_key=args.api_key,
        )
    except InvalidRequestError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI reports on stderr
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_report(report))  # noqa: T201 - CLI output
    return report.exit_code
