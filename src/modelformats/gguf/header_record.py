"""The GGUF header as a value: `GGUFHeader` (the facts a planner reads, by name; to and from the listing
JSON, schema `modelformats-gguf-header/1`) and the `HeaderLimits` every reader enforces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelformats.errors import GGUFHeaderError
from modelformats.gguf._vocab import FILE_TYPES

__all__ = ["HEADER_SCHEMA", "GGUFHeader", "HeaderLimits"]

HEADER_SCHEMA = "modelformats-gguf-header/1"
_FILE_TYPE_NAMES: Mapping[int, str] = {v: k for k, v in FILE_TYPES.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class HeaderLimits:
    """Bounds on what a header may declare. Defaults fit every real model with room to spare."""

    # The target's header is 7.25 MB; Gemma-3's 262k vocabulary makes ~11 MB.
    max_header_bytes: int = 128 * 1024 * 1024
    # huggingface.js caps key/value pairs at 100,000; real files have 20-60.
    max_kv_count: int = 100_000
    # DeepSeek-R1 shards carry ~1,000 tensors each; a dense 70B has 723.
    max_tensor_count: int = 200_000
    # One string (a key, a token, a chat template); templates run to tens of KB.
    max_string_bytes: int = 4 * 1024 * 1024
    # Token lists run to ~262k entries, merges to ~450k.
    max_array_length: int = 16 * 1024 * 1024
    max_array_depth: int = 3
    # ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
    max_tensor_dims: int = 4
    # ggml tensor names are at most 64 bytes (GGML_MAX_NAME).
    max_tensor_name_bytes: int = 256
    # Elements of one tensor: the largest real ones hold ~3.8e9 (DeepSeek-V3's merged experts, 256 x 2048 x
    # 7168; Llama-3.1-405B's embedding 128,256 x 16,384 = 2.1e9), so 2**36 (6.9e10) leaves 16x headroom.
    max_tensor_elements: int = 2**36
    # Tensor data of one file: shards of the largest models stay under 50 GB (gguf-split's default); 16 TiB.
    max_data_bytes: int = 2**44
    # Arrays up to this length are kept as lists; longer ones (tokens, merges) only as type + length.
    keep_array_items: int = 256
    # Strings longer than this are kept as their length only.
    keep_string_bytes: int = 64 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class GGUFHeader:
    """What a GGUF header says: metadata, tensor types and counts. JSON round-trip via to_dict."""

    version: int
    # "little" or "big" (gguf-py writes big-endian files for s390x).
    byte_order: str
    tensor_count: int
    kv_count: int
    # Key -> value. Long arrays (tokens, merges) and long strings appear as a marker
    # {"gguf_array": item type, "length": n} / {"gguf_string_bytes": n}.
    metadata: Mapping[str, Any]
    # ggml tensor type name -> number of tensors of that type (unknown type ids as "type_<id>").
    tensor_types: Mapping[str, int]
    # Sum of tensor elements (the parameters of this file; a shard holds only its share).
    parameter_count: int
    # Bytes of tensor data from data_offset to the end of the last tensor; None with an unknown type.
    tensor_data_bytes: int | None
    alignment: int
    # Where tensor data starts: the header's size, padded to `alignment`.
    data_offset: int
    # Bytes fetched from the source to read this header.
    bytes_read: int
    source: str = ""

    # --- convenience views on the metadata -------------------------------------------------------

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    def arch_value(self, key: str) -> Any:
        """`{arch}.<key>` for the file's architecture ("block_count" -> llama.block_count)."""
        arch = self.architecture
        return self.metadata.get(f"{arch}.{key}") if arch is not None else None

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def file_type_name(self) -> str | None:
        """The LlamaFileType name (Q8_0, Q4_K_M) of general.file_type."""
        return _FILE_TYPE_NAMES.get(self.file_type) if self.file_type is not None else None

    @property
    def context_length(self) -> int | None:
        return _int(self.arch_value("context_length"))

    @property
    def block_count(self) -> int | None:
        return _int(self.arch_value("block_count"))

    @property
    def head_count(self) -> int | None:
        return _int(self.arch_value("attention.head_count"))

    @property
    def head_count_kv(self) -> int | None:
        return _int(self.arch_value("attention.head_count_kv"))

    @property
    def expert_count(self) -> int | None:
        return _int(self.arch_value("expert_count"))

    @property
    def expert_used_count(self) -> int | None:
        return _int(self.arch_value("expert_used_count"))

    @property
    def tokenizer_model(self) -> str | None:
        value = self.metadata.get("tokenizer.ggml.model")
        return value if isinstance(value, str) else None

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in self.metadata

    @property
    def split_count(self) -> int | None:
        return _int(self.metadata.get("split.count"))

    @property
    def base_models(self) -> tuple[Mapping[str, Any], ...]:
        """`general.base_model.N.*` entries as {"name", "organization", "repo_url", ...}."""
        count = _int(self.metadata.get("general.base_model.count")) or 0
        out = []
        for i in range(min(count, 64)):
            prefix = f"general.base_model.{i}."
            entry = {k[len(prefix) :]: v for k, v in self.metadata.items() if k.startswith(prefix)}
            if entry:
                out.append(entry)
        return tuple(out)

    def summary(self) -> dict[str, Any]:
        """The facts a planner reads, by name."""
        return {
            "architecture": self.architecture,
            "name": self.metadata.get("general.name"),
            "file_type": self.file_type,
            "file_type_name": self.file_type_name,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "expert_count": self.expert_count,
            "expert_used_count": self.expert_used_count,
            "tokenizer_model": self.tokenizer_model,
            "chat_template": self.has_chat_template,
            "split_count": self.split_count,
            "base_models": [dict(b) for b in self.base_models],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": HEADER_SCHEMA,
            "source": self.source,
            "version": self.version,
            "byte_order": self.byte_order,
            "tensor_count": self.tensor_count,
            "kv_count": self.kv_count,
            "alignment": self.alignment,
            "data_offset": self.data_offset,
            "bytes_read": self.bytes_read,
            "parameter_count": self.parameter_count,
            "tensor_data_bytes": self.tensor_data_bytes,
            "tensor_types": dict(self.tensor_types),
            "summary": self.summary(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GGUFHeader:
        if data.get("schema") != HEADER_SCHEMA:
            raise GGUFHeaderError(
                str(data.get("source", "<dict>")),
                0,
                f"not a {HEADER_SCHEMA} dict (schema {data.get('schema')!r})",
            )
        return cls(
            version=int(data["version"]),
            byte_order=str(data["byte_order"]),
            tensor_count=int(data["tensor_count"]),
            kv_count=int(data["kv_count"]),
            metadata=dict(data["metadata"]),
            tensor_types={str(k): int(v) for k, v in data["tensor_types"].items()},
            parameter_count=int(data["parameter_count"]),
            tensor_data_bytes=None if data["tensor_data_bytes"] is None else int(data["tensor_data_bytes"]),
            alignment=int(data["alignment"]),
            data_offset=int(data["data_offset"]),
            bytes_read=int(data["bytes_read"]),
            source=str(data.get("source", "")),
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
