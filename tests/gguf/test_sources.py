"""GGUF headers in the listing sources (the Hub, a local directory) and the GGUF format's look-ups through
them: real GGUF files, huggingface_hub talking to a real local server."""

from __future__ import annotations

import json
import struct

import pytest

from conftest import write_gguf
from hubserver import FakeRepo, serve_hub
from modelformats.errors import TokenizerSourceError
from modelformats.formats.base import SelectionContext
from modelformats.formats.gguf import GGUFFormat
from modelformats.listing import RepoFile, RepoListing
from modelformats.sources.documents import representative_gguf
from modelformats.sources.hub import HubSource
from modelformats.sources.local import LocalDirSource
from modelformats.sources.recorded import RecordedSource

SHA = "0123456789abcdef0123456789abcdef01234567"
# A GGUF version 1 preamble (no tensors, no keys): llama.cpp dropped v1 in 2023 and so does the reader.
V1 = b"GGUF" + struct.pack("<IQQ", 1, 0, 0)
V1_PROBLEM = "GGUF version 1 is not supported (supported: 2, 3); re-convert the model with a current llama.cpp"
FMT = GGUFFormat()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_gguf(tmp_path_factory.mktemp("src") / "m.gguf")[0].read_bytes()


# --- which GGUF stands for the repo --------------------------------------------------------------------


def test_representative_is_the_smallest_model_file_by_the_gguf_rules():
    files = [
        RepoFile(path="imatrix.gguf", size=10),  # importance matrix
        RepoFile(path="mtp-M-Q8_0.gguf", size=20),  # draft head
        RepoFile(path="mmproj-M-f16.gguf", size=5),  # projector
        RepoFile(path="M-Q8_0.GGUF", size=1000),
        RepoFile(path="M-Q4_K_M-00001-of-00002.gguf", size=400),
        RepoFile(path="M-Q4_K_M-00002-of-00002.gguf", size=300),  # not shard 1
        RepoFile(path="M-Q2_K.gguf.part1of2", size=100),  # byte parts: the model file exists only after the join
        RepoFile(path="M-Q2_K.gguf.part2of2", size=100),
    ]
    assert representative_gguf(files) == "M-Q4_K_M-00001-of-00002.gguf"
    assert representative_gguf(files[:4]) == "M-Q8_0.GGUF"
    assert representative_gguf(files[:3]) is None


# --- the Hub --------------------------------------------------------------------------------------------


def test_hub_reads_the_model_header_not_a_side_file(model):
    repo = FakeRepo(
        repo_id="me/M-GGUF",
        files={"M-Q8_0.GGUF": model, "imatrix.gguf": V1, "mtp-M.gguf": V1, "README.md": b"# M"},
    )
    with serve_hub(repo) as hub:
        listing = HubSource(endpoint=hub.url, token=False).fetch("me/M-GGUF")
    assert list(listing.gguf_headers) == ["M-Q8_0.GGUF"]
    assert listing.gguf_headers["M-Q8_0.GGUF"]["summary"]["architecture"] == "llama"
    assert listing.notes == f"recorded from {hub.url} at commit {SHA}"


def test_hub_header_failure_is_a_note_not_an_error():
    with serve_hub(FakeRepo(repo_id="me/M-GGUF", files={"M-Q8_0.gguf": V1})) as hub:
        listing = HubSource(endpoint=hub.url, token=False).fetch("me/M-GGUF")
    url = f"{hub.url}/me/M-GGUF/resolve/{SHA}/M-Q8_0.gguf"
    assert listing.gguf_headers == {}
    assert listing.notes == (
        f"recorded from {hub.url} at commit {SHA}; the GGUF header of M-Q8_0.gguf was not read, so the plan goes "
        f"without it (Cannot read GGUF header of {url} at byte 4: {V1_PROBLEM}.)"
    )
    # The listing still plans: the quant comes from the file name.
    assert FMT.detect(listing) is not None


def test_hub_header_network_error_is_a_note(model):
    import httpx2

    def reader(url: str, headers: object) -> dict[str, object]:
        raise httpx2.ReadTimeout("timed out")

    with serve_hub(FakeRepo(repo_id="me/M-GGUF", files={"M-Q8_0.gguf": model})) as hub:
        listing = HubSource(endpoint=hub.url, token=False, gguf_header_reader=reader).fetch("me/M-GGUF")
    assert listing.gguf_headers == {}
    assert listing.notes == (
        f"recorded from {hub.url} at commit {SHA}; the GGUF header of M-Q8_0.gguf was not read, so the plan goes "
        "without it (ReadTimeout: timed out)"
    )


# --- a local directory ----------------------------------------------------------------------------------


def test_local_directory_reads_one_header(tmp_path, model):
    (tmp_path / "M-Q8_0.gguf").write_bytes(model)
    (tmp_path / "mmproj-M-f16.gguf").write_bytes(V1)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    listing = LocalDirSource(tmp_path, repo_id="me/M-GGUF").fetch("me/M-GGUF")
    assert list(listing.gguf_headers) == ["M-Q8_0.gguf"]
    assert listing.gguf_headers["M-Q8_0.gguf"]["metadata"]["llama.block_count"] == 2
    assert listing.config == {"model_type": "llama"}
    assert listing.notes == f"listed from local directory {tmp_path}"
    assert LocalDirSource(tmp_path, repo_id="me/M-GGUF", read_gguf_headers=False).fetch("me/M-GGUF").gguf_headers == {}


def test_local_directory_header_failure_is_a_note(tmp_path):
    (tmp_path / "M-Q8_0.gguf").write_bytes(V1)
    listing = LocalDirSource(tmp_path, repo_id="me/M-GGUF").fetch("me/M-GGUF")
    assert listing.gguf_headers == {}
    assert listing.notes == (
        f"listed from local directory {tmp_path}; the GGUF header of M-Q8_0.gguf was not read, so the plan goes "
        f"without it (Cannot read GGUF header of {tmp_path / 'M-Q8_0.gguf'} at byte 4: {V1_PROBLEM}.)"
    )


# --- --tokenizer-from through the Hub ---------------------------------------------------------------------


def _gguf_listing() -> RepoListing:
    # No sizes and no header: the size can only be estimated from a parameter count found elsewhere.
    return RepoListing(repo_id="me/M-GGUF", files=(RepoFile(path="M-Q8_0.gguf"),), complete=False)


def _base() -> FakeRepo:
    return FakeRepo(
        repo_id="me/M",
        files={"config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}).encode(), "tokenizer.json": b"{}"},
        safetensors={"parameters": {"BF16": 2_000_000}, "total": 2_000_000},
    )


@pytest.mark.parametrize("needs_tokenizer", [True, False])
def test_explicit_tokenizer_repo_that_does_not_exist_is_an_error(needs_tokenizer):
    listing = _gguf_listing()
    detection = FMT.detect(listing)
    assert detection is not None
    with serve_hub(_base()) as hub:
        context = SelectionContext(
            source=HubSource(endpoint=hub.url, token=False), tokenizer_from="me/Typo", needs_tokenizer=needs_tokenizer
        )
        with pytest.raises(TokenizerSourceError) as err:
            FMT.select_files(listing, detection, context)
    assert str(err.value) == (
        "--tokenizer-from 'me/Typo' was not found on the source; check the name, or pass a repo that has "
        "tokenizer.json/tokenizer.model. The source said: Repository 'me/Typo' was not found on the Hub. Check "
        "the spelling; private repos also need a token (HF_TOKEN or `hf auth login`)."
    )


def test_gated_explicit_tokenizer_repo_stays_unavailable_and_sizes_come_from_the_base():
    listing = _gguf_listing()
    detection = FMT.detect(listing)
    assert detection is not None
    with serve_hub(_base(), FakeRepo(repo_id="me/Gated", files={}, gated=True)) as hub:
        context = SelectionContext(source=HubSource(endpoint=hub.url, token=False), tokenizer_from="me/Gated")
        sel = FMT.select_files(listing, detection, context)
    assert sel.tokenizer is not None and sel.tokenizer.repo_id == "me/Gated"
    # The tokenizer repo cannot be listed; the sibling base repo (found by the search) knows the parameters.
    assert sel.download_bytes == 2_125_000
    assert sel.bytes_basis == (
        "estimate: 2,000,000 parameters (the safetensors summary of me/M) x 8.5 bits per weight (Q8_0, the "
        "quant's main tensor type) / 8"
    )


def test_recorded_sources_cannot_say_a_repo_does_not_exist():
    """Offline, a --tokenizer-from repo missing from the recordings may exist on the Hub: it stays unavailable."""
    listing = _gguf_listing()
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(
        listing, detection, SelectionContext(source=RecordedSource([listing]), tokenizer_from="me/Unrecorded")
    )
    assert sel.tokenizer is not None and sel.tokenizer.repo_id == "me/Unrecorded"
    assert sel.tokenizer.files == ()
