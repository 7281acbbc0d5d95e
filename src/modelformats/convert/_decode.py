"""GGUF tensor bytes -> the output dtype's bytes, fast for the types GGUFs are converted from.

`decode` gives exactly what `encode(gguf.quants.dequantize(raw, qtype), dtype)` gives - the `gguf`
package's reference dequantizer is the definition, and tests/test_convert_decode.py checks every bit
pattern of the 16-bit types and random Q8_0 blocks against it - but for F32, F16, BF16 and Q8_0 (the
unquantized GGUFs the converted route prefers, and the default quant) it works in pieces of about
256K values, small enough to stay in the CPU cache through the several numpy passes a dequantize and
a bfloat16 rounding take, and copies 16-bit inputs that need no arithmetic. Every other type goes
through the reference dequantizer.

numpy releases the GIL in these loops, so `convert_gguf` runs `decode` for several chunks at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelformats.convert._safetensors import encode

__all__ = ["FAST_TYPES", "decode"]

# ggml type numbers (gguf.GGMLQuantizationType) with a fast path here.
F32, F16, Q8_0, BF16 = 0, 1, 8, 30
FAST_TYPES = frozenset({F32, F16, Q8_0, BF16})
_Q8_0_BLOCK = 34  # one float16 scale + 32 int8 values
# Values per cache-sized piece: 1 MiB of float32.
_PIECE_VALUES = 256 * 1024


def decode(raw: np.ndarray, qtype: int, width: int, dtype: str) -> np.ndarray:
    """`raw` (rows x row bytes, uint8) of ggml type `qtype` -> (rows x width) in `dtype`'s bit pattern.

    float32 output is float32 values; float16 and bfloat16 output is their little-endian bits (bfloat16
    as uint16, rounded to nearest even, NaN as 0x7FC0 - what `encode` writes).
    """
    rows = raw.shape[0]
    if qtype not in FAST_TYPES:
        from gguf.quants import dequantize

        return encode(np.asarray(dequantize(raw, _ggml_type(qtype))).reshape(rows, width), dtype)
    if qtype == BF16 and dtype == "bfloat16":
        return _bf16_copy(raw.view("<u2").reshape(rows, width))
    if qtype == F16 and dtype == "float16":
        return raw.view("<f2").reshape(rows, width).copy()
    out = np.empty((rows, width), dtype=_out_type(dtype))
    flat_out = out.reshape(-1)
    buffers = _Buffers()
    if qtype == Q8_0:
        blocks = raw.reshape(-1, _Q8_0_BLOCK)
        step = _PIECE_VALUES // 32
        for first in range(0, blocks.shape[0], step):
            part = blocks[first : first + step]
            scales = part[:, :2].copy().view("<f2").astype(np.float32)
            values = buffers.values(part.shape[0] * 32).reshape(-1, 32)
            np.multiply(part[:, 2:].view(np.int8), scales, out=values)
            # q x d is NaN only where the scale is not finite: only then look for NaNs.
            _store(flat_out, first * 32, values.reshape(-1), dtype, buffers, maybe_nan=not np.isfinite(scales).all())
        return out
    source = raw.view({F32: "<f4", F16: "<f2", BF16: "<u2"}[qtype]).reshape(-1)
    for first in range(0, source.shape[0], _PIECE_VALUES):
        part = source[first : first + _PIECE_VALUES]
        values = buffers.values(part.shape[0])
        if qtype == BF16:
            bits = values.view(np.uint32)
            np.copyto(bits, part)
            np.left_shift(bits, 16, out=bits)
        else:
            np.copyto(values, part)
        _store(flat_out, first, values, dtype, buffers, maybe_nan=True)
    return out


class _Buffers:
    """Scratch arrays reused across one call's cache-sized pieces (fresh ones would fault pages in)."""

    def __init__(self) -> None:
        self._values = np.empty(_PIECE_VALUES, dtype=np.float32)
        self._carry = np.empty(_PIECE_VALUES, dtype=np.uint32)

    def values(self, n: int) -> np.ndarray:
        return self._values[:n]

    def carry(self, n: int) -> np.ndarray:
        return self._carry[:n]


def _store(
    flat_out: np.ndarray, first: int, values: np.ndarray, dtype: str, buffers: _Buffers, *, maybe_nan: bool
) -> None:
    target = flat_out[first : first + values.shape[0]]
    if dtype == "float32":
        np.copyto(target, values)
    elif dtype == "float16":
        np.copyto(target, values, casting="same_kind")
    else:
        _round_bfloat16(values, target, buffers.carry(values.shape[0]))
        if maybe_nan:
            nan = np.isnan(values)
            if nan.any():
                target[nan] = 0x7FC0


def _round_bfloat16(values: np.ndarray, target: np.ndarray, carry: np.ndarray) -> None:
    """`encode`'s round to nearest even, (bits + 0x7FFF + lsb) >> 16, in place in `carry`."""
    bits = values.view(np.uint32)
    np.right_shift(bits, 16, out=carry)
    np.bitwise_and(carry, 1, out=carry)
    np.add(carry, 0x7FFF, out=carry)
    np.add(carry, bits, out=carry)
    np.right_shift(carry, 16, out=carry)
    np.copyto(target, carry, casting="unsafe")


def _bf16_copy(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits kept, but every NaN as 0x7FC0 (what the reference path's rounding writes)."""
    out = bits.copy()
    flat = out.reshape(-1)
    for first in range(0, flat.shape[0], _PIECE_VALUES):
        part = flat[first : first + _PIECE_VALUES]
        nan = (part & np.uint16(0x7FFF)) > np.uint16(0x7F80)
        if nan.any():
            part[nan] = 0x7FC0
    return out


def _out_type(dtype: str) -> Any:
    return {"float32": "<f4", "float16": "<f2", "bfloat16": "<u2"}[dtype]


def _ggml_type(qtype: int) -> Any:
    import gguf

    return gguf.GGMLQuantizationType(qtype)
