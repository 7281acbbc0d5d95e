"""HubSource through huggingface_hub itself, against a real local HTTP server speaking the Hub API."""

from __future__ import annotations

import json

import pytest

from hubserver import FakeRepo, serve_hub
from modelformats.errors import GatedRepoError, RepoNotFoundError, RevisionNotFoundError
from modelformats.sources.hub import HubSource

CONFIG = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 8}
INDEX = {
    "metadata": {"total_size": 10},
    "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
}


def _repo(**kw) -> FakeRepo:
    files = {
        "config.json": json.dumps(CONFIG).encode(),
        "model-00001-of-00002.safetensors": b"x" * 2048,
        "model-00002-of-00002.safetensors": b"y" * 100,
        "model.safetensors.index.json": json.dumps(INDEX).encode(),
        "tokenizer.json": b"{}",
        "README.md": b"# hi",
    }
    return FakeRepo(
        repo_id="owner/model",
        files=files,
        tags=["mixtral", "safetensors"],
        card_data={"base_model": "other/base"},
        safetensors={"parameters": {"BF16": 1000}, "total": 1000},
        **kw,
    )


def test_fetch_reads_tree_documents_and_summaries():
    with serve_hub(_repo()) as hub:
        listing = HubSource(endpoint=hub.url, token=False).fetch("owner/model")
    assert listing.revision == "0123456789abcdef0123456789abcdef01234567"
    assert listing.complete is True
    assert [(f.path, f.size) for f in listing.files] == [
        ("README.md", 4),
        ("config.json", len(json.dumps(CONFIG))),
        ("model-00001-of-00002.safetensors", 2048),
        ("model-00002-of-00002.safetensors", 100),
        ("model.safetensors.index.json", len(json.dumps(INDEX))),
        ("tokenizer.json", 2),
    ]
    assert listing.config == CONFIG
    assert listing.index_shards == {
        "model.safetensors.index.json": (
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        )
    }
    assert listing.base_models == ("other/base",)
    assert listing.tags == ("mixtral", "safetensors")
    assert listing.safetensors is not None and listing.safetensors.total == 1000


def test_documents_are_read_at_the_resolved_commit():
    with serve_hub(_repo()) as hub:
        HubSource(endpoint=hub.url, token=False).fetch("owner/model", revision="main")
    resolves = [path for method, path, _ in hub.requests if "/resolve/" in path]
    assert resolves and all("/resolve/0123456789abcdef0123456789abcdef01234567/" in p for p in resolves)
    # Weights are never fetched to plan.
    assert not any(p.endswith(".safetensors") for p in resolves)


def test_missing_repo_gated_repo_and_bad_revision_become_our_errors():
    with serve_hub(_repo(), FakeRepo(repo_id="owner/gated", files={}, gated=True)) as hub:
        source = HubSource(endpoint=hub.url, token=False)
        with pytest.raises(RepoNotFoundError) as missing:
            source.fetch("owner/nope")
        with pytest.raises(GatedRepoError) as gated:
            source.fetch("owner/gated")
        with pytest.raises(RevisionNotFoundError) as rev:
            source.fetch("owner/model", revision="v9")
        assert source.exists("owner/model") is True
        assert source.exists("owner/nope") is False
    assert str(missing.value) == (
        "Repository 'owner/nope' was not found on the Hub. Check the spelling; private repos also need a "
        "token (HF_TOKEN or `hf auth login`)."
    )
    assert str(gated.value) == (
        "Repository 'owner/gated' is gated: accept its licence on https://huggingface.co/owner/gated and make "
        "a token available (HF_TOKEN or `hf auth login`)."
    )
    assert str(rev.value) == (
        "Revision 'v9' does not exist in 'owner/model'. Pass a branch, tag or commit sha that exists (omit "
        "--revision for the default branch)."
    )


def test_unreachable_hub_is_reported_with_the_offline_fix():
    from modelformats.errors import HubUnavailableError

    source = HubSource(endpoint="http://127.0.0.1:9", token=False)  # discard port: connection refused
    with pytest.raises(HubUnavailableError, match=r"plan offline with --listing FILE"):
        source.fetch("owner/model")


def test_recorded_listing_round_trips(tmp_path):
    from modelformats.listing import dump_listing, load_listing

    with serve_hub(_repo()) as hub:
        listing = HubSource(endpoint=hub.url, token=False).fetch("owner/model")
    out = tmp_path / "rec.json"
    dump_listing(listing, out)
    again = load_listing(out)
    assert again.to_dict() == listing.to_dict()


def test_only_network_errors_become_hub_unavailable():
    """A full disk or a permission error under hub_errors surfaces as itself, never as a Hub outage."""
    import errno

    import httpx2

    from modelformats.errors import HubUnavailableError
    from modelformats.sources.hub import hub_errors

    for local in (
        OSError(errno.ENOSPC, "No space left on device", "/models/x.gguf"),
        PermissionError(errno.EACCES, "Permission denied", "/models"),
    ):
        with pytest.raises(type(local)) as err, hub_errors("owner/model", None):
            raise local
        assert err.value is local
    for network, detail in (
        (httpx2.ConnectError("[Errno 111] Connection refused"), "ConnectError: [Errno 111] Connection refused"),
        (httpx2.ReadTimeout("timed out"), "ReadTimeout: timed out"),
        (TimeoutError("timed out"), "TimeoutError: timed out"),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "ConnectionResetError: [Errno 104] Connection reset by peer",
        ),
    ):
        with pytest.raises(HubUnavailableError) as unavailable, hub_errors("owner/model", None):
            raise network
        assert str(unavailable.value) == (
            f"Could not reach the Hub for 'owner/model' ({detail}). Retry, or plan offline with --listing FILE "
            "(a recording made by `modelformats record`)."
        )
