"""`plan --pin-kv-cache`: vLLM's KV cache pinned to the plan's estimate (--kv-cache-memory-bytes).

The argv is parsed by each vLLM's own parser in `nox -s vllm_compat` (engine case
`safetensors-mixtral-pinned-kv-cache`: EngineArgs.kv_cache_memory_bytes must equal the plan's number).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelformats.cli import main
from modelformats.listing import RepoFile, RepoListing, dump_listing
from modelformats.planner import DEFAULT_REPO, PlanOptions, plan
from modelformats.sources.recorded import RecordedSource, default_source

LISTINGS = Path(__file__).parent / "data" / "listings"
REPO = "owner/Llama-3.1-8B-Instruct"
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}
FILES = {
    "config.json": 900,
    "model-00001-of-00002.safetensors": 9_000_000_000,
    "model-00002-of-00002.safetensors": 7_060_000_000,
    "model.safetensors.index.json": 24_000,
    "tokenizer.json": 9_000_000,
    "tokenizer_config.json": 50_000,
    "generation_config.json": 200,
}


def _listing() -> RepoListing:
    return RepoListing(
        repo_id=REPO, files=tuple(RepoFile(path=p, size=size) for p, size in FILES.items()), config=CONFIG
    )


def _source() -> RecordedSource:
    return RecordedSource([_listing()])


def _kv_term(p):
    return next(t for t in p.memory.terms if t.name == "kv_cache")


@pytest.mark.parametrize("version", ["0.23.0", "0.33.0", "0.34.0"])
def test_the_pinned_size_is_the_estimate_on_the_fullest_gpu(version):
    p = plan(REPO, source=_source(), options=PlanOptions(engine="vllm", vllm_version=version, pin_kv_cache=True))
    kv = _kv_term(p)
    assert not kv.assumed
    argv = list(p.engine.argv)
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(kv.per_gpu_bytes)
    # 32 layers x 8 KV heads x 128 head dim x 2 (K and V) x 2 bytes = 131,072 bytes per token, for every token
    # the plan sizes (max_model_len x max_num_seqs).
    assert kv.per_gpu_bytes == 131_072 * p.memory.kv_tokens
    assert any("--kv-cache-memory-bytes" in note and f"{kv.per_gpu_bytes:,}" in note for note in p.engine.notes)


def test_two_gpus_pin_each_gpus_share():
    options = PlanOptions(engine="vllm", gpu="L4:2", max_model_len=8192, max_num_seqs=4, pin_kv_cache=True)
    p = plan(REPO, source=_source(), options=options)
    argv = list(p.engine.argv)
    # Two L4s: the policy splits the model over them (pipeline stages here); each worker holds half the KV.
    assert "--pipeline-parallel-size" in argv or "--tensor-parallel-size" in argv
    kv = _kv_term(p)
    assert kv.per_gpu_bytes * 2 == kv.bytes
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(kv.per_gpu_bytes)


def test_without_the_option_nothing_is_pinned():
    p = plan(REPO, source=_source(), options=PlanOptions(engine="vllm"))
    assert "--kv-cache-memory-bytes" not in p.engine.argv


def test_an_assumed_kv_shape_is_refused_with_the_fix():
    # The offline target records no config.json: its KV cache is sized from an assumed shape.
    with pytest.raises(Exception) as err:
        plan(DEFAULT_REPO, source=default_source(), options=PlanOptions(engine="vllm", pin_kv_cache=True))
    text = str(err.value)
    assert "--pin-kv-cache" in text and "assumption" in text and "drop --pin-kv-cache" in text


def test_llamacpp_says_there_is_nothing_to_pin():
    bartowski = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    source = RecordedSource.from_paths([LISTINGS / "bartowski__Meta-Llama-3.1-8B-Instruct-GGUF.json"])
    p = plan(bartowski, source=source, options=PlanOptions(engine="llamacpp", pin_kv_cache=True))
    assert "--kv-cache-memory-bytes" not in p.engine.argv
    assert any(
        note.startswith("--pin-kv-cache: llama.cpp allocates its whole context up front") for note in p.engine.notes
    )


def test_cli_flag(tmp_path, capsys):
    listing = tmp_path / "listing.json"
    dump_listing(_listing(), listing)
    code = main(["plan", REPO, "--listing", str(listing), "--engine", "vllm", "--pin-kv-cache", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    assert "--kv-cache-memory-bytes" in data["engine"]["argv"]
