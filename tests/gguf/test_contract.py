"""GGUFFormat passes the contract every format passes (tests/contract.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from contract import FormatContract
from modelformats.formats.gguf import GGUFFormat
from modelformats.listing import RepoListing, load_listing
from modelformats.sources.recorded import RecordedSource

LISTINGS = Path(__file__).resolve().parents[1] / "data" / "listings"


def fixture(name: str) -> RepoListing:
    return load_listing(LISTINGS / f"{name}.json")


def with_base(name: str, base: str) -> RepoListing:
    """A recorded GGUF listing whose card names its base model (so a tokenizer source exists)."""
    return replace(fixture(name), base_models=(base,))


class TestGGUFContract(FormatContract):
    fmt = GGUFFormat()
    source = RecordedSource.from_paths([LISTINGS])
    claims = (
        fixture("DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"),
        fixture("TheBloke__Mistral-7B-Instruct-v0.2-GGUF"),
        fixture("bartowski__Meta-Llama-3.1-8B-Instruct-GGUF"),
        fixture("kbang2021__unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit"),
        with_base(
            "DavidAU__Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-GGUF",
            "DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B",
        ),
        with_base("ggml-org__gemma-3-27b-it-GGUF", "google/gemma-3-27b-it"),
        with_base("unsloth__DeepSeek-R1-GGUF", "deepseek-ai/DeepSeek-R1"),
        with_base("mradermacher__Llama-3-70Bx2-MOE-GGUF", "cloudyu/Llama-3-70Bx2-MOE"),
        with_base("unsloth__gemma-3-1b-it-GGUF", "google/gemma-3-1b-it"),
    )
    rejects = (
        fixture("DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B"),
        fixture("Qwen__Qwen2.5-7B-Instruct-AWQ"),
        fixture("lmsys__vicuna-7b-v1.5"),
        fixture("mlx-community__Llama-3.1-8B-Instruct"),
        fixture("DrNicefellow__Mistral-Nemo-Instruct-2407-exl2-7bpw-h8"),
    )
