"""The whole smoke run: wait for readiness, send each prompt, sample metrics, report."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from modelformats.errors import InvalidRequestError
from modelformats.smoke.client import _discover_model, _parse_base_url, _Server, auth_failure, wait_for_health
from modelformats.smoke.constants import (
    _PROBE_TIMEOUT_S,
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPTS,
    DEFAULT_TIMEOUT_S,
)
from modelformats.smoke.metrics import MetricsSampler, _read_metrics
from modelformats.smoke.report import GpuMemory, RequestResult, SmokeReport
from modelformats.smoke.stream import _stream_chat


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

    def refused(answer: str, sent: Sequence[RequestResult] = ()) -> SmokeReport:
        """Stop at the first answer that says the key is missing or wrong: waiting or retrying cannot fix it.
        The prompts not sent say so; the warning names the fix."""
        unsent = (RequestResult(prompt=p, ok=False, error=f"not sent: {answer}") for p in prompts[len(sent) :])
        return SmokeReport(
            base_url=server.url, model=model, model_source="given" if model else None, health=health,
            results=(*sent, *unsent), started_at=started_at,
            warnings=(auth_failure(answer, api_key_given=bool(api_key)) or answer,),
        )  # fmt: skip

    if not health.ready:
        if health.last_error and auth_failure(health.last_error, api_key_given=bool(api_key)):
            return refused(health.last_error)
        return SmokeReport(
            base_url=server.url, model=model, model_source="given" if model else None, health=health,
            results=tuple(RequestResult(prompt=p, ok=False, error="server not ready") for p in prompts),
            started_at=started_at, warnings=(f"the server never became ready: {health.last_error}",),
        )  # fmt: skip
    source: str | None = "given"
    if model is None:
        model, why = _discover_model(server, timeout)
        if why and auth_failure(why, api_key_given=bool(api_key)):
            return refused(why)
        source = "/v1/models" if model else None
        if why:
            warnings.append(f"{why}; requests are sent without a model name")
    before, note = _read_metrics(server, _PROBE_TIMEOUT_S)
    sampler = MetricsSampler(server.url, api_key=server.api_key)
    # A server without metrics is not polled while the prompts run.
    with sampler if before is not None else contextlib.nullcontext(sampler):
        results, denied = _send(server, prompts, model=model, timeout=timeout, max_tokens=max_tokens)
    if denied is not None:
        return refused(denied, results)
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


def _send(
    server: _Server, prompts: Sequence[str], *, model: str | None, timeout: float, max_tokens: int
) -> tuple[list[RequestResult], str | None]:
    """Each prompt in turn; stops at the first answer refusing the key, returned as the second value."""
    results: list[RequestResult] = []
    for prompt in prompts:
        results.append(_stream_chat(server, prompt, model=model, timeout=timeout, max_tokens=max_tokens))
        if auth_failure(results[-1].error, api_key_given=bool(server.api_key)):
            return results, results[-1].error
    return results, None
