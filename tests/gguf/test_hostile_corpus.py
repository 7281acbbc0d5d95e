"""A corpus of hostile GGUF headers: valid files written by the `gguf` package's writer, then edited
byte by byte. Every one is refused with GGUFHeaderError naming the byte offset and a plain sentence;
the three issue 15 found accepted (overflowing dimensions, tensor data past the end of the file, a key
that is not UTF-8) are among them."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from conftest import RangeServer
from modelformats.errors import GGUFHeaderError
from modelformats.gguf.header import HttpRangeSource, read_gguf_header, read_header


def _valid(path: Path) -> bytes:
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny")
    w.add_block_count(1)
    w.add_context_length(2048)
    w.add_tensor("token_embd.weight", np.ones((50, 64), dtype=np.float32))
    w.add_tensor("output.weight", np.ones((50, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


class _Layout:
    """Byte positions inside the writer's file, found by walking it with the format's own grammar."""

    def __init__(self, data: bytes, tensor: str) -> None:
        at = data.index(struct.pack("<Q", len(tensor)) + tensor.encode())
        self.name = at + 8
        self.n_dims = self.name + len(tensor)
        n_dims = struct.unpack_from("<I", data, self.n_dims)[0]
        self.dims = self.n_dims + 4
        self.type = self.dims + 8 * n_dims
        self.offset = self.type + 4


def _edit(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    return _valid(tmp_path_factory.mktemp("hostile") / "tiny.gguf")


def _refusal(tmp_path: Path, data: bytes) -> GGUFHeaderError:
    path = tmp_path / "hostile.gguf"
    path.write_bytes(data)
    with pytest.raises(GGUFHeaderError) as err:
        read_header(path)
    return err.value


def test_the_valid_file_reads(valid, tmp_path):
    path = tmp_path / "ok.gguf"
    path.write_bytes(valid)
    assert read_header(path).tensor_count == 2


def test_dimensions_whose_product_overflows_64_bits(valid, tmp_path):
    emb = _Layout(valid, "token_embd.weight")
    err = _refusal(tmp_path, _edit(valid, emb.dims, struct.pack("<QQ", 2**63, 2**62)))
    assert err.offset == emb.dims
    assert err.problem == (
        f"tensor 'token_embd.weight' has dimensions [{2**63}, {2**62}]: 4.25e+37 elements; a tensor holds 1 to "
        "68,719,476,736 (HeaderLimits.max_tensor_elements; the largest real tensors hold ~4e9)"
    )


def test_dimensions_beyond_any_real_tensor(valid, tmp_path):
    emb = _Layout(valid, "token_embd.weight")
    err = _refusal(tmp_path, _edit(valid, emb.dims, struct.pack("<QQ", 2**20, 2**20)))
    assert "1.1e+12 elements" in err.problem and err.offset == emb.dims


def test_a_zero_dimension(valid, tmp_path):
    emb = _Layout(valid, "token_embd.weight")
    err = _refusal(tmp_path, _edit(valid, emb.dims, struct.pack("<Q", 0)))
    assert err.problem.startswith("tensor 'token_embd.weight' has dimensions [0, 50]: a zero dimension;")


def test_tensor_data_past_the_end_of_the_file(valid, tmp_path):
    out = _Layout(valid, "output.weight")
    # The last tensor grows to 2**30 elements (2 GiB of F16) in a file of a few KB.
    err = _refusal(tmp_path, _edit(valid, out.dims, struct.pack("<QQ", 2**15, 2**15)))
    assert err.problem.startswith("the tensor data would end at byte 2,147,")
    assert err.problem.endswith(
        f"but the file is {len(valid):,} bytes: truncated, or the header's dimensions and offsets are not this file's"
    )


def test_tensor_data_past_the_end_of_a_remote_file(valid, range_server: RangeServer):
    out = _Layout(valid, "output.weight")
    range_server.files["/f.gguf"] = _edit(valid, out.dims, struct.pack("<QQ", 2**15, 2**15))
    with pytest.raises(GGUFHeaderError) as err:
        read_gguf_header(HttpRangeSource(f"{range_server.url}/f.gguf"))
    assert f"but the file is {len(valid):,} bytes" in err.value.problem  # the length from Content-Range


def test_a_data_offset_that_is_not_where_the_previous_tensor_ends(valid, tmp_path):
    out = _Layout(valid, "output.weight")
    err = _refusal(tmp_path, _edit(valid, out.offset, struct.pack("<Q", 2**50)))
    assert err.offset == out.offset
    assert err.problem == (
        f"tensor 'output.weight' says its data starts at offset {2**50:,}; the tensors before it end at 12,800 "
        "(llama.cpp's loader requires each tensor to start where the previous one ends, padded to 32 bytes)"
    )


def test_an_unknown_tensor_type(valid, tmp_path):
    emb = _Layout(valid, "token_embd.weight")
    err = _refusal(tmp_path, _edit(valid, emb.type, struct.pack("<I", 200)))
    assert err.offset == emb.type
    assert err.problem.startswith("tensor 'token_embd.weight' has the unknown ggml type id 200;")


def test_a_key_that_is_not_utf8(valid, tmp_path):
    at = valid.index(b"general.architecture")
    err = _refusal(tmp_path, _edit(valid, at + 3, b"\xff"))
    assert err.offset == at + 3
    assert err.problem == (
        f"a metadata key is not valid UTF-8 (byte 0xff at byte {at + 3}); GGUF strings are UTF-8, so the file "
        "is corrupt or not written by a GGUF writer"
    )


def test_a_string_value_that_is_not_utf8(valid, tmp_path):
    at = valid.index(b"tiny", valid.index(b"general.name"))
    err = _refusal(tmp_path, _edit(valid, at, b"\xc3\x28"))
    assert err.problem.startswith("the value of 'general.name' is not valid UTF-8 (byte 0xc3")


def test_a_tensor_name_that_is_not_utf8(valid, tmp_path):
    emb = _Layout(valid, "token_embd.weight")
    err = _refusal(tmp_path, _edit(valid, emb.name, b"\x80"))
    assert err.problem.startswith("the name of tensor 0 is not valid UTF-8 (byte 0x80")


def test_whole_blocks_only(valid, tmp_path):
    emb = _Layout(valid, "token_embd.weight")
    q8_0 = gguf.GGMLQuantizationType.Q8_0.value  # blocks of 32; 63 x 50 elements are not whole blocks
    data = _edit(_edit(valid, emb.type, struct.pack("<I", q8_0)), emb.dims, struct.pack("<Q", 63))
    assert "not whole Q8_0 blocks of 32" in _refusal(tmp_path, data).problem
