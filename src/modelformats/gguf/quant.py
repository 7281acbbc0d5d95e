"""GGUF quant names: read the quant tag in a file name, know its dominant tensor type, rank quants.

The vocabulary is the `gguf` package's (copied into `_vocab.py` by tools/sync_gguf_vocab.py):
`LlamaFileType` names (Q4_K_M, IQ3_XS, ...) and `GGMLQuantizationType` names (Q8_0, Q4_K, BF16, ...).
On top of it sit the conventions quantizers use in file names, each a row of a table below:
a prefix (`UD-` Unsloth Dynamic, `i1-` mradermacher's imatrix quants) and a size suffix beyond the
vocabulary (bartowski's `Q6_K_L`: embed/output kept at Q8_0; unsloth's `Q4_K_XL`). Matching is
case-insensitive (DavidAU writes `Q4_k_m` and `q5_k_m`); canonical names are upper-case.

A token that looks like a quant but is not in the vocabulary (`Q4_0_4_4`, an ARM repack absent from
gguf 0.19) is reported as unknown — never read as its prefix `Q4_0`, which is huggingface.js's bug.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from modelformats.gguf._vocab import FILE_TYPES, GGML_TYPES, GGUF_PACKAGE_VERSION

__all__ = [
    "CONVERT_QUANT_ORDER",
    "DEFAULT_QUANT_ORDER",
    "KNOWN_PREFIXES",
    "QuantTag",
    "bits_per_weight",
    "dominant_tensor_type",
    "find_quant",
    "looks_like_quant",
    "parse_quant",
]

# The user's order when no --quant / --quant-order is given; after it, the best remaining quant by
# bits per weight (see formats/gguf.py).
DEFAULT_QUANT_ORDER: tuple[str, ...] = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")
# The order when the GGUF is to be converted to 16-bit safetensors (`modelformats convert`): an unquantized
# GGUF first, since its weights need no dequantizing (BF16 is copied exactly into bfloat16; F16 before F32,
# half the download for the same bfloat16 rounding), then the default order.
CONVERT_QUANT_ORDER: tuple[str, ...] = ("BF16", "F16", "F32", *DEFAULT_QUANT_ORDER)

# Prefixes quantizers put before the quant tag, as written in file names (upper-cased).
KNOWN_PREFIXES: Mapping[str, str] = {
    "UD": "Unsloth Dynamic quant (unsloth picks a type per layer)",
    "I1": "mradermacher weighted (imatrix) quant",
}

# Size suffixes, smallest first. vLLM's non-standard tag check accepts the same set after a known
# type (vllm 0.23.0 transformers_utils/gguf_utils.py: `_M,_S,_L,_XL,_XS,_XXS`).
_SIZE_SUFFIXES: tuple[str, ...] = ("XXS", "XS", "S", "M", "L", "XL")
_SIZE_RANK: Mapping[str, int] = {"XXS": 0, "XS": 1, "S": 2, "": 3, "M": 4, "L": 5, "XL": 6}

# File types whose main tensor type is not their name minus the size suffix. From llama.cpp's
# llama_ftype_get_default_type (src/llama-quant.cpp:883-920, as vendored in llama-cpp-python 0.3.36).
_DEFAULT_TYPE_EXCEPTIONS: Mapping[str, str] = {
    "IQ2_S": "IQ2_XS",
    "IQ2_M": "IQ2_S",
    "IQ3_XS": "IQ3_S",
    "IQ3_M": "IQ3_S",
    "MXFP4_MOE": "MXFP4",
}

# A token shaped like a quant tag: Q4_..., IQ3_..., TQ1_0, F16, BF16, MXFP4, NVFP4.
_QUANTISH = re.compile(r"^(?:I?Q\d|TQ\d|B?F\d|MXFP\d|NVFP\d)", re.IGNORECASE)
# The most words a tag may be followed by before the extension (DavidAU's `-Q4_K_M-imat`).
_MAX_TRAILING_WORDS = 2
_EXTENSION = re.compile(r"\.gguf(?:\.part\d+of\d+)?$", re.IGNORECASE)
_SPLIT_SUFFIX = re.compile(r"-\d+-of-\d+$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-.]")


@dataclass(frozen=True, kw_only=True, slots=True)
class QuantTag:
    """A quant tag as found in a file name, in canonical (upper-case) form."""

    # What a user types and a plan prints: prefix, name and trailing words ("UD-Q4_K_XL", "Q4_K_M-IMAT").
    label: str
    # The quant without prefix or trailing words ("Q4_K_XL").
    name: str
    # The vocabulary entry it is built on ("Q4_K"; "Q4_K_M" for a LlamaFileType name).
    base: str
    # A size suffix beyond the vocabulary ("XL"), else None.
    variant: str | None = None
    prefix: str | None = None
    extra: str | None = None
    # The tensor type most weights are stored in, and its storage cost.
    tensor_type: str
    bits_per_weight: float
    # The LlamaFileType id when `base` is a file-type name.
    file_type: int | None = None
    # The tag as written in the file name ("Q4_k_m").
    raw: str

    @property
    def rank(self) -> tuple[float, int, str]:
        """Sort key, larger is better: bits per weight, then size suffix (S < M < L < XL), then label."""
        size = self.variant or (self.name.rsplit("_", 1)[-1] if "_" in self.name else "")
        return (self.bits_per_weight, _SIZE_RANK.get(size, _SIZE_RANK[""]), self.label)

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "name": self.name,
            "tensor_type": self.tensor_type,
            "bits_per_weight": self.bits_per_weight,
            "raw": self.raw,
        }


def bits_per_weight(tensor_type: str) -> float:
    """Storage cost of a ggml tensor type: Q8_0 = 8.5 (32 int8 + one fp16 scale = 34 bytes per 32 weights)."""
    _, block, size = GGML_TYPES[tensor_type]
    return size * 8 / block


def dominant_tensor_type(name: str) -> str | None:
    """The tensor type a file-type or tensor-type name stores most weights in (Q4_K_M -> Q4_K)."""
    if name in _DEFAULT_TYPE_EXCEPTIONS:
        return _DEFAULT_TYPE_EXCEPTIONS[name]
    parts = name.split("_")
    while parts:
        candidate = "_".join(parts)
        if candidate in GGML_TYPES:
            return candidate
        parts.pop()
    return None


def _vocab_entry(token: str) -> tuple[str, str | None] | None:
    """(base, size suffix) if `token` (upper-case) is a vocabulary name, optionally + a size suffix."""
    if token in FILE_TYPES or token in GGML_TYPES:
        return token, None
    for suffix in _SIZE_SUFFIXES:
        core = token.removesuffix(f"_{suffix}")
        if core != token and (core in FILE_TYPES or core in GGML_TYPES):
            return core, suffix
    return None


def _tag_at(words: list[str], i: int) -> QuantTag | None:
    upper = words[i].upper()
    entry = _vocab_entry(upper)
    if entry is None:
        return None
    base, variant = entry
    tensor_type = dominant_tensor_type(base)
    if tensor_type is None:  # a vocabulary name with no tensor type: not a weight quant
        return None
    prefix = words[i - 1].upper() if i > 0 and words[i - 1].upper() in KNOWN_PREFIXES else None
    extra = "-".join(words[i + 1 :]).upper() or None
    name = f"{base}_{variant}" if variant else base
    label = "-".join(p for p in (prefix, name, extra) if p)
    raw = "-".join(words[i - 1 if prefix else i :])
    return QuantTag(
        label=label,
        name=name,
        base=base,
        variant=variant,
        prefix=prefix,
        extra=extra,
        tensor_type=tensor_type,
        bits_per_weight=bits_per_weight(tensor_type),
        file_type=FILE_TYPES.get(base),
        raw=raw,
    )


def find_quant(stem: str) -> tuple[QuantTag | None, str]:
    """The quant tag in a file stem (or folder name), and the text it was read from.

    The tag is the last word (words are split on '-' and '.'). A last word shaped like a quant but not
    in the vocabulary makes the tag unknown (`Q4_0_4_4`); otherwise up to two trailing words may
    follow the tag (`-Q4_K_M-imat`). Returns (None, text) when no tag is found.
    """
    stem = _SPLIT_SUFFIX.sub("", _EXTENSION.sub("", stem))
    words = [w for w in _SEPARATORS.split(stem) if w]
    if not words:
        return None, stem
    last = len(words) - 1
    tag = _tag_at(words, last)
    if tag is not None:
        return tag, tag.raw
    if looks_like_quant(words[last]):
        return None, words[last]
    for i in range(last - 1, max(last - 1 - _MAX_TRAILING_WORDS, -1), -1):
        tag = _tag_at(words, i)
        if tag is not None:
            return tag, tag.raw
    return None, words[last]


def looks_like_quant(word: str) -> bool:
    """A word shaped like a quant tag (Q4_0_4_4, IQ9_Z, F16), whether or not the vocabulary has it."""
    return bool(_QUANTISH.match(word))


def parse_quant(text: str) -> QuantTag | None:
    """Parse a quant as a user types it ("q4_k_m", "UD-Q4_K_XL", "i1-IQ4_XS"); None if unknown."""
    return find_quant(text.strip())[0]


def vocabulary_note() -> str:
    """Where the vocabulary comes from, for messages."""
    return f"gguf {GGUF_PACKAGE_VERSION}'s GGMLQuantizationType / LlamaFileType"
