"""HTTP with deadlines against an OpenAI-compatible server: readiness and one streamed chat completion."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from modelformats.errors import InvalidRequestError
from modelformats.smoke.constants import (
    _HEALTH_INTERVAL_S,
    _MAX_BODY_BYTES,
    _PROBE_TIMEOUT_S,
    _SHOWN_ERROR_CHARS,
    DEFAULT_HEALTH_TIMEOUT_S,
)
from modelformats.smoke.report import HealthResult


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
    try:
        parts = urlsplit(base_url.strip())
    except ValueError as exc:  # e.g. "http://[x": an unterminated IPv6 host
        raise InvalidRequestError(
            f"Invalid --base-url {base_url!r}: {exc}. Pass the server root, e.g. http://127.0.0.1:8000."
        ) from None
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


def auth_failure(answer: str | None, *, api_key_given: bool) -> str | None:
    """The authentication error, with its fix, when `answer` is an HTTP 401/403 (else None).

    vLLM and llama-server started with --api-key answer 401 to a missing or wrong bearer token; Modal's
    proxy auth answers 401/403 as well. Neither fixes itself by waiting, so callers stop at once.
    """
    match = re.search(r"\bHTTP (401|403)\b", answer or "")
    if match is None:
        return None
    if api_key_given:
        fix = (
            "the server refused the API key sent (--api-key / OPENAI_API_KEY): pass the key the server was "
            "started with (vLLM/llama-server --api-key, or the Modal secret holding it)"
        )
    else:
        fix = "the server demands an API key and none was sent: pass --api-key KEY or set OPENAI_API_KEY"
    return f"authentication failed ({answer}): {fix}."


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
