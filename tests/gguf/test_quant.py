"""Quant tags from file names: every naming seen in the fixtures, case-insensitive, unknowns kept unknown."""

from __future__ import annotations

import pytest

from modelformats.gguf.quant import find_quant, parse_quant

# (file name, label, tensor type, bits per weight)
NAMES = [
    ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf", "Q8_0", "Q8_0", 8.5),
    ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q4_k_m.gguf", "Q4_K_M", "Q4_K", 4.5),
    ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-q5_k_m.gguf", "Q5_K_M", "Q5_K", 5.5),
    ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q6_k.gguf", "Q6_K", "Q6_K", 6.5625),
    ("Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q4_k_m.gguf", "Q4_K_M", "Q4_K", 4.5),
    ("Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q3_k_l.gguf", "Q3_K_L", "Q3_K", 3.4375),
    ("mistral-7b-instruct-v0.2.Q4_K_M.gguf", "Q4_K_M", "Q4_K", 4.5),
    ("Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf", "Q6_K_L", "Q6_K", 6.5625),
    ("Meta-Llama-3.1-8B-Instruct-bf16.gguf", "BF16", "BF16", 16.0),
    ("gemma-3-27b-it-f16-00001-of-00002.gguf", "F16", "F16", 16.0),
    ("gemma-3-1b-it-BF16.gguf", "BF16", "BF16", 16.0),
    ("gemma-3-1b-it-Q2_K_L.gguf", "Q2_K_L", "Q2_K", 2.625),
    ("gemma-3-1b-it-UD-Q4_K_XL.gguf", "UD-Q4_K_XL", "Q4_K", 4.5),
    ("gemma-3-1b-it-UD-IQ2_M.gguf", "UD-IQ2_M", "IQ2_S", 2.5625),
    ("DeepSeek-R1-Q4_K_M-00001-of-00009.gguf", "Q4_K_M", "Q4_K", 4.5),
    ("DeepSeek-R1.Q8_0-00001-of-00015.gguf", "Q8_0", "Q8_0", 8.5),
    ("DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf", "UD-IQ1_S", "IQ1_S", 1.5625),
    ("Llama-3-70Bx2-MOE.IQ3_S.gguf.part1of2", "IQ3_S", "IQ3_S", 3.4375),
    ("Llama-3-70Bx2-MOE.i1-IQ4_XS.gguf", "I1-IQ4_XS", "IQ4_XS", 4.25),
    ("unsloth.F16.gguf", "F16", "F16", 16.0),
    ("model-F32.gguf", "F32", "F32", 32.0),
    ("model-IQ3_XS.gguf", "IQ3_XS", "IQ3_S", 3.4375),
    ("model-Q4_K_M-imat.gguf", "Q4_K_M-IMAT", "Q4_K", 4.5),
    ("model-MXFP4_MOE.gguf", "MXFP4_MOE", "MXFP4", 4.25),
]


@pytest.mark.parametrize(("name", "label", "tensor_type", "bpw"), NAMES)
def test_quant_from_file_name(name, label, tensor_type, bpw):
    tag, _ = find_quant(name)
    assert tag is not None
    assert (tag.label, tag.tensor_type, tag.bits_per_weight) == (label, tensor_type, bpw)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # ARM repacks are not in gguf 0.19's enums: unknown, never read as Q4_0 (huggingface.js's bug).
        ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q4_0_4_8.gguf", "Q4_0_4_8"),
        ("model-Q9_9.gguf", "Q9_9"),
        ("gemma-3-27b-it.gguf", "it"),
        ("model.gguf", "model"),
    ],
)
def test_unknown_tags(name, text):
    assert find_quant(name) == (None, text)


def test_raw_tag_is_kept():
    tag, raw = find_quant("x_D_AU-Q4_k_m.gguf")
    assert tag is not None and tag.raw == raw == "Q4_k_m"


@pytest.mark.parametrize(
    ("typed", "label"),
    [
        ("q4_k_m", "Q4_K_M"),
        ("UD-Q4_K_XL", "UD-Q4_K_XL"),
        ("ud-q4_k_xl", "UD-Q4_K_XL"),
        ("i1-iq4_xs", "I1-IQ4_XS"),
    ],
)
def test_parse_typed_quant(typed, label):
    tag = parse_quant(typed)
    assert tag is not None and tag.label == label


@pytest.mark.parametrize("typed", ["Q4_0_4_4", "Q9_0", "", "..", "UD", "best"])
def test_parse_typed_quant_unknown(typed):
    assert parse_quant(typed) is None


def test_rank_orders_by_bits_then_size():
    names = [
        "Q2_K",
        "Q3_K_S",
        "Q3_K_M",
        "Q3_K_L",
        "Q4_K_S",
        "Q4_K_M",
        "Q4_K_L",
        "Q5_K_M",
        "Q6_K",
        "Q6_K_L",
        "Q8_0",
    ]
    tags = [parse_quant(n) for n in names]
    assert all(tags)
    assert sorted(names, key=lambda n: parse_quant(n).rank) == names  # type: ignore[union-attr]
    iq = ["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M"]
    assert sorted(iq, key=lambda n: parse_quant(n).rank) == iq  # type: ignore[union-attr]
