"""modelformats.arch_map: the generated GGUF architecture map (tools/generate_gguf_arch_map.py)."""

from __future__ import annotations

import pytest

from modelformats.arch_map import ConverterEntry, arch_map_sources, converter_entry_for, gguf_architecture_for


@pytest.mark.parametrize(
    ("architecture", "model_type", "expected"),
    [
        # The target: a Mixtral converted by llama.cpp's LlamaModel becomes a `llama` GGUF.
        ("MixtralForCausalLM", None, "llama"),
        (None, "mixtral", "llama"),
        ("LlamaForCausalLM", "llama", "llama"),
        (None, "mistral", "llama"),
        ("Qwen2MoeForCausalLM", None, "qwen2moe"),
        (None, "llama4", "llama4"),
        # An architecture the converter does not know falls back to the model_type route.
        ("MyCustomLlamaForCausalLM", "llama", "llama"),
        ("MyCustomLlamaForCausalLM", None, None),
        (None, "no-such-model-type", None),
        (None, None, None),
    ],
)
def test_gguf_architecture_for(architecture, model_type, expected):
    assert gguf_architecture_for(architecture=architecture, model_type=model_type) == expected


def test_converter_entry_records_the_llama_permutation():
    assert converter_entry_for(model_type="mixtral") == ConverterEntry(
        hf_architecture="MixtralForCausalLM",
        gguf_architecture="llama",
        converter_class="LlamaModel",
        undo_permute=True,
    )
    # Llama 4 GGUFs keep HF's Q/K order (Llama4Model.undo_permute = False in the converter).
    entry = converter_entry_for(architecture="Llama4ForCausalLM")
    assert entry is not None
    assert entry.undo_permute is False


def test_sources_name_the_versions_the_map_was_generated_from():
    sources = arch_map_sources()
    assert sorted(sources) == ["gguf-py", "llama.cpp converter", "transformers"]
    assert sources["llama.cpp converter"].startswith("llama_cpp_python-0.3.36.tar.gz ")
    assert sources["transformers"] == "5.20.2"
