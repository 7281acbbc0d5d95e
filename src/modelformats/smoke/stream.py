"""One streamed chat completion (SSE), timed: time to first token, latency, tokens/s."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from modelformats.smoke.client import (
    _connect,
    _Deadline,
    _describe,
    _error_message,
    _error_text,
    _parse_base_url,
    _Server,
)
from modelformats.smoke.constants import _MAX_LINE_BYTES, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT_S, TokenSource
from modelformats.smoke.report import RequestResult


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
