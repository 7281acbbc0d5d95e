"""Random access to the bytes of one GGUF file: on disk (positioned reads) or over HTTP Range.

`gguf.header` reads a header through a `ByteSource`; this module is how those bytes are fetched —
bounded requests, one kept-open stream for long headers, retries as the `RetryPolicy` allows, and
every failure as a `GGUFHeaderError` naming the byte offset and the fix.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from modelformats.errors import GGUFHeaderError
from modelformats.retry import DEFAULT_RETRY, RETRY_STATUSES, RetryPolicy

__all__ = ["ByteSource", "HttpRangeSource", "LocalFileSource"]

T = TypeVar("T")


class ByteSource(Protocol):
    """Random access to the bytes of one file."""

    name: str

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; fewer only at the end of the file."""
        ...


class LocalFileSource:
    """A file on disk, read with positioned reads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(path)

    @property
    def size(self) -> int | None:
        """The file's length (for the tensor-data extent check); None when it cannot be read."""
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def read(self, offset: int, size: int) -> bytes:
        import stat

        try:
            # stat never blocks; opening a FIFO would wait for a writer for ever.
            mode = self.path.stat().st_mode
            if not stat.S_ISREG(mode):
                kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
                raise GGUFHeaderError(self.name, offset, f"it is {kind}, not a regular file; name a .gguf file")
            with self.path.open("rb") as f:
                f.seek(offset)
                return f.read(size)
        except OSError as exc:
            raise GGUFHeaderError(self.name, offset, f"cannot read the file ({exc.strerror or exc})") from None


class HttpRangeSource:
    """A remote file read with HTTP Range requests, over huggingface_hub's HTTP client.

    The first read is one bounded Range request (512 KiB holds most headers). When the header is
    longer (a 128k-token vocabulary makes ~7 MB), the next read opens ONE more Range request up to
    `max_span` bytes and keeps it open: later sequential reads (and skips) are served from that same
    stream, and `close()` hangs up once the header is read. So a header costs at most 2 requests, and
    the bytes transferred past it are what is in flight when the reader hangs up.

    `headers` carry authentication (build them with `huggingface_hub.utils.build_hf_headers`); they are
    never printed. Redirects are followed (the Hub redirects to its CDN; the client drops the
    Authorization header on a cross-origin redirect).
    """

    # Skips shorter than this are read through on the open stream rather than starting a new request.
    _SKIP_ON_STREAM = 16 * 1024 * 1024

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        client: Any = None,
        max_span: int = 128 * 1024 * 1024,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.url = url
        self._retry = retry
        self.name = url
        self._headers = dict(headers or {})
        self._client = client
        self._max_span = max_span
        # The file's length, once an answer told it (Content-Range "bytes a-b/total", or a whole-file 200).
        self.size: int | None = None
        self.requests = 0
        self._stream: Any = None  # (context manager, byte iterator) of the open streaming request
        self._stream_pos = 0
        self._pending = b""

    def read(self, offset: int, size: int) -> bytes:
        if self._stream is not None and self._stream_pos <= offset <= self._stream_pos + self._SKIP_ON_STREAM:
            self._pull(offset - self._stream_pos)  # read through a skip on the open stream
            return self._pull(size)
        self.close()
        if self.requests == 0:
            return self._bounded(offset, size)
        self._open(offset)
        return self._pull(size)

    def close(self) -> None:
        """Hang up an open streaming request (the rest of its body is not wanted)."""
        if self._stream is not None:
            context, _ = self._stream
            self._stream = None
            self._pending = b""
            with contextlib.suppress(Exception):
                context.__exit__(None, None, None)

    def _request(self, offset: int, end: int) -> Any:
        # huggingface_hub (and its HTTP client) is loaded only for remote reads.
        from huggingface_hub import constants, get_session

        client = self._client if self._client is not None else get_session()
        headers = {**self._headers, "Range": f"bytes={offset}-{end}", "Accept-Encoding": "identity"}
        self.requests += 1
        return client.stream(
            "GET", self.url, headers=headers, follow_redirects=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
        )

    def _check(self, response: Any, offset: int) -> bool:
        """Whether the answer has a body to read (False: the file ends before `offset`)."""
        status = response.status_code
        if status == 416:  # Range Not Satisfiable: the file ends before `offset`
            return False
        if status == 200 and offset != 0:
            raise GGUFHeaderError(
                self.name, offset, "the server ignores HTTP Range requests; download the file and read it locally"
            )
        if status in RETRY_STATUSES:
            raise _RetryableStatusError(status, response.headers.get("Retry-After"))
        if status not in (200, 206):
            raise GGUFHeaderError(
                self.name,
                offset,
                f"HTTP {status} from the server (check the repo id, revision and token: HF_TOKEN or `hf auth login`)",
            )
        if status == 206:
            _check_content_range(self.name, offset, response.headers.get("Content-Range"))
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            self.size = int(total) if total.isdigit() else self.size
        elif response.headers.get("Content-Length", "").isdigit():
            self.size = int(response.headers["Content-Length"])
        return True

    def _retrying(self, offset: int, attempt: Callable[[], T]) -> T:
        """`attempt()`, retried on 408/429/5xx answers and network errors as the RetryPolicy allows."""
        waited = 0.0
        for n in itertools.count():
            try:
                return attempt()
            except GGUFHeaderError:
                raise
            except _RetryableStatusError as exc:
                why, after = f"HTTP {exc.status}", exc.retry_after
            except Exception as exc:  # network errors of whichever HTTP client is injected
                why, after = f"{type(exc).__name__}: {exc}", None
            wait = self._retry.backoff(n, float(after) if after is not None and after.isdigit() else None)
            if n >= self._retry.max_retries or waited + wait > self._retry.max_total_wait:
                raise GGUFHeaderError(self.name, offset, f"HTTP request failed ({why}) after {n + 1} tries")
            time.sleep(wait)
            waited += wait
        raise AssertionError("unreachable")  # itertools.count() never ends

    def _bounded(self, offset: int, size: int) -> bytes:
        return self._retrying(offset, lambda: self._bounded_once(offset, size))

    def _bounded_once(self, offset: int, size: int) -> bytes:
        with self._request(offset, offset + size - 1) as response:
            if not self._check(response, offset):
                return b""
            body = bytearray()
            # A 200 answer to offset 0 is the whole file: take the first `size` bytes and hang up.
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= size:
                    break
            return bytes(body[:size])

    def _open(self, offset: int) -> None:
        self._retrying(offset, lambda: self._open_once(offset))

    def _open_once(self, offset: int) -> None:
        context = self._request(offset, offset + self._max_span - 1)
        try:
            response = context.__enter__()
            if not self._check(response, offset):
                context.__exit__(None, None, None)
                self._stream, self._stream_pos, self._pending = None, offset, b""
                return
        except BaseException:
            with contextlib.suppress(Exception):
                context.__exit__(None, None, None)
            raise
        self._stream = (context, response.iter_bytes())
        self._stream_pos = offset
        self._pending = b""

    def _pull(self, size: int) -> bytes:
        """Up to `size` bytes from the open stream (fewer at the end of the file)."""
        if self._stream is None:
            return b""
        _, chunks = self._stream
        out = bytearray(self._pending)
        try:
            while len(out) < size:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                out += chunk
        except Exception as exc:
            self.close()
            raise GGUFHeaderError(
                self.name, self._stream_pos, f"HTTP read failed ({type(exc).__name__}: {exc})"
            ) from None
        self._pending = bytes(out[size:])
        self._stream_pos += min(size, len(out))
        return bytes(out[:size])


class _RetryableStatusError(Exception):
    """An answer worth retrying (408, 429, 5xx), with its Retry-After header."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def _check_content_range(name: str, offset: int, value: str | None) -> None:
    if value is None:
        return
    unit, _, rest = value.partition(" ")
    start = rest.partition("-")[0]
    if unit.lower() != "bytes" or not start.isdigit() or int(start) != offset:
        raise GGUFHeaderError(name, offset, f"the server answered with Content-Range {value!r}")
