"""The modelformats-listing/1 schema: reading, writing, and refusing bad input with the field named."""

from __future__ import annotations

import json

import pytest

from modelformats.errors import InvalidListingError, InvalidRepoIdError, UnsafePathError
from modelformats.listing import RepoFile, RepoListing, dump_listing, load_listing
from modelformats.sources.local import LocalDirSource
from modelformats.sources.recorded import default_source

GOOD = {
    "format": "modelformats-listing/1",
    "repo_id": "owner/name",
    "complete": True,
    "files": [{"path": "model.safetensors", "size": 10, "size_exact": True}],
    "config": None,
    "tags": [],
    "base_model": None,
}


def test_every_shared_fixture_loads(listings_dir):
    names = sorted(p.name for p in listings_dir.glob("*.json"))
    assert len(names) == 20
    for path in listings_dir.glob("*.json"):
        listing = load_listing(path)
        assert listing.files, path


def test_fixture_copies_match_shared(listings_dir):
    shared = listings_dir.parents[3] / "shared" / "fixtures" / "listings"
    if not shared.is_dir():
        pytest.skip("../shared is not beside the repo")
    for path in shared.glob("*.json"):
        assert (listings_dir / path.name).read_bytes() == path.read_bytes(), path.name


def test_round_trip(tmp_path, listings_dir):
    for path in listings_dir.glob("*.json"):
        listing = load_listing(path)
        out = tmp_path / path.name
        dump_listing(listing, out)
        assert load_listing(out).to_dict() == listing.to_dict()


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("../etc/passwd", "empty, '.' and '..' segments are not allowed"),
        ("a/../../b", "empty, '.' and '..' segments are not allowed"),
        ("/abs/model.safetensors", "absolute paths are not allowed"),
        ("C:/x.bin", "absolute paths are not allowed"),
        ("dir\\model.bin", "backslashes are not allowed (repo paths use '/')"),
        ("a//b", "empty, '.' and '..' segments are not allowed"),
    ],
)
def test_unsafe_paths_are_refused(path, rule):
    with pytest.raises(UnsafePathError) as exc:
        RepoFile(path=path)
    assert str(exc.value) == (
        f"Refusing file path {path!r}: {rule}. Repo paths must be relative, '/'-separated and free of '..' "
        "segments; fix the listing or report the repo."
    )


def test_wrong_schema_names_the_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**GOOD, "format": "other/2"}))
    with pytest.raises(InvalidListingError) as exc:
        load_listing(bad)
    assert str(exc.value) == f"{bad}: field 'format' must be 'modelformats-listing/1', got 'other/2'"
    assert exc.value.field == "format"


def test_all_problems_are_reported_at_once(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**GOOD, "repo_id": 3, "files": [{"path": "../x", "size": -1}], "tags": "mixtral"}))
    with pytest.raises(ExceptionGroup) as group:
        load_listing(bad)
    fields = sorted(e.field for e in group.value.exceptions)
    assert fields == ["files[0]", "repo_id", "tags"]


def test_malformed_json_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "modelformats-listing/1",\n  "repo_id": }')
    with pytest.raises(InvalidListingError) as exc:
        load_listing(bad)
    assert str(exc.value) == f"{bad}: not valid JSON (line 2, column 14: Expecting value)."


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidListingError, match=r"does not exist"):
        load_listing(tmp_path / "nope.json")


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "owner/na me", "owner/--bad--"])
def test_invalid_repo_ids_use_huggingface_hub_validators(repo_id):
    with pytest.raises(InvalidRepoIdError):
        RepoListing(repo_id=repo_id, files=())


def test_negative_size_is_refused():
    with pytest.raises(InvalidListingError, match=r"a size is a non-negative integer or null"):
        RepoFile(path="a.bin", size=-5)


def test_duplicate_paths_are_refused(tmp_path):
    bad = tmp_path / "dup.json"
    bad.write_text(json.dumps({**GOOD, "files": GOOD["files"] * 2}))
    with pytest.raises(InvalidListingError, match=r"lists 'model.safetensors' twice"):
        load_listing(bad)


def test_local_directory_source(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    (tmp_path / "sub" / "x.txt").write_text("x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "junk").write_text("x")
    listing = LocalDirSource(tmp_path, repo_id="me/local").fetch("me/local")
    assert [(f.path, f.size) for f in listing.files] == [
        ("config.json", 23),
        ("model.safetensors", 4),
        ("sub/x.txt", 1),
    ]
    assert listing.config == {"model_type": "llama"}


def test_recorded_source_confirms_existence_and_names_the_fix(recorded):
    assert recorded.exists("TheBloke/Llama-2-7B-Chat-GPTQ")
    assert recorded.exists("thebloke/llama-2-7b-chat-gptq")  # the Hub's ids are case-insensitive
    assert not recorded.exists("owner/unknown")
    from modelformats.errors import RepoNotFoundError

    with pytest.raises(RepoNotFoundError, match=r"modelformats record owner/unknown -o FILE"):
        recorded.fetch("owner/unknown")


def test_default_source_embeds_the_target_and_its_source_repo():
    ids = default_source().repo_ids
    assert ids == (
        "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B",
        "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF",
    )


def test_collect_documents_reads_only_small_known_documents():
    from modelformats.listing import MAX_DOCUMENT_BYTES
    from modelformats.sources.documents import collect_documents

    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    bodies = {
        "config.json": {"model_type": "llama"},
        "quantize_config.json": {"bits": 4},
        "sub/model.safetensors.index.json": index,
        "tokenizer_config.json": None,  # not valid JSON: left out
    }
    files = [
        RepoFile(path="config.json", size=20),
        RepoFile(path="quantize_config.json", size=12),
        RepoFile(path="params.json", size=None),  # size unknown: never read
        RepoFile(path="generation_config.json", size=MAX_DOCUMENT_BYTES + 1),  # too large: never read
        RepoFile(path="tokenizer_config.json", size=5),
        RepoFile(path="sub/config.json", size=5),  # documents are read at the root only
        RepoFile(path="sub/model.safetensors.index.json", size=100),
    ]
    read: list[str] = []

    def read_json(path: str):
        read.append(path)
        return bodies[path]

    docs = collect_documents(files, read_json)
    assert read == ["config.json", "quantize_config.json", "tokenizer_config.json", "sub/model.safetensors.index.json"]
    assert docs.config == {"model_type": "llama"}
    assert docs.documents == {"quantize_config.json": {"bits": 4}}
    assert docs.index_shards == {
        "sub/model.safetensors.index.json": (
            "sub/model-00001-of-00002.safetensors",
            "sub/model-00002-of-00002.safetensors",
        )
    }


def test_write_json_atomic_replaces_whole_files_only(tmp_path):
    from modelformats.listing import write_json_atomic

    out = tmp_path / "plan.json"
    write_json_atomic(out, {"a": 1})
    assert json.loads(out.read_text()) == {"a": 1}
    write_json_atomic(out, {"a": 2})
    assert out.read_text() == '{\n  "a": 2\n}\n'
    with pytest.raises(TypeError):
        write_json_atomic(out, {"a": object()})
    # The failed write left the old file whole and no temporary file behind.
    assert json.loads(out.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
