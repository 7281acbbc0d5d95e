"""The load test: a bounded sweep of concurrency levels against an OpenAI-compatible server.

At each level `c`, `c` workers send streamed chat completions back to back until the level's
request count is reached; every request goes through `modelformats.smoke.stream_chat`, so each is
bounded by its own deadline and every failure is a recorded error, never an exception. `/metrics`
is read before and after each level and sampled in between (KV-cache use, running/waiting
requests). A 401/403 on the warm-up request stops the run at once with `ServerAuthError`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from modelformats.bench.report import BenchReport, LevelResult
from modelformats.errors import InvalidRequestError, ServerAuthError
from modelformats.smoke import (
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_PROMPTS,
    DEFAULT_TIMEOUT_S,
    MetricsSampler,
    MetricsSnapshot,
    RequestResult,
    discover_model,
    read_metrics,
    stream_chat,
    wait_for_health,
)

__all__ = ["DEFAULT_BENCH_MAX_TOKENS", "DEFAULT_LEVELS", "concurrency_levels", "run_bench"]

DEFAULT_BENCH_MAX_TOKENS = 64
# Without a plan's max_num_seqs: 1, 2, 4, 8.
DEFAULT_LEVELS = (1, 2, 4, 8)
_METRICS_TIMEOUT_S = 5.0
_COUNTERS = ("prompt_tokens_total", "generation_tokens_total")
_AUTH_STATUSES = (401, 403)


def concurrency_levels(max_num_seqs: int) -> tuple[int, ...]:
    """1, 2, 4, ... doubling up to `max_num_seqs`, which is always the last level (e.g. 6 -> 1, 2, 4, 6)."""
    if max_num_seqs < 1:
        raise InvalidRequestError(f"max_num_seqs must be at least 1, got {max_num_seqs}.")
    levels = [2**i for i in range(int(math.log2(max_num_seqs)) + 1)]
    if levels[-1] != max_num_seqs:
        levels.append(max_num_seqs)
    return tuple(levels)


def _delta(before: MetricsSnapshot | None, after: MetricsSnapshot | None) -> dict[str, float]:
    if before is None or after is None:
        return {}
    return {k: after.values[k] - before.values[k] for k in _COUNTERS if k in before.values and k in after.values}


def _check_arguments(levels: Sequence[int], requests_per_level: int | None, **bounds: float) -> None:
    if not levels or any(c < 1 for c in levels):
        raise InvalidRequestError(
            f"Concurrency levels must be positive integers, got {list(levels)}; pass e.g. --concurrency 1,2,4."
        )
    if requests_per_level is not None and requests_per_level < 1:
        raise InvalidRequestError(f"requests per level must be at least 1, got {requests_per_level}.")
    for label, value in bounds.items():
        if not value > 0:
            raise InvalidRequestError(f"{label} must be positive, got {value!r}; pass a number of seconds or tokens.")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Client:
    """What every request of the run shares."""

    base_url: str
    model: str | None
    prompts: tuple[str, ...]
    timeout: float
    max_tokens: int
    api_key: str | None = field(default=None, repr=False)

    def send(self, prompt: str) -> RequestResult:
        return stream_chat(
            self.base_url, prompt, model=self.model, timeout=self.timeout, max_tokens=self.max_tokens,
            api_key=self.api_key,
        )  # fmt: skip

    def refused(self, status: int | None, detail: str | None) -> None:
        """Raise `ServerAuthError` for a 401/403: a wrong key does not get better by retrying."""
        if status in _AUTH_STATUSES:
            raise ServerAuthError(self.base_url, status or 0, detail or "", key_given=self.api_key is not None)

    def metrics(self) -> tuple[MetricsSnapshot | None, str | None]:
        return read_metrics(self.base_url, timeout=_METRICS_TIMEOUT_S, api_key=self.api_key)


def _status_in(text: str | None) -> int | None:
    """401/403 when `text` reports that answer ("HTTP 401: ..." or "... answered HTTP 401: ...")."""
    return next((s for s in _AUTH_STATUSES if f"HTTP {s}:" in (text or "")), None)


def _run_requests(client: _Client, concurrency: int, count: int) -> tuple[list[RequestResult], float]:
    """`count` requests by `concurrency` workers sending back to back; (results, wall seconds)."""
    queue = itertools.cycle(client.prompts)
    lock = threading.Lock()
    left = [count]

    def next_prompt() -> str | None:
        with lock:
            if left[0] == 0:
                return None
            left[0] -= 1
            return next(queue)

    def worker() -> list[RequestResult]:
        done: list[RequestResult] = []
        while (prompt := next_prompt()) is not None:
            done.append(client.send(prompt))
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="modelformats-bench") as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        results = [r for f in futures for r in f.result()]
    return results, time.monotonic() - started


def _run_level(
    client: _Client, concurrency: int, count: int, price_per_hour: float | None
) -> tuple[LevelResult, MetricsSnapshot | None, str | None]:
    """One level with /metrics read before, sampled during and read after (when the server has them)."""
    before, note = client.metrics()
    sampler = MetricsSampler(client.base_url, api_key=client.api_key, timeout=_METRICS_TIMEOUT_S)
    # A server without metrics is not polled.
    with sampler if before is not None else contextlib.nullcontext(sampler):
        results, wall = _run_requests(client, concurrency, count)
    after, after_note = client.metrics()
    for snapshot in (before, after):
        if snapshot is not None:
            sampler.observe(snapshot)
    for r in results:
        client.refused(r.http_status, r.error)
    level = LevelResult(
        concurrency=concurrency,
        results=tuple(results),
        wall_s=wall,
        metrics_peak=dict(sampler.peak),
        metrics_delta=_delta(before, after),
        price_per_hour=price_per_hour,
    )
    return level, after, note or after_note


def _prepare(client: _Client, health_timeout: float) -> tuple[_Client, str | None, list[str]]:
    """Readiness, the model name and one uncounted warm-up; (client, why not ready, warnings)."""
    health = wait_for_health(client.base_url, timeout=health_timeout, api_key=client.api_key)
    client.refused(_status_in(health.last_error), health.last_error)
    if not health.ready:
        return client, f"the server never became ready: {health.last_error}", []
    warnings: list[str] = []
    if client.model is None:
        model, why = discover_model(client.base_url, timeout=min(client.timeout, 10.0), api_key=client.api_key)
        client.refused(_status_in(why), why)
        if why:
            warnings.append(f"{why}; requests are sent without a model name")
        client = replace(client, model=model)
    # The warm-up loads caches and checks the key before any level runs.
    warm = client.send(client.prompts[0])
    client.refused(warm.http_status, warm.error)
    if not warm.ok:
        warnings.append(f"the warm-up request failed: {warm.error}")
    return client, None, warnings


def run_bench(
    base_url: str,
    *,
    levels: Sequence[int] = DEFAULT_LEVELS,
    requests_per_level: int | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    model: str | None = None,
    max_tokens: int = DEFAULT_BENCH_MAX_TOKENS,
    timeout: float = DEFAULT_TIMEOUT_S,
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT_S,
    api_key: str | None = None,
    price_per_hour: float | None = None,
    price_source: str | None = None,
) -> BenchReport:
    """Sweep `levels` (each a number of requests in flight); report, never raise for a misbehaving server.

    Each level sends `requests_per_level` requests (default: 4 per worker, at least 8). Every wait
    is bounded: the readiness wait by `health_timeout`, each request by `timeout`, so a level takes
    at most ceil(requests / concurrency) x timeout. Raises `InvalidRequestError` for bad arguments
    and `ServerAuthError` when the server answers 401/403 (a wrong or missing `api_key`).
    """
    _check_arguments(levels, requests_per_level, timeout=timeout, health_timeout=health_timeout, max_tokens=max_tokens)
    if not prompts:
        raise InvalidRequestError("No prompts to send: pass at least one (the default is DEFAULT_PROMPTS).")
    client = _Client(
        base_url=base_url, model=model, prompts=tuple(prompts), timeout=timeout, max_tokens=max_tokens,
        api_key=api_key or None,
    )  # fmt: skip
    client, stopped, warnings = _prepare(client, health_timeout)
    done: list[LevelResult] = []
    engine: str | None = None
    note: str | None = None
    for concurrency in sorted(set(levels)) if stopped is None else ():
        level, after, note = _run_level(
            client, concurrency, requests_per_level or max(8, 4 * concurrency), price_per_hour
        )
        engine = after.engine if after is not None else engine
        done.append(level)
        if not level.ok_results:
            stopped = f"every request at concurrency {concurrency} failed; higher levels were not run"
            break
    if any(r.token_source == "chunks" for lv in done for r in lv.ok_results):  # noqa: S105 - a label
        warnings.append("the server sent no usage; output tokens are counted as streamed content chunks")
    return BenchReport(
        base_url=base_url,
        model=client.model,
        levels=tuple(done),
        max_tokens=max_tokens,
        prompts=tuple(prompts),
        price_per_hour=price_per_hour,
        price_source=price_source,
        metrics_engine=engine,
        metrics_note=None if engine else note,
        stopped=stopped,
        warnings=tuple(warnings),
    )
