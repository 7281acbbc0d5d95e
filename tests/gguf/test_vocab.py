"""The quant vocabulary is gguf's: the committed module is what the installed gguf generates."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import gguf

from modelformats.gguf import _vocab
from modelformats.gguf.quant import bits_per_weight, dominant_tensor_type

ROOT = Path(__file__).resolve().parents[2]


def _sync_tool():
    spec = importlib.util.spec_from_file_location("sync_gguf_vocab", ROOT / "tools" / "sync_gguf_vocab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_vocab_is_current():
    tool = _sync_tool()
    committed = (ROOT / "src" / "modelformats" / "gguf" / "_vocab.py").read_text(encoding="utf-8")
    assert committed == tool.render(), "run: python tools/sync_gguf_vocab.py"
    assert metadata.version("gguf") == _vocab.GGUF_PACKAGE_VERSION


def test_check_mode(capsys):
    assert _sync_tool().main(["--check"]) == 0
    assert capsys.readouterr().out == "src/modelformats/gguf/_vocab.py matches the installed gguf\n"


def test_vocab_is_the_gguf_enums():
    assert {n: v[0] for n, v in _vocab.GGML_TYPES.items()} == {t.name: t.value for t in gguf.GGMLQuantizationType}
    assert set(_vocab.FILE_TYPES.values()) == {f.value for f in gguf.LlamaFileType if f.name != "GUESSED"}


def test_every_file_type_has_a_tensor_type():
    for name in _vocab.FILE_TYPES:
        assert dominant_tensor_type(name) in _vocab.GGML_TYPES, name


def test_bits_per_weight():
    # Q8_0: 32 int8 + one fp16 scale = 34 bytes per 32 weights.
    assert bits_per_weight("Q8_0") == 8.5
    assert bits_per_weight("Q4_K") == 4.5
    assert bits_per_weight("Q6_K") == 6.5625
    assert bits_per_weight("BF16") == 16.0
    assert bits_per_weight("IQ4_XS") == 4.25
