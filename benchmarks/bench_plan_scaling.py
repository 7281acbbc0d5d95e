"""How planning time grows with the number of files in a repo (issue 3's benchmark).

Synthetic listings of 1,000 to 10,000 files: a sharded safetensors checkpoint with N shards, a repo
with N unrelated files (images, docs) around one small checkpoint, and a GGUF quant split into N
shards. Prints seconds per plan and the growth from 1,000 to 10,000 files (10.0x means linear).
The baseline is the 1,000-file run measured in the same process. Run: `python benchmarks/bench_plan_scaling.py`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from modelformats.listing import RepoFile, RepoListing
from modelformats.planner import PlanOptions, plan
from modelformats.sources.recorded import RecordedSource

SIZES = (1_000, 2_000, 5_000, 10_000)
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "num_hidden_layers": 32,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
}


def sharded(n: int) -> RepoListing:
    shards = n - 3
    files = [RepoFile(path=f"model-{i:05d}-of-{shards:05d}.safetensors", size=1_000_000) for i in range(1, shards + 1)]
    files += [RepoFile(path=p, size=1_000) for p in ("config.json", "tokenizer.json", "model.safetensors.index.json")]
    return RepoListing(repo_id="bench/sharded", files=tuple(files), config=CONFIG)


def cluttered(n: int) -> RepoListing:
    files = [RepoFile(path=f"assets/img_{i:05d}.png", size=10_000) for i in range(n - 3)]
    files += [RepoFile(path=p, size=1_000_000) for p in ("model.safetensors", "config.json", "tokenizer.json")]
    return RepoListing(repo_id="bench/cluttered", files=tuple(files), config=CONFIG)


def gguf_split(n: int) -> RepoListing:
    """One Q4_K_M split into n - 2 shards next to a Q8_0, plus a base repo for the tokenizer."""
    shards = n - 2
    files = [RepoFile(path=f"m-Q4_K_M-{i:05d}-of-{shards:05d}.gguf", size=1_000_000) for i in range(1, shards + 1)]
    files += [RepoFile(path="m-Q8_0.gguf", size=10**12), RepoFile(path="README.md", size=10)]
    return RepoListing(repo_id="bench/gguf-split-GGUF", files=tuple(files), base_models=("bench/base",))


BASE = RepoListing(
    repo_id="bench/base",
    files=tuple(RepoFile(path=p, size=1_000) for p in ("config.json", "tokenizer.json", "model.safetensors")),
    config=CONFIG,
)


def time_plan(make: Callable[[int], RepoListing], n: int, repeats: int = 5) -> float:
    listing = make(n)
    source = RecordedSource([listing, BASE])
    # GGUF: pin the split quant (the 1 TB Q8_0 would fit no GPU) and serve it with llama.cpp.
    options = PlanOptions(engine="vllm") if make is not gguf_split else PlanOptions(engine="llamacpp", quant="Q4_K_M")
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan(listing.repo_id, source=source, options=options)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    print(f"{'listing':<12} {'files':>7} {'median s':>10} {'x vs 1,000':>11}")
    for name, make in (("sharded", sharded), ("cluttered", cluttered), ("gguf-split", gguf_split)):
        base = None
        for n in SIZES:
            seconds = time_plan(make, n)
            base = base or seconds
            print(f"{name:<12} {n:>7,} {seconds:>10.4f} {seconds / base:>10.2f}x")
        print(f"{name}: 10,000 files take {seconds / base:.1f}x the 1,000-file time (10.0x = linear)")


if __name__ == "__main__":
    main()
