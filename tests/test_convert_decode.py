"""`convert._decode.decode` equals the reference: `encode(gguf.quants.dequantize(raw, type), dtype)`.

The 16-bit types are checked on every one of their 65,536 bit patterns (NaNs, infinities, subnormals,
both zeros), F32 on edge values and random bits, Q8_0 on random blocks including non-finite and
subnormal scales; the types without a fast path on the reference's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize, quantize  # noqa: E402

from modelformats.convert._decode import FAST_TYPES, decode  # noqa: E402
from modelformats.convert._safetensors import encode  # noqa: E402

T = gguf.GGMLQuantizationType
DTYPES = ("bfloat16", "float16", "float32")


def _reference(raw: np.ndarray, qtype: T, width: int, dtype: str) -> np.ndarray:
    return encode(np.asarray(dequantize(raw, qtype)).reshape(raw.shape[0], width), dtype)


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype.itemsize == want.dtype.itemsize
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("qtype", [T.F16, T.BF16])
def test_every_16_bit_pattern(qtype: T, dtype: str) -> None:
    raw = np.arange(65536, dtype="<u2").view(np.uint8).reshape(256, 512)  # 256 rows of 256 values
    with np.errstate(over="ignore"):  # bfloat16 -> float16 overflows to infinity, in both paths
        _same_bits(decode(raw, int(qtype), 256, dtype), _reference(raw, qtype, 256, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_f32_edges_and_random_bits(dtype: str) -> None:
    rng = np.random.default_rng(1)
    edges = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, 65504.0, 65520.0, 1.00390625, 1.01171875],
        dtype="<f4",
    )
    bits = rng.integers(0, 2**32, 600_000 - edges.size, dtype=np.uint64).astype("<u4").view("<f4")
    values = np.concatenate([edges, bits])
    raw = values.view(np.uint8).reshape(600, 4000)  # 600 rows of 1,000 values: several cache pieces
    with np.errstate(over="ignore"):
        _same_bits(decode(raw, int(T.F32), 1000, dtype), _reference(raw, T.F32, 1000, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_q8_0_random_blocks(dtype: str) -> None:
    rng = np.random.default_rng(2)
    blocks = 40_000  # more than one cache piece
    raw = np.empty((blocks, 34), dtype=np.uint8)
    scales = rng.uniform(-0.05, 0.05, blocks).astype("<f2")
    scales[:6] = [np.inf, -np.inf, np.nan, 6e-8, -0.0, 65504.0]
    raw[:, :2] = scales.view(np.uint8).reshape(blocks, 2)
    raw[:, 2:] = rng.integers(-128, 128, (blocks, 32), dtype=np.int8).view(np.uint8)
    raw = raw.reshape(400, 100 * 34)  # 400 rows of 3,200 values
    with np.errstate(invalid="ignore", over="ignore"):
        _same_bits(decode(raw, int(T.Q8_0), 3200, dtype), _reference(raw, T.Q8_0, 3200, dtype))


@pytest.mark.parametrize("qtype", [T.Q4_0, T.Q4_K, T.Q6_K])
def test_other_types_take_the_reference_path(qtype: T) -> None:
    assert int(qtype) not in FAST_TYPES
    rng = np.random.default_rng(3)
    values = rng.standard_normal((8, 512)).astype(np.float32)
    if qtype == T.Q4_0:
        raw = quantize(values, qtype)
    else:  # gguf-py has no K-quant quantizer: random blocks with small finite scales
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, (8, 512 // block * size), dtype=np.uint8)
        raw.view(np.uint8)[:] &= 0x3F  # keeps every float16 field finite
    _same_bits(decode(raw, int(qtype), 512, "bfloat16"), _reference(raw, qtype, 512, "bfloat16"))
