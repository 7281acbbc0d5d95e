"""Recorded proof messages must not depend on Python's per-run string hashing."""

from __future__ import annotations

import os
import subprocess
import sys

from tools.stable_text import exception_line, sort_set_literals

VLLM_MESSAGE = (
    "There is no module or parameter named 'embed_tokens.weight' in LlamaModel. The available "
    "parameters belonging to embed_tokens (VocabParallelEmbedding) are: {}"
)


def test_set_literals_are_sorted_and_dicts_kept() -> None:
    text = "are: {'embed_tokens.qweight_type', 'embed_tokens.qweight'}; types {'Q8_0': 16, 'F32': 1}"
    assert sort_set_literals(text) == (
        "are: {'embed_tokens.qweight', 'embed_tokens.qweight_type'}; types {'Q8_0': 16, 'F32': 1}"
    )


def test_quotes_inside_items_survive() -> None:
    assert sort_set_literals(r"{'b\'x', 'a'}") == r"{'a', 'b\'x'}"


def test_exception_line_is_the_same_under_every_hash_seed() -> None:
    """The real failure: str(set) in vLLM's message changed order between two CI runs."""
    code = (
        "from tools.stable_text import exception_line\n"
        f"msg = {VLLM_MESSAGE!r}.format({{'embed_tokens.qweight_type', 'embed_tokens.qweight'}})\n"
        "print(repr(msg)); print(exception_line(ValueError(msg), 400))\n"
    )
    raw, stable = set(), set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        first, second = out.stdout.splitlines()
        raw.add(first)
        stable.add(second)
    assert len(raw) == 2, "the hash seed no longer changes str(set) order; this test proves nothing"
    assert stable == {"ValueError: " + VLLM_MESSAGE.format("{'embed_tokens.qweight', 'embed_tokens.qweight_type'}")}


def test_exception_line_keeps_the_first_line_within_the_limit() -> None:
    assert exception_line(RuntimeError("first {'b', 'a'}\nsecond"), 20) == "RuntimeError: first "
    assert exception_line(RuntimeError("x {'b', 'a'}"), 100) == "RuntimeError: x {'a', 'b'}"
