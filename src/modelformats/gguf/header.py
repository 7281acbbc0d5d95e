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
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from modelformats.errors import GGUFHeaderError
from modelformats.gguf._vocab import FILE_TYPES, GGML_TYPES, GGUF_PACKAGE_VERSION, VALUE_TYPES
from modelformats.gguf.bytesource import ByteSource, HttpRangeSource, LocalFileSource
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

HEADER_SCHEMA = "modelformats-gguf-header/1"
GGUF_MAGIC = b"GGUF"
# gguf-py reads versions 2 and 3 (READER_SUPPORTED_VERSIONS); version 1 used 32-bit lengths.
SUPPORTED_VERSIONS = (2, 3)
GGUF_DEFAULT_ALIGNMENT = 32

# Metadata value types: name -> (struct code, size in bytes). STRING and ARRAY are read separately.
_SCALAR_CODES: Mapping[str, tuple[str, int]] = {
    "UINT8": ("B", 1),
    "INT8": ("b", 1),
    "UINT16": ("H", 2),
    "INT16": ("h", 2),
    "UINT32": ("I", 4),
    "INT32": ("i", 4),
    "FLOAT32": ("f", 4),
    "BOOL": ("?", 1),
    "UINT64": ("Q", 8),
    "INT64": ("q", 8),
    "FLOAT64": ("d", 8),
}
_VALUE_TYPE_NAMES: Mapping[int, str] = {v: k for k, v in VALUE_TYPES.items()}
_GGML_TYPE_NAMES: Mapping[int, str] = {v[0]: k for k, v in GGML_TYPES.items()}
_FILE_TYPE_NAMES: Mapping[int, str] = {v: k for k, v in FILE_TYPES.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class HeaderLimits:
    """Bounds on what a header may declare. Defaults fit every real model with room to spare."""

    # The target's header is 7.25 MB; Gemma-3's 262k vocabulary makes ~11 MB.
    max_header_bytes: int = 128 * 1024 * 1024
    # huggingface.js caps key/value pairs at 100,000; real files have 20-60.
    max_kv_count: int = 100_000
    # DeepSeek-R1 shards carry ~1,000 tensors each; a dense 70B has 723.
    max_tensor_count: int = 200_000
    # One string (a key, a token, a chat template); templates run to tens of KB.
    max_string_bytes: int = 4 * 1024 * 1024
    # Token lists run to ~262k entries, merges to ~450k.
    max_array_length: int = 16 * 1024 * 1024
    max_array_depth: int = 3
    # ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
    max_tensor_dims: int = 4
    # ggml tensor names are at most 64 bytes (GGML_MAX_NAME).
    max_tensor_name_bytes: int = 256
    # Elements of one tensor: the largest real ones hold ~3.8e9 (DeepSeek-V3's merged experts, 256 x 2048 x
    # 7168; Llama-3.1-405B's embedding 128,256 x 16,384 = 2.1e9), so 2**36 (6.9e10) leaves 16x headroom.
    max_tensor_elements: int = 2**36
    # Tensor data of one file: shards of the largest models stay under 50 GB (gguf-split's default); 16 TiB.
    max_data_bytes: int = 2**44
    # Arrays up to this length are kept as lists; longer ones (tokens, merges) only as type + length.
    keep_array_items: int = 256
    # Strings longer than this are kept as their length only.
    keep_string_bytes: int = 64 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class GGUFHeader:
    """What a GGUF header says: metadata, tensor types and counts. JSON round-trip via to_dict."""

    version: int
    # "little" or "big" (gguf-py writes big-endian files for s390x).
    byte_order: str
    tensor_count: int
    kv_count: int
    # Key -> value. Long arrays (tokens, merges) and long strings appear as a marker
    # {"gguf_array": item type, "length": n} / {"gguf_string_bytes": n}.
    metadata: Mapping[str, Any]
    # ggml tensor type name -> number of tensors of that type (unknown type ids as "type_<id>").
    tensor_types: Mapping[str, int]
    # Sum of tensor elements (the parameters of this file; a shard holds only its share).
    parameter_count: int
    # Bytes of tensor data from data_offset to the end of the last tensor; None with an unknown type.
    tensor_data_bytes: int | None
    alignment: int
    # Where tensor data starts: the header's size, padded to `alignment`.
    data_offset: int
    # Bytes fetched from the source to read this header.
    bytes_read: int
    source: str = ""

    # --- convenience views on the metadata -------------------------------------------------------

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    def arch_value(self, key: str) -> Any:
        """`{arch}.<key>` for the file's architecture ("block_count" -> llama.block_count)."""
        arch = self.architecture
        return self.metadata.get(f"{arch}.{key}") if arch is not None else None

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def file_type_name(self) -> str | None:
        """The LlamaFileType name (Q8_0, Q4_K_M) of general.file_type."""
        return _FILE_TYPE_NAMES.get(self.file_type) if self.file_type is not None else None

    @property
    def context_length(self) -> int | None:
        return _int(self.arch_value("context_length"))

    @property
    def block_count(self) -> int | None:
        return _int(self.arch_value("block_count"))

    @property
    def head_count(self) -> int | None:
        return _int(self.arch_value("attention.head_count"))

    @property
    def head_count_kv(self) -> int | None:
        return _int(self.arch_value("attention.head_count_kv"))

    @property
    def expert_count(self) -> int | None:
        return _int(self.arch_value("expert_count"))

    @property
    def expert_used_count(self) -> int | None:
        return _int(self.arch_value("expert_used_count"))

    @property
    def tokenizer_model(self) -> str | None:
        value = self.metadata.get("tokenizer.ggml.model")
        return value if isinstance(value, str) else None

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in self.metadata

    @property
    def split_count(self) -> int | None:
        return _int(self.metadata.get("split.count"))

    @property
    def base_models(self) -> tuple[Mapping[str, Any], ...]:
        """`general.base_model.N.*` entries as {"name", "organization", "repo_url", ...}."""
        count = _int(self.metadata.get("general.base_model.count")) or 0
        out = []
        for i in range(min(count, 64)):
            prefix = f"general.base_model.{i}."
            entry = {k[len(prefix) :]: v for k, v in self.metadata.items() if k.startswith(prefix)}
            if entry:
                out.append(entry)
        return tuple(out)

    def summary(self) -> dict[str, Any]:
        """The facts a planner reads, by name."""
        return {
            "architecture": self.architecture,
            "name": self.metadata.get("general.name"),
            "file_type": self.file_type,
            "file_type_name": self.file_type_name,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "expert_count": self.expert_count,
            "expert_used_count": self.expert_used_count,
            "tokenizer_model": self.tokenizer_model,
            "chat_template": self.has_chat_template,
            "split_count": self.split_count,
            "base_models": [dict(b) for b in self.base_models],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": HEADER_SCHEMA,
            "source": self.source,
            "version": self.version,
            "byte_order": self.byte_order,
            "tensor_count": self.tensor_count,
            "kv_count": self.kv_count,
            "alignment": self.alignment,
            "data_offset": self.data_offset,
            "bytes_read": self.bytes_read,
            "parameter_count": self.parameter_count,
            "tensor_data_bytes": self.tensor_data_bytes,
            "tensor_types": dict(self.tensor_types),
            "summary": self.summary(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GGUFHeader:
        if data.get("schema") != HEADER_SCHEMA:
            raise GGUFHeaderError(
                str(data.get("source", "<dict>")),
                0,
                f"not a {HEADER_SCHEMA} dict (schema {data.get('schema')!r})",
            )
        return cls(
            version=int(data["version"]),
            byte_order=str(data["byte_order"]),
            tensor_count=int(data["tensor_count"]),
            kv_count=int(data["kv_count"]),
            metadata=dict(data["metadata"]),
            tensor_types={str(k): int(v) for k, v in data["tensor_types"].items()},
            parameter_count=int(data["parameter_count"]),
            tensor_data_bytes=None if data["tensor_data_bytes"] is None else int(data["tensor_data_bytes"]),
            alignment=int(data["alignment"]),
            data_offset=int(data["data_offset"]),
            bytes_read=int(data["bytes_read"]),
            source=str(data.get("source", "")),
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- the reader --------------------------------------------------------------------------------------

# First read covers most non-vocabulary headers (1,000 tensor infos are ~60 KB); later reads are
# 2 MiB (huggingface.js reads 2 MB chunks), so at most one chunk is read past the header.
_FIRST_CHUNK = 512 * 1024
_CHUNK = 2 * 1024 * 1024


class _Cursor:
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
        return _read(src, limits or HeaderLimits(), check_extent=check_extent)
    finally:
        close = getattr(src, "close", None)
        if callable(close):
            close()  # an HTTP source hangs up its open stream: the tensor data is not wanted


def _read(src: ByteSource, limits: HeaderLimits, *, check_extent: bool) -> GGUFHeader:
    cur = _Cursor(src, limits)
    version, tensor_count, kv_count = _read_preamble(cur)
    metadata = _read_metadata(cur, kv_count)
    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.fail(f"general.alignment is {alignment!r}; it must be a power of two")
    tensors = _read_tensor_infos(cur, tensor_count, alignment)
    data_offset = -(-cur.pos // alignment) * alignment
    size = getattr(src, "size", None)
    end = data_offset + (tensors.data_end or 0)
    if check_extent and isinstance(size, int) and tensor_count and end > size:
        raise cur.fail(
            f"the tensor data would end at byte {end:,}, but the file is {size:,} bytes: truncated, or the "
            "header's dimensions and offsets are not this file's",
            cur.pos,
        )
    return GGUFHeader(
        version=version,
        byte_order="big" if cur.order == ">" else "little",
        tensor_count=tensor_count,
        kv_count=kv_count,
        metadata=metadata,
        tensor_types=dict(sorted(tensors.types.items())),
        parameter_count=tensors.parameters,
        tensor_data_bytes=tensors.data_end,
        alignment=alignment,
        # Tensor data starts at the end of the tensor infos, padded to the alignment.
        data_offset=data_offset,
        bytes_read=cur.bytes_read,
        source=src.name,
    )


def _read_preamble(cur: _Cursor) -> tuple[int, int, int]:
    """Magic, version (and byte order), tensor count, key/value count."""
    lim = cur.limits
    magic = cur.take(4, "the magic number")
    if magic != GGUF_MAGIC:
        raise cur.fail(f"not a GGUF file (the first 4 bytes are {magic!r}, expected {GGUF_MAGIC!r})", 0)
    raw_version = cur.take(4, "the version")
    version: int = struct.unpack("<I", raw_version)[0]
    if version & 0xFFFF == 0:  # written for the other byte order (the same test as GGUFReader.__init__)
        cur.order = ">"
        version = struct.unpack(">I", raw_version)[0]
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        raise cur.fail(
            f"GGUF version {version} is not supported (supported: {supported}); "
            "re-convert the model with a current llama.cpp",
            4,
        )
    tensor_count = cur.u64("the tensor count")
    kv_count = cur.u64("the metadata key/value count")
    if tensor_count > lim.max_tensor_count:
        raise cur.fail(
            f"the header declares {tensor_count} tensors; the limit is {lim.max_tensor_count} "
            "(HeaderLimits.max_tensor_count)",
            8,
        )
    if kv_count > lim.max_kv_count:
        raise cur.fail(
            f"the header declares {kv_count} metadata keys; the limit is {lim.max_kv_count} "
            "(HeaderLimits.max_kv_count)",
            16,
        )
    return version, tensor_count, kv_count


def _read_metadata(cur: _Cursor, kv_count: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key_at = cur.pos
        key = cur.string("a metadata key")
        type_id = cur.u32(f"the value type of {key!r}")
        value = _read_value(cur, type_id, key, depth=0)
        if key in metadata:
            raise cur.fail(f"the metadata key {key!r} appears twice", key_at)
        metadata[key] = value
    return metadata


@dataclass(kw_only=True, slots=True)
class _TensorTotals:
    types: dict[str, int]
    parameters: int = 0
    # End of the last tensor's data, relative to data_offset; None once a type's size is unknown.
    data_end: int | None = 0


def _read_tensor_infos(cur: _Cursor, tensor_count: int, alignment: int) -> _TensorTotals:
    """Walk the tensor infos, keeping only per-type counts, element totals and the data extent.

    Each tensor must be one llama.cpp can load: 1-4 non-zero dimensions whose product is sane, a ggml
    type gguf knows, whole blocks, and data starting exactly where the previous tensor's ends, padded to
    the alignment (the rule gguf.c's loader enforces: "tensor has offset X, expected Y").
    """
    lim = cur.limits
    totals = _TensorTotals(types={})
    names: set[str] = set()
    expected = 0
    for index in range(tensor_count):
        info_at = cur.pos
        n = cur.string_length(f"the name of tensor {index}")
        if n > lim.max_tensor_name_bytes:
            raise cur.fail(f"tensor {index}'s name is {n} bytes; the limit is {lim.max_tensor_name_bytes}", info_at)
        name = cur.text(n, f"the name of tensor {index}")
        if name in names:
            raise cur.fail(f"tensor {name!r} appears twice", info_at)
        names.add(name)
        n_dims = cur.u32(f"the dimension count of {name!r}")
        if not 1 <= n_dims <= lim.max_tensor_dims:
            raise cur.fail(f"tensor {name!r} declares {n_dims} dimensions; 1 to {lim.max_tensor_dims} are allowed")
        dims_at = cur.pos
        dims = [cur.u64(f"a dimension of {name!r}") for _ in range(n_dims)]
        elements = math.prod(dims)
        if elements == 0 or elements > lim.max_tensor_elements:
            size = "a zero dimension" if elements == 0 else f"{elements:.3g} elements"
            raise cur.fail(
                f"tensor {name!r} has dimensions {dims}: {size}; a tensor holds 1 to {lim.max_tensor_elements:,} "
                "(HeaderLimits.max_tensor_elements; the largest real tensors hold ~4e9)",
                dims_at,
            )
        type_at = cur.pos
        type_id = cur.u32(f"the type of {name!r}")
        offset_at = cur.pos
        offset = cur.u64(f"the data offset of {name!r}")
        type_name = _GGML_TYPE_NAMES.get(type_id)
        if type_name is None:
            raise cur.fail(
                f"tensor {name!r} has the unknown ggml type id {type_id}; gguf {GGUF_PACKAGE_VERSION} knows "
                f"{min(_GGML_TYPE_NAMES)}-{max(_GGML_TYPE_NAMES)} (not all used), so llama.cpp cannot load it",
                type_at,
            )
        _, block, size_bytes = GGML_TYPES[type_name]
        if elements % block:
            raise cur.fail(f"tensor {name!r} has {elements} elements, not whole {type_name} blocks of {block}")
        if offset != expected:
            raise cur.fail(
                f"tensor {name!r} says its data starts at offset {offset:,}; the tensors before it end at "
                f"{expected:,} (llama.cpp's loader requires each tensor to start where the previous one ends, "
                f"padded to {alignment} bytes)",
                offset_at,
            )
        nbytes = elements // block * size_bytes
        expected = offset + -(-nbytes // alignment) * alignment
        if expected > lim.max_data_bytes:
            raise cur.fail(
                f"the tensor data reaches {expected:,} bytes at tensor {name!r}; the limit is "
                f"{lim.max_data_bytes:,} (HeaderLimits.max_data_bytes; real files stay under 50 GB per shard)",
                offset_at,
            )
        totals.parameters += elements
        totals.types[type_name] = totals.types.get(type_name, 0) + 1
        totals.data_end = offset + nbytes
    return totals


def _type_name(cur: _Cursor, type_id: int, key: str) -> str:
    name = _VALUE_TYPE_NAMES.get(type_id)
    if name is None:
        raise cur.fail(f"{key!r} has the unknown value type {type_id}")
    return name


def _read_value(cur: _Cursor, type_id: int, key: str, *, depth: int) -> Any:
    kind = _type_name(cur, type_id, key)
    if kind in _SCALAR_CODES:
        code, size = _SCALAR_CODES[kind]
        return cur.unpack(code, size, f"the value of {key!r}")
    if kind == "STRING":
        n = cur.string_length(f"the value of {key!r}")
        if n > cur.limits.keep_string_bytes:
            cur.skip(n, f"the value of {key!r}")
            return {"gguf_string_bytes": n}
        return cur.text(n, f"the value of {key!r}")
    # ARRAY: item type, length, items.
    if depth >= cur.limits.max_array_depth:
        raise cur.fail(f"{key!r} nests arrays deeper than {cur.limits.max_array_depth} (HeaderLimits.max_array_depth)")
    item_id = cur.u32(f"the item type of {key!r}")
    item_kind = _type_name(cur, item_id, key)
    length_at = cur.pos
    length = cur.u64(f"the length of {key!r}")
    if length > cur.limits.max_array_length:
        raise cur.fail(
            f"{key!r} declares {length} items; the limit is {cur.limits.max_array_length} "
            "(HeaderLimits.max_array_length)",
            length_at,
        )
    if length <= cur.limits.keep_array_items:
        return [_read_value(cur, item_id, key, depth=depth + 1) for _ in range(length)]
    if item_kind in _SCALAR_CODES:
        cur.skip(length * _SCALAR_CODES[item_kind][1], f"the items of {key!r}")
    elif item_kind == "STRING":
        cur.skip_strings(length, repr(key))
    else:
        for _ in range(length):
            _read_value(cur, item_id, key, depth=depth + 1)
    return {"gguf_array": item_kind, "length": length}


# --- entry points --------------------------------------------------------------------------------


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
