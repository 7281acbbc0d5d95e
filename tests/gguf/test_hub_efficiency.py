"""Planning online costs few HTTP requests (issue 15): the GGUF repo plus its base model in at most 5,
the GGUF header in at most 2 Range reads — counted by the real local Hub server."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import constants

from conftest import write_gguf
from hubserver import FakeRepo, serve_hub
from modelformats.planner import PlanOptions, plan
from modelformats.sources.hub import HubSource

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(autouse=True)
def _online(monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory) -> bytes:
    # A vocabulary big enough that the header (~2.9 MB) needs 3 reads of 512 KiB + 2 x 2 MiB chunk by chunk.
    path = write_gguf(tmp_path_factory.mktemp("eff") / "m.gguf", vocab=60_000, merges=120_000)[0]
    return path.read_bytes()


def test_planning_a_gguf_repo_and_its_base_costs_at_most_5_requests(gguf_bytes):
    gguf_repo = FakeRepo(
        repo_id="me/Model-GGUF",
        files={"model-Q8_0.gguf": gguf_bytes, "model-Q4_K_M.gguf": gguf_bytes + b"\0", "README.md": b"# m"},
        card_data={"base_model": "me/Model"},
        tags=["gguf"],
    )
    base = FakeRepo(
        repo_id="me/Model",
        files={
            "config.json": json.dumps(CONFIG).encode(),
            "generation_config.json": b"{}",
            "tokenizer.json": b"{}",
            "tokenizer_config.json": b"{}",
            "model.safetensors": b"\0" * 2048,
        },
    )
    with serve_hub(gguf_repo, base) as hub:
        result = plan("me/Model-GGUF", source=HubSource(endpoint=hub.url), options=PlanOptions())
        requests = list(hub.requests)
    assert result.repo_id == "me/Model-GGUF"
    header_reads = [r for r in requests if r[1].endswith(".gguf")]
    assert [r[1].rsplit("/", 1)[1] for r in requests] == [
        "Model-GGUF",  # model_info of the GGUF repo
        "model-Q8_0.gguf",  # the header: 512 KiB ...
        "model-Q8_0.gguf",  # ... then the rest on one open stream
        "Model",  # model_info of the base repo (card base_model)
        "config.json",
    ]
    assert len(header_reads) == 2
    assert len(requests) == 5


def test_header_reads_retry_a_503_and_a_429(gguf_bytes):
    from modelformats.retry import RetryPolicy

    repo = FakeRepo(repo_id="me/Model-GGUF", files={"model-Q8_0.gguf": gguf_bytes})
    with serve_hub(repo) as hub:
        hub.fail_next["model-Q8_0.gguf"] = [503, 429, 503]
        source = HubSource(endpoint=hub.url, retry=RetryPolicy(base_wait=0.01, max_wait=0.05))
        listing = source.fetch("me/Model-GGUF")
        assert hub.fail_next["model-Q8_0.gguf"] == []
    header = listing.gguf_headers["model-Q8_0.gguf"]
    assert header["summary"]["architecture"] == "llama"
