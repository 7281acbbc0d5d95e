"""The smoke run's records: health, one request, metrics, GPU memory and the report (JSON)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelformats.smoke.constants import _COUNTERS, TokenSource


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
