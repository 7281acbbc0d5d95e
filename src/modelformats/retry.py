"""Bounded retries with exponential backoff for every exchange with the Hub (metadata and data).

What is retried: HTTP 408, 429 and 5xx answers, and transport failures (refused or reset
connections, timeouts, a body cut short). What is not: 401/403/404 and every local error. A retry
waits `base_wait * 2**n` seconds (capped at `max_wait`), or the server's `Retry-After` when it sends
one (also capped); after `max_retries` failures in a row, or once `max_total_wait` seconds of waiting
are spent, the last error is raised as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["DEFAULT_RETRY", "RETRY_STATUSES", "RetryPolicy", "call_with_retries", "retry_wait", "status_of"]

T = TypeVar("T")

# The statuses huggingface_hub's own http_backoff retries (utils/_http.py): timeouts, rate limits, outages.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. The defaults ride out a minute of Hub trouble, no more."""

    max_retries: int = 5
    base_wait: float = 1.0
    max_wait: float = 8.0
    max_total_wait: float = 60.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        wait = retry_after if retry_after is not None else self.base_wait * 2**attempt
        return max(0.0, min(self.max_wait, wait))


DEFAULT_RETRY = RetryPolicy()


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (huggingface_hub's HfHubHTTPError has the response)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if headers is None:
        return None
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def retry_wait(exc: BaseException, attempt: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before retrying after `exc`, or None when `exc` is not worth a retry."""
    from httpx2 import TransportError
    from huggingface_hub import errors as hub

    status = status_of(exc)
    if status is not None:
        if status not in RETRY_STATUSES:
            return None
        response: Any = getattr(exc, "response", None)
        return policy.backoff(attempt, _retry_after(getattr(response, "headers", None)))
    if isinstance(exc, hub.HfHubHTTPError | TransportError | ConnectionError | TimeoutError):
        return policy.backoff(attempt)
    return None


def call_with_retries(
    fn: Callable[[], T], policy: RetryPolicy = DEFAULT_RETRY, *, sleep: Callable[[float], None] = time.sleep
) -> T:
    """`fn()`, retried on transient Hub failures as `policy` allows; the last failure is raised."""
    waited = 0.0
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            wait = retry_wait(exc, attempt, policy)
            if wait is None or attempt >= policy.max_retries or waited + wait > policy.max_total_wait:
                raise
        sleep(wait)
        waited += wait
        attempt += 1
