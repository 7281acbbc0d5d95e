"""The fuzz benchmark (benchmarks/bench_gguf_fuzz.py) in miniature, so it cannot rot: 300 cases, and its
oracle really tells impossible headers from possible ones."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gguf_fuzz.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gguf_fuzz", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gguf_fuzz"] = module
    spec.loader.exec_module(module)
    return module


def test_300_cases_no_crash_no_hang_nothing_impossible_accepted(bench, capsys):
    assert bench.run(300, 15) == 0
    out = capsys.readouterr().out
    assert "crashes (other exceptions): 0" in out and "accepted impossible headers: 0" in out


def test_the_oracle_refuses_what_it_should(bench):
    seed = bench.seeds()["llama"]
    _, n = bench._oracle(seed)
    assert n > 0
    with pytest.raises(bench.ImpossibleHeaderError, match="the file is"):
        bench._oracle(seed[: len(seed) - 100])
    name = b"token_embd.weight"
    at = seed.index(struct.pack("<Q", len(name)) + name) + 8 + len(name) + 4
    with pytest.raises(bench.ImpossibleHeaderError, match="dimensions"):
        bench._oracle(seed[:at] + struct.pack("<Q", 0) + seed[at + 8 :])
