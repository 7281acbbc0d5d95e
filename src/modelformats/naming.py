"""File names, the ground floor: shard numbering, tokenizer/config files, fnmatch patterns.

Naming conventions of the formats themselves (transformers' `-00001-of-00004` shards, gguf-split's
`-00001-of-00003.gguf`, `tokenizer.json`), i.e. listing metadata — never a model's repo name.
Imported by listing, gguf, formats, engines and download; it imports nothing of modelformats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CONFIG_FILES",
    "MISTRAL_TOKENIZER",
    "TOKENIZER_CORE_FILES",
    "TOKENIZER_FILES",
    "FileSet",
    "ShardName",
    "escape_pattern",
    "has_tokenizer",
    "parse_shard_name",
    "support_files",
    "unique",
]


class FileSet(Protocol):
    """Anything that says whether it holds a path (a `RepoListing`)."""

    def has(self, path: str) -> bool: ...


# What vLLM reads besides weights: the model config, generation defaults, tokenizer, chat template.
CONFIG_FILES: tuple[str, ...] = ("config.json", "generation_config.json")
TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",  # SentencePiece (Llama-2, Mistral v0.1-0.3)
    "vocab.json",  # byte-level BPE (GPT-2 style, Qwen)
    "merges.txt",
    "vocab.txt",  # WordPiece
    "spiece.model",  # T5-style SentencePiece
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",  # multimodal processors
    "processor_config.json",
)
# Any one of these is a tokenizer transformers (and so vLLM) can build: fast (tokenizer.json),
# SentencePiece (tokenizer.model, spiece.model), byte-level BPE (vocab.json + merges.txt), WordPiece.
TOKENIZER_CORE_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
# Mistral's own tokenizer file; only vLLM's `--tokenizer-mode mistral` reads it, and it is 14.8 MB.
MISTRAL_TOKENIZER = "tekken.json"

# The index and total digits, `-of-` and the extension are kept as written (`x-001-of-003.GGUF`): engines
# rebuild sibling names from shard 1 with the same spelling.
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)-(?P<of>[oO][fF])-(?P<total>\d+)(?P<ext>\.[A-Za-z0-9]+)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardName:
    """`model-00002-of-00004.safetensors` -> stem 'model', index 2, total 4 (widths kept)."""

    path: str
    folder: str
    stem: str
    index: int
    total: int
    index_width: int
    total_width: int
    ext: str
    of: str = "of"

    def sibling(self, index: int) -> str:
        name = f"{self.stem}-{index:0{self.index_width}d}-{self.of}-{self.total:0{self.total_width}d}{self.ext}"
        return f"{self.folder}/{name}" if self.folder else name

    @property
    def group(self) -> tuple[str, str, int, str]:
        return (self.folder, self.stem, self.total, self.ext)


def parse_shard_name(path: str) -> ShardName | None:
    """The shard numbering of `path` (`-00001-of-00003` before the extension), or None."""
    folder, _, name = path.rpartition("/")
    m = _SHARD.match(name)
    if m is None:
        return None
    total = int(m["total"])
    index = int(m["index"])
    if total < 1 or not 1 <= index <= total:
        return None
    return ShardName(
        path=path,
        folder=folder,
        stem=m["stem"],
        index=index,
        total=total,
        index_width=len(m["index"]),
        total_width=len(m["total"]),
        ext=m["ext"],
        of=m["of"],
    )


def has_tokenizer(listing: FileSet, folder: str = "") -> bool:
    """Whether `folder` holds a tokenizer transformers can build (one of TOKENIZER_CORE_FILES)."""
    prefix = f"{folder}/" if folder else ""
    return any(listing.has(prefix + n) for n in TOKENIZER_CORE_FILES)


def support_files(listing: FileSet, *, folder: str = "") -> tuple[str, ...]:
    """Config, generation config, tokenizer and chat-template files present in `folder`."""
    prefix = f"{folder}/" if folder else ""
    names = [*CONFIG_FILES, *TOKENIZER_FILES]
    found = [prefix + n for n in names if listing.has(prefix + n)]
    # tekken.json is only needed when no HF tokenizer exists (vLLM then needs --tokenizer-mode mistral).
    if not has_tokenizer(listing, folder) and listing.has(prefix + MISTRAL_TOKENIZER):
        found.append(prefix + MISTRAL_TOKENIZER)
    return tuple(found)


_GLOB_CHARS = re.compile(r"([*?\[])")


def escape_pattern(path: str) -> str:
    """An fnmatch pattern matching exactly `path` (huggingface_hub's allow_patterns use fnmatch)."""
    return _GLOB_CHARS.sub(r"[\1]", path)


def unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))
