"""The bounded GGUF header reader, checked against gguf.GGUFReader on real files."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RangeServer, write_gguf
from modelformats.errors import GGUFHeaderError
from modelformats.gguf.header import (
    GGUFHeader,
    HeaderLimits,
    HttpRangeSource,
    read_gguf_header,
    read_header,
    read_hub_gguf_header,
    read_remote_header_dict,
)
from modelformats.retry import RetryPolicy
from modelformats.traits import traits_from_gguf_header


def _reader_facts(path: Path) -> dict:
    """What gguf.GGUFReader says about a file, in the reader's terms."""
    reader = gguf.GGUFReader(path)
    scalars, arrays = {}, {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            arrays[name] = (f.types[-1].name, len(f.data))
        else:
            scalars[name] = f.contents()
    types: dict[str, int] = {}
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    end = max(t.data_offset + t.n_bytes for t in reader.tensors) - reader.data_offset
    return {
        "scalars": scalars,
        "arrays": arrays,
        "types": types,
        "params": sum(int(t.n_elements) for t in reader.tensors),
        "data_offset": reader.data_offset,
        "tensor_data_bytes": end,
        "tensor_count": len(reader.tensors),
    }


def _assert_matches_reader(header: GGUFHeader, path: Path) -> None:
    facts = _reader_facts(path)
    for key, value in facts["scalars"].items():
        ours = header.metadata[key]
        assert ours == pytest.approx(value) if isinstance(value, float) else ours == value, key
    for key, (item_type, length) in facts["arrays"].items():
        ours = header.metadata[key]
        if isinstance(ours, dict):
            assert ours == {"gguf_array": item_type, "length": length}
        else:
            assert len(ours) == length
    assert dict(header.tensor_types) == facts["types"]
    assert header.parameter_count == facts["params"]
    assert header.data_offset == facts["data_offset"]
    assert header.tensor_data_bytes == facts["tensor_data_bytes"]
    assert header.tensor_count == facts["tensor_count"]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_moe"])
def test_header_matches_gguf_reader(fixture, request):
    path = request.getfixturevalue(fixture)
    _assert_matches_reader(read_header(path), path)


def test_llama_summary(tiny_llama):
    h = read_header(tiny_llama)
    assert h.summary() == {
        "architecture": "llama",
        "name": "tiny llama",
        "file_type": 7,
        "file_type_name": "Q8_0",
        "context_length": 4096,
        "block_count": 2,
        "head_count": 4,
        "head_count_kv": 2,
        "expert_count": None,
        "expert_used_count": None,
        "tokenizer_model": "gpt2",
        "chat_template": True,
        "split_count": None,
        "base_models": [
            {
                "name": "Base",
                "organization": "meta-llama",
                "repo_url": "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct",
            }
        ],
    }
    assert h.tensor_types == {"F32": 5, "Q8_0": 15}
    # Token and merge lists are kept as type + length only.
    assert h.metadata["tokenizer.ggml.tokens"] == {"gguf_array": "STRING", "length": 320}
    assert h.metadata["tokenizer.ggml.merges"] == {"gguf_array": "STRING", "length": 640}


def test_moe_header_and_traits(tiny_moe):
    h = read_header(tiny_moe)
    assert (h.expert_count, h.expert_used_count, h.architecture) == (8, 2, "llama")
    assert h.tensor_types == {"F32": 7, "Q8_0": 15}
    traits = traits_from_gguf_header(h.to_dict(), origin="GGUF header")
    assert traits.is_moe is True
    assert (traits.num_experts, traits.num_experts_per_tok, traits.num_layers) == (8, 2, 2)
    assert (traits.num_attention_heads, traits.num_kv_heads, traits.hidden_size) == (4, 2, 64)
    assert traits.params_total == h.parameter_count


def test_to_dict_round_trip_is_json(tiny_moe):
    h = read_header(tiny_moe)
    data = json.loads(json.dumps(h.to_dict()))
    assert GGUFHeader.from_dict(data) == h


def test_from_dict_refuses_other_dicts():
    with pytest.raises(GGUFHeaderError) as err:
        GGUFHeader.from_dict({"metadata": {}})
    assert str(err.value) == (
        "Cannot read GGUF header of <dict> at byte 0: not a modelformats-gguf-header/1 dict (schema None)."
    )


def test_header_only_file_reads(tiny_moe, tmp_path):
    """A file cut right after its header (no tensor data) still gives the whole header."""
    h = read_header(tiny_moe)
    cut = tmp_path / "header-only.gguf"
    cut.write_bytes(tiny_moe.read_bytes()[: h.data_offset])
    ignore = {"source": "", "bytes_read": 0}
    assert read_header(cut, check_extent=False).to_dict() | ignore == h.to_dict() | ignore
    # By default a header whose tensors lie past the end of its file is refused.
    with pytest.raises(GGUFHeaderError) as err:
        read_header(cut)
    assert err.value.problem == (
        f"the tensor data would end at byte {h.data_offset + h.tensor_data_bytes:,}, but the file is "
        f"{h.data_offset:,} bytes: truncated, or the header's dimensions and offsets are not this file's"
    )


def test_reads_only_the_header(tiny_moe):
    h = read_header(tiny_moe)
    size = tiny_moe.stat().st_size
    assert h.data_offset < size
    # The first read is 512 KiB, more than this small file: never more than the file itself.
    assert h.bytes_read <= size


def test_big_endian_file(tmp_path):
    path = write_gguf(tmp_path / "be.gguf", endianess=gguf.GGUFEndian.BIG)[0]
    h = read_header(path)
    assert h.byte_order == "big"
    _assert_matches_reader(h, path)


def test_split_files(tmp_path):
    shards = write_gguf(tmp_path / "split-Q8_0.gguf", split_max_tensors=8)
    assert [p.name for p in shards] == [f"split-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    first, *rest = (read_header(p) for p in shards)
    assert first.split_count == 3
    assert first.metadata["split.tensors.count"] == 20
    assert first.architecture == "llama"
    assert sum(h.tensor_count for h in (first, *rest)) == 20
    for path in shards:
        _assert_matches_reader(read_header(path), path)


# --- truncation, hostile values, limits ------------------------------------------------------------------


def test_truncated_everywhere(tiny_llama, tmp_path):
    data = tiny_llama.read_bytes()
    end = read_header(tiny_llama).data_offset
    cut = tmp_path / "cut.gguf"
    # Every cut inside the tensor infos / metadata tail, plus a spread over the whole header.
    for n in sorted({*range(0, 64), *range(end - 200, end - 32), *range(64, end, 997)}):
        cut.write_bytes(data[:n])
        with pytest.raises(GGUFHeaderError):
            read_header(cut)


def test_truncated_message(tiny_llama, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_llama.read_bytes()[:30])
    with pytest.raises(GGUFHeaderError) as err:
        read_header(cut)
    assert str(err.value) == (
        f"Cannot read GGUF header of {cut} at byte 24: the file ends at byte 30 while reading the length "
        "of a metadata key (8 bytes needed): truncated or not a complete GGUF."
    )


def _preamble(tensors: int, kvs: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def _kv(key: str, type_id: int, payload: bytes) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", type_id) + payload


def _read_bytes(tmp_path, data: bytes, **limits) -> GGUFHeader:
    path = tmp_path / "x.gguf"
    path.write_bytes(data)
    return read_header(path, limits=HeaderLimits(**limits))


def _error(tmp_path, data: bytes, **limits) -> str:
    with pytest.raises(GGUFHeaderError) as err:
        _read_bytes(tmp_path, data, **limits)
    return str(err.value).split(": ", 1)[1]


def test_hostile_headers(tmp_path):
    src = tmp_path / "x.gguf"
    assert _error(tmp_path, b"GGML" + bytes(20)) == "not a GGUF file (the first 4 bytes are b'GGML', expected b'GGUF')."
    assert _error(tmp_path, _preamble(0, 0, version=1)) == (
        "GGUF version 1 is not supported (supported: 2, 3); re-convert the model with a current llama.cpp."
    )
    assert _error(tmp_path, _preamble(0, 2**63)) == (
        f"the header declares {2**63} metadata keys; the limit is 100000 (HeaderLimits.max_kv_count)."
    )
    assert _error(tmp_path, _preamble(2**40, 0)) == (
        f"the header declares {2**40} tensors; the limit is 200000 (HeaderLimits.max_tensor_count)."
    )
    huge_string = _preamble(0, 1) + struct.pack("<Q", 2**62)
    assert _error(tmp_path, huge_string) == (
        f"a metadata key declares {2**62} bytes; the limit is 4194304 (HeaderLimits.max_string_bytes)."
    )
    huge_array = _preamble(0, 1) + _kv("a", 9, struct.pack("<IQ", 4, 2**60))
    assert _error(tmp_path, huge_array) == (
        f"'a' declares {2**60} items; the limit is 16777216 (HeaderLimits.max_array_length)."
    )
    nested = _preamble(0, 1) + _kv("n", 9, struct.pack("<IQ", 9, 1) * 5)
    assert _error(tmp_path, nested) == "'n' nests arrays deeper than 3 (HeaderLimits.max_array_depth)."
    bad_type = _preamble(0, 1) + _kv("t", 99, b"")
    assert _error(tmp_path, bad_type) == "'t' has the unknown value type 99."
    dup = _preamble(0, 2) + _kv("k", 4, struct.pack("<I", 1)) * 2
    assert _error(tmp_path, dup) == "the metadata key 'k' appears twice."
    align = _preamble(0, 1) + _kv("general.alignment", 4, struct.pack("<I", 24))
    assert _error(tmp_path, align) == "general.alignment is 24; it must be a power of two."
    name = b"w"
    dims = _preamble(1, 0) + struct.pack("<Q", 1) + name + struct.pack("<I", 9)
    assert _error(tmp_path, dims) == "tensor 'w' declares 9 dimensions; 1 to 4 are allowed."
    big = _preamble(0, 1) + _kv("s", 8, struct.pack("<Q", 3000) + b"x" * 3000)
    assert _error(tmp_path, big, max_header_bytes=1024) == (
        "the header runs past 1024 bytes while reading the value of 's' (HeaderLimits.max_header_bytes); "
        "a real header is a few MB."
    )
    assert src.exists()


def test_long_values_are_kept_as_markers(tmp_path):
    data = _preamble(0, 2) + _kv("s", 8, struct.pack("<Q", 300) + b"y" * 300)
    data += _kv("a", 9, struct.pack("<IQ", 4, 1000) + bytes(4000))
    h = _read_bytes(tmp_path, data, keep_string_bytes=100, keep_array_items=10)
    assert h.metadata == {"s": {"gguf_string_bytes": 300}, "a": {"gguf_array": "UINT32", "length": 1000}}
    assert h.parameter_count == 0
    assert h.tensor_data_bytes == 0


def test_an_unknown_tensor_type_is_refused(tmp_path):
    info = struct.pack("<Q", 1) + b"w" + struct.pack("<IQIQ", 1, 32, 77, 0)
    assert _error(tmp_path, _preamble(1, 0) + info) == (
        "tensor 'w' has the unknown ggml type id 77; gguf 0.19.0 knows 0-41 (not all used), so llama.cpp "
        "cannot load it."
    )


_SEED_FILES: dict[str, bytes] = {}


def _seed(tiny_llama: Path) -> bytes:
    if "llama" not in _SEED_FILES:
        h = read_header(tiny_llama)
        _SEED_FILES["llama"] = tiny_llama.read_bytes()[: h.data_offset]
    return _SEED_FILES["llama"]


class _Bytes:
    name = "<fuzz>"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]


_FUZZ_LIMITS = HeaderLimits(max_header_bytes=1 << 20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_headers(tiny_llama, data):
    """Random byte flips, truncations and huge lengths: a header or a GGUFHeaderError, nothing else."""
    seed = bytearray(_seed(tiny_llama))
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, len(seed) - 1))
        kind = data.draw(st.sampled_from(["byte", "u64", "cut"]))
        if kind == "byte":
            seed[at] = data.draw(st.integers(0, 255))
        elif kind == "u64" and at + 8 <= len(seed):
            seed[at : at + 8] = struct.pack("<Q", data.draw(st.sampled_from([0, 2**31, 2**63, 2**64 - 1])))
        else:
            del seed[at:]
            break
    try:
        header = read_gguf_header(_Bytes(bytes(seed)), limits=_FUZZ_LIMITS)
    except GGUFHeaderError:
        return
    json.dumps(header.to_dict(), allow_nan=True)


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=4096))
def test_fuzz_random_bytes(blob):
    with contextlib.suppress(GGUFHeaderError):
        read_gguf_header(_Bytes(b"GGUF" + blob), limits=_FUZZ_LIMITS)


# --- remote reads over HTTP Range -----------------------------------------------------------------------


def test_remote_range_reads(tiny_moe, range_server: RangeServer):
    body = tiny_moe.read_bytes() + bytes(8 * 1024 * 1024)  # 8 MiB of "tensor data" that must not be fetched
    range_server.files["/owner/repo-GGUF/resolve/main/tiny-moe-Q8_0.gguf"] = body
    h = read_hub_gguf_header("owner/repo-GGUF", "tiny-moe-Q8_0.gguf", endpoint=range_server.url, token="hf_secret")
    local = read_header(tiny_moe)
    assert h.to_dict() | {"source": "", "bytes_read": 0} == local.to_dict() | {"source": "", "bytes_read": 0}
    assert h.source == "owner/repo-GGUF/tiny-moe-Q8_0.gguf"
    assert all(r[2] is not None and r[2].startswith("bytes=") for r in range_server.requests)
    assert all(r[3] for r in range_server.requests)  # the token went along
    assert range_server.bytes_sent == h.bytes_read < 1024 * 1024


def test_remote_big_header_is_read_in_chunks(gguf_dir, range_server: RangeServer):
    path = write_gguf(gguf_dir / "big-vocab.gguf", vocab=60_000, merges=120_000, layers=1)[0]
    data = path.read_bytes()
    range_server.files["/f.gguf"] = data
    h = read_gguf_header(HttpRangeSource(f"{range_server.url}/f.gguf"))
    assert h.data_offset > 2 * 1024 * 1024
    # 512 KiB, then 2 MiB chunks: at most one chunk past the header.
    assert h.data_offset <= h.bytes_read <= h.data_offset + 2 * 1024 * 1024
    assert len(range_server.requests) >= 2
    assert h.metadata["tokenizer.ggml.merges"] == {"gguf_array": "STRING", "length": 120_000}


def test_remote_redirect_and_dict_reader(tiny_llama, range_server: RangeServer):
    range_server.files["/cdn/blob"] = tiny_llama.read_bytes()
    range_server.redirects["/o/r/resolve/main/x.gguf"] = "/cdn/blob"
    data = read_remote_header_dict(f"{range_server.url}/o/r/resolve/main/x.gguf", {"authorization": "Bearer t"})
    assert data["summary"]["architecture"] == "llama"
    assert data["schema"] == "modelformats-gguf-header/1"


def test_remote_errors(tiny_llama, range_server: RangeServer):
    url = f"{range_server.url}/missing.gguf"
    with pytest.raises(GGUFHeaderError) as err:
        read_gguf_header(HttpRangeSource(url))
    assert str(err.value) == (
        f"Cannot read GGUF header of {url} at byte 0: HTTP 404 from the server (check the repo id, revision "
        "and token: HF_TOKEN or `hf auth login`)."
    )
    range_server.honour_range = False
    range_server.files["/f.gguf"] = tiny_llama.read_bytes()
    # A server that ignores Range: the first read takes the file's start and hangs up; a later one fails.
    source = HttpRangeSource(f"{range_server.url}/f.gguf")
    assert source.read(0, 4) == b"GGUF"
    with pytest.raises(GGUFHeaderError) as err:
        source.read(100, 4)
    assert "the server ignores HTTP Range requests" in str(err.value)


def test_remote_connection_refused():
    with pytest.raises(GGUFHeaderError) as err:
        read_gguf_header(HttpRangeSource("http://127.0.0.1:9/x.gguf", retry=RetryPolicy(max_retries=1, base_wait=0)))
    assert "HTTP request failed (ConnectError" in str(err.value)
    assert str(err.value).endswith(") after 2 tries.")


# --- traits from headers ---------------------------------------------------------------------------------


def test_a_split_shard_header_gives_no_parameter_count(tmp_path):
    """A gguf-split shard's header counts only its own tensors: it must not size the model."""
    first = read_header(write_gguf(tmp_path / "split-Q8_0.gguf", split_max_tensors=8)[0])
    assert first.split_count == 3
    traits = traits_from_gguf_header(first.to_dict(), origin="GGUF header")
    assert traits.params_total is None
    assert "params_total" not in traits.sources
    assert (traits.gguf_architecture, traits.num_layers) == ("llama", 2)


def test_traits_from_listing_prefers_the_chosen_files_header(tiny_llama, tiny_moe):
    from modelformats.listing import RepoFile, RepoListing
    from modelformats.traits import traits_from_listing

    headers = {"a-Q8_0.gguf": read_header(tiny_llama).to_dict(), "b-Q8_0.gguf": read_header(tiny_moe).to_dict()}
    listing = RepoListing(repo_id="o/m-GGUF", files=tuple(RepoFile(path=p) for p in headers), gguf_headers=headers)
    assert traits_from_listing(listing).num_experts is None  # the first by path
    moe = traits_from_listing(listing, prefer="b-Q8_0.gguf")
    assert (moe.num_experts, moe.is_moe) == (8, True)
    assert moe.sources["num_experts"] == "GGUF header of o/m-GGUF/b-Q8_0.gguf"
    # A preferred file without a header falls back to the first by path.
    assert traits_from_listing(listing, prefer="c-Q8_0.gguf").num_experts is None
