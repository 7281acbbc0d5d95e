"""Sequential, bounded reads over a `ByteSource` for the header parser: buffered, fetched in chunks (512 KiB,
then 2 MiB), with skips that fetch nothing, and every failure a `GGUFHeaderError` at its byte offset."""

from __future__ import annotations

import struct
from typing import Any

from modelformats.errors import GGUFHeaderError
from modelformats.gguf.bytesource import ByteSource
from modelformats.gguf.header_record import HeaderLimits

__all__ = ["Cursor"]

# First read covers most non-vocabulary headers (1,000 tensor infos are ~60 KB); later reads are
# 2 MiB (huggingface.js reads 2 MB chunks), so at most one chunk is read past the header.
_FIRST_CHUNK = 512 * 1024
_CHUNK = 2 * 1024 * 1024


class Cursor:
    """Sequential reads over a ByteSource, buffered, with skips that fetch nothing."""

    def __init__(self, source: ByteSource, limits: HeaderLimits) -> None:
        self.source = source
        self.limits = limits
        self.pos = 0
        self.buf = b""
        self.buf_start = 0
        self.bytes_read = 0
        self.chunk = _FIRST_CHUNK
        self.order = "<"

    def fail(self, problem: str, offset: int | None = None) -> GGUFHeaderError:
        return GGUFHeaderError(self.source.name, self.pos if offset is None else offset, problem)

    def ensure(self, n: int, what: str) -> int:
        """Make [pos, pos + n) available; return its index in `buf`."""
        end = self.pos + n
        if end > self.limits.max_header_bytes:
            raise self.fail(
                f"the header runs past {self.limits.max_header_bytes} bytes while reading {what} "
                "(HeaderLimits.max_header_bytes); a real header is a few MB"
            )
        start_in_buf = self.pos - self.buf_start
        if start_in_buf >= 0 and end <= self.buf_start + len(self.buf):
            return start_in_buf
        keep = self.buf[start_in_buf:] if 0 <= start_in_buf < len(self.buf) else b""
        fetch_from = self.pos + len(keep)
        # Never ask for bytes past the header limit; `end` is within it, so this is at least n - len(keep).
        want = min(max(n - len(keep), self.chunk), self.limits.max_header_bytes - fetch_from)
        data = self.source.read(fetch_from, want)
        self.bytes_read += len(data)
        self.chunk = _CHUNK
        self.buf = keep + data
        self.buf_start = self.pos
        if len(self.buf) < n:
            raise self.fail(
                f"the file ends at byte {self.buf_start + len(self.buf)} while reading {what} "
                f"({n} bytes needed): truncated or not a complete GGUF"
            )
        return 0

    def take(self, n: int, what: str) -> bytes:
        i = self.ensure(n, what)
        self.pos += n
        return self.buf[i : i + n]

    def unpack(self, code: str, size: int, what: str) -> Any:
        i = self.ensure(size, what)
        self.pos += size
        return struct.unpack_from(self.order + code, self.buf, i)[0]

    def u32(self, what: str) -> int:
        value: int = self.unpack("I", 4, what)
        return value

    def u64(self, what: str) -> int:
        value: int = self.unpack("Q", 8, what)
        return value

    def skip(self, n: int, what: str) -> None:
        """Advance past `n` bytes without fetching them (a later read fetches from the new position)."""
        if self.pos + n > self.limits.max_header_bytes:
            raise self.fail(f"{what} runs past {self.limits.max_header_bytes} bytes (HeaderLimits.max_header_bytes)")
        self.pos += n

    def string_length(self, what: str) -> int:
        start = self.pos
        n = self.u64(f"the length of {what}")
        if n > self.limits.max_string_bytes:
            raise self.fail(
                f"{what} declares {n} bytes; the limit is {self.limits.max_string_bytes} "
                "(HeaderLimits.max_string_bytes)",
                start,
            )
        return n

    def string(self, what: str) -> str:
        n = self.string_length(what)
        return self.text(n, what)

    def text(self, n: int, what: str) -> str:
        """The next `n` bytes as UTF-8; anything else is refused (it would be silently replaced by U+FFFD)."""
        at = self.pos
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(
                f"{what} is not valid UTF-8 (byte {raw[exc.start]:#04x} at byte {at + exc.start}); GGUF strings "
                "are UTF-8, so the file is corrupt or not written by a GGUF writer",
                at + exc.start,
            ) from None

    def skip_strings(self, count: int, what: str) -> None:
        """Walk `count` length-prefixed strings, decoding none of them."""
        code = self.order + "Q"
        max_len = self.limits.max_string_bytes
        while count > 0:
            i = self.ensure(8, f"the length of an item of {what}")
            buf, end = self.buf, len(self.buf)
            # Tight loop over the buffered bytes; refill only when an item crosses the buffer's end.
            while count > 0 and i + 8 <= end:
                (n,) = struct.unpack_from(code, buf, i)
                if n > max_len:
                    raise self.fail(
                        f"an item of {what} declares {n} bytes; the limit is {max_len} (HeaderLimits.max_string_bytes)",
                        self.buf_start + i,
                    )
                if i + 8 + n > end:
                    break
                i += 8 + n
                count -= 1
            self.pos = self.buf_start + i
            if count > 0 and i + 8 <= end:
                # The item's bytes straddle the buffer: skip them without fetching.
                n = self.string_length(f"an item of {what}")
                self.skip(n, f"an item of {what}")
                count -= 1
