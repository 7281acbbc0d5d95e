"""The server's Prometheus `/metrics`: parsed, reduced to our numbers, sampled while prompts run."""

from __future__ import annotations

import http.client
import math
import threading
from collections.abc import Mapping

from modelformats.smoke.client import _describe, _error_text, _get, _parse_base_url, _Server
from modelformats.smoke.constants import _GAUGES, _METRICS_INTERVAL_S, _PROBE_TIMEOUT_S, SERVER_METRICS
from modelformats.smoke.report import MetricsSnapshot


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


class MetricsSampler:
    """Reads /metrics every half second in a thread while requests run; keeps each gauge's peak.

    Shared by `run_smoke` and `modelformats bench`: `with MetricsSampler(url) as s: ...`, then `s.peak`.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 2.0) -> None:
        self.server = _parse_base_url(base_url, api_key)
        self.timeout = timeout
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelformats-metrics", daemon=True)

    def __enter__(self) -> MetricsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(max(self.timeout, _PROBE_TIMEOUT_S) + 1)

    def _run(self) -> None:
        while not self._stop.wait(_METRICS_INTERVAL_S):
            snapshot, _ = _read_metrics(self.server, self.timeout)
            if snapshot is not None:
                self.observe(snapshot)

    def observe(self, snapshot: MetricsSnapshot) -> None:
        for name in _GAUGES:
            if name in snapshot.values:
                self.peak[name] = max(self.peak.get(name, -math.inf), snapshot.values[name])
