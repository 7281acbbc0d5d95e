"""GGUF support without the `gguf` package: quant names, file units, header reader, tokenizer source."""

from modelformats.gguf.files import GGUFInventory, GGUFUnit, inventory_gguf, is_gguf_path
from modelformats.gguf.header import (
    GGUFHeader,
    HeaderLimits,
    HttpRangeSource,
    LocalFileSource,
    read_gguf_header,
    read_header,
    read_hub_gguf_header,
)
from modelformats.gguf.quant import CONVERT_QUANT_ORDER, DEFAULT_QUANT_ORDER, QuantTag, find_quant, parse_quant
from modelformats.gguf.source import BaseRepo, find_base_repo, find_tokenizer_source

__all__ = [
    "CONVERT_QUANT_ORDER",
    "DEFAULT_QUANT_ORDER",
    "BaseRepo",
    "GGUFHeader",
    "GGUFInventory",
    "GGUFUnit",
    "HeaderLimits",
    "HttpRangeSource",
    "LocalFileSource",
    "QuantTag",
    "find_base_repo",
    "find_quant",
    "find_tokenizer_source",
    "inventory_gguf",
    "is_gguf_path",
    "parse_quant",
    "read_gguf_header",
    "read_header",
    "read_hub_gguf_header",
]
