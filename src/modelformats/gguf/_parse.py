"""The GGUF header's layout, parsed with a bounded `Cursor`: preamble (magic, version, byte order, counts),
key/value metadata (long arrays kept as type + length) and tensor infos (types, parameters, data extent)."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelformats.gguf._cursor import Cursor
from modelformats.gguf._vocab import GGML_TYPES, GGUF_PACKAGE_VERSION, VALUE_TYPES
from modelformats.gguf.bytesource import ByteSource
from modelformats.gguf.header_record import GGUFHeader, HeaderLimits

__all__ = ["parse_header"]

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


def parse_header(src: ByteSource, limits: HeaderLimits, *, check_extent: bool) -> GGUFHeader:
    cur = Cursor(src, limits)
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


def _read_preamble(cur: Cursor) -> tuple[int, int, int]:
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


def _read_metadata(cur: Cursor, kv_count: int) -> dict[str, Any]:
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


def _read_tensor_infos(cur: Cursor, tensor_count: int, alignment: int) -> _TensorTotals:
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


def _type_name(cur: Cursor, type_id: int, key: str) -> str:
    name = _VALUE_TYPE_NAMES.get(type_id)
    if name is None:
        raise cur.fail(f"{key!r} has the unknown value type {type_id}")
    return name


def _read_value(cur: Cursor, type_id: int, key: str, *, depth: int) -> Any:
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
