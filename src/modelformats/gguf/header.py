"""A bounded GGUF header reader: metadata and tensor infos only, from a local file or over HTTP.

A GGUF file starts with its header (magic, version, counts, key/value metadata, tensor infos) and
then the tensor data. The header of a Llama-3 model is ~7.25 MB, nearly all of it the 128,256-token
list and ~280k merges; `gguf.GGUFReader` materialises every one of them (about 7 s and 650 MiB on a
2-core machine for the target's header). This reader walks those arrays without decoding them
(keeping only their type and length), reads the rest into plain Python values, and never reads
tensor data: on HTTP it asks for byte ranges (512 KiB, then 2 MiB at a time), so the bytes fetched
are the header plus at most one chunk.

Everything a hostile or truncated file could make unbounded is limited (`HeaderLimits`): header
size, key/value and tensor counts, string and array lengths, array nesting, tensor dimensions.
Any violation raises `GGUFHeaderError` with the byte offset; nothing else escapes. The bytes come
from a `ByteSource` (`gguf.bytesource`: a local file, or HTTP Range over huggingface_hub's client).

This module holds the entry points (a path, a ByteSource, a Hub file, a URL); the header as a value is
`gguf.header_record`, the bounded reads `gguf._cursor`, the layout's parser `gguf._parse`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from modelformats.gguf._parse import parse_header
from modelformats.gguf.bytesource import ByteSource, HttpRangeSource, LocalFileSource
from modelformats.gguf.header_record import HEADER_SCHEMA, GGUFHeader, HeaderLimits
from modelformats.retry import DEFAULT_RETRY, RetryPolicy

__all__ = [
    "HEADER_SCHEMA",
    "ByteSource",
    "GGUFHeader",
    "HeaderLimits",
    "HttpRangeSource",
    "LocalFileSource",
    "read_gguf_header",
    "read_header",
    "read_hub_gguf_header",
    "read_remote_header_dict",
]


def read_gguf_header(
    source: ByteSource | str | os.PathLike[str],
    *,
    limits: HeaderLimits | None = None,
    check_extent: bool = True,
) -> GGUFHeader:
    """Read the header of a GGUF file (a path or any ByteSource), bounded by `limits`.

    When the file's length is known (a local file; over HTTP, once Content-Range tells it) and
    `check_extent`, tensor data that would end past it is refused; pass False to read a header cut
    from its file on purpose.
    """
    src: ByteSource = LocalFileSource(source) if isinstance(source, (str, os.PathLike)) else source
    try:
        return parse_header(src, limits or HeaderLimits(), check_extent=check_extent)
    finally:
        close = getattr(src, "close", None)
        if callable(close):
            close()  # an HTTP source hangs up its open stream: the tensor data is not wanted


def read_header(
    path: str | os.PathLike[str], *, limits: HeaderLimits | None = None, check_extent: bool = True
) -> GGUFHeader:
    """Read the header of a local GGUF file (see `read_gguf_header` for `check_extent`)."""
    return read_gguf_header(LocalFileSource(path), limits=limits, check_extent=check_extent)


def read_hub_gguf_header(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    limits: HeaderLimits | None = None,
) -> GGUFHeader:
    """Read the header of a GGUF file in a Hub repo with Range requests.

    The token comes from huggingface_hub's usual places (HF_TOKEN, `hf auth login`) unless given.
    """
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils._headers import build_hf_headers

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    header = read_gguf_header(HttpRangeSource(url, headers=build_hf_headers(token=token)), limits=limits)
    return _with_source(header, f"{repo_id}/{filename}")


def read_remote_header_dict(
    url: str, headers: Mapping[str, str], *, retry: RetryPolicy = DEFAULT_RETRY
) -> dict[str, Any]:
    """`HubSource`'s header reader: the header at `url` (auth in `headers`) as `GGUFHeader.to_dict()`."""
    return read_gguf_header(HttpRangeSource(url, headers=headers, retry=retry)).to_dict()


def _with_source(header: GGUFHeader, source: str) -> GGUFHeader:
    return replace(header, source=source)
