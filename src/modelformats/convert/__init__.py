"""GGUF -> Hugging Face safetensors checkpoints (`modelformats convert`), streamed one tensor at a time.

Needs the `gguf` package (`pip install 'modelformats[gguf]'`); rebuilding a tokenizer from GGUF
metadata (no --base) also needs transformers. Imports neither torch nor vLLM.

The names below are loaded on first use (PEP 562), so the planner can read the layout registry
(`modelformats.convert._layouts`: the standard library and `gguf.hf_names` only) without numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelformats.convert._layouts import ConversionLayout, ConversionLayouts, default_layouts
    from modelformats.convert._run import ConvertProgress, ConvertResult, convert_gguf

__all__ = [
    "ConversionLayout",
    "ConversionLayouts",
    "ConvertProgress",
    "ConvertResult",
    "convert_gguf",
    "default_layouts",
]

_HOME = {
    "ConversionLayout": "_layouts",
    "ConversionLayouts": "_layouts",
    "default_layouts": "_layouts",
    "ConvertProgress": "_run",
    "ConvertResult": "_run",
    "convert_gguf": "_run",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
