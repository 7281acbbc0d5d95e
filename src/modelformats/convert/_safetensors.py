"""A streaming safetensors writer: shard plan from shapes first, then one tensor's bytes at a time.

The safetensors format (https://huggingface.co/docs/safetensors) is an 8-byte little-endian header
length, a JSON header `{name: {dtype, shape, data_offsets}}` and the raw little-endian data. Since
every shape is known from the GGUF before any data is read, each shard's header is written first and
the data follows in order, chunk by chunk: memory holds one chunk, never a shard.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DTYPES", "ShardPlan", "TensorSpec", "encode", "plan_shards", "shard_header"]

# Output dtype name -> (safetensors dtype, bytes per element).
DTYPES: dict[str, tuple[str, int]] = {
    "bfloat16": ("BF16", 2),
    "float16": ("F16", 2),
    "float32": ("F32", 4),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class TensorSpec:
    """One output tensor: its HF name and shape (row-major, as numpy and torch see it)."""

    name: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardPlan:
    """The file name of one shard and the tensors it holds, in write order."""

    filename: str
    tensors: tuple[TensorSpec, ...]


def plan_shards(tensors: Sequence[TensorSpec], *, dtype: str, max_shard_bytes: int) -> tuple[ShardPlan, ...]:
    """Split tensors, in order, into shards of at most max_shard_bytes (a bigger tensor gets its own).

    One shard is `model.safetensors`; more are `model-0000i-of-0000n.safetensors` (transformers' names).
    """
    size = DTYPES[dtype][1]
    groups: list[list[TensorSpec]] = [[]]
    used = 0
    for spec in tensors:
        nbytes = spec.elements * size
        if groups[-1] and used + nbytes > max_shard_bytes:
            groups.append([])
            used = 0
        groups[-1].append(spec)
        used += nbytes
    if len(groups) == 1:
        return (ShardPlan(filename="model.safetensors", tensors=tuple(groups[0])),)
    total = len(groups)
    return tuple(
        ShardPlan(filename=f"model-{i:05d}-of-{total:05d}.safetensors", tensors=tuple(group))
        for i, group in enumerate(groups, start=1)
    )


def shard_header(shard: ShardPlan, *, dtype: str, metadata: dict[str, str]) -> bytes:
    """The length prefix and JSON header of one shard, padded with spaces to 8 bytes (as safetensors does)."""
    st_dtype, size = DTYPES[dtype]
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for spec in shard.tensors:
        end = offset + spec.elements * size
        header[spec.name] = {"dtype": st_dtype, "shape": list(spec.shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def encode(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values in the output dtype's little-endian bit pattern (bf16: round to nearest even)."""
    if dtype == "float32":
        return np.ascontiguousarray(values, dtype="<f4")
    if dtype == "float16":
        return np.ascontiguousarray(values, dtype="<f2")
    bits = np.ascontiguousarray(values, dtype="<f4").view(np.uint32)
    # (bits + 0x7FFF + lsb) >> 16, in place on one temporary (the chunk is the memory bound).
    carry = bits >> np.uint32(16)
    carry &= np.uint32(1)
    carry += np.uint32(0x7FFF)
    carry += bits
    carry >>= np.uint32(16)
    rounded = carry.astype("<u2")
    # A NaN must stay a NaN (the rounding carry could turn its payload into an infinity).
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded
