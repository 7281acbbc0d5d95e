"""GGUF -> Hugging Face safetensors checkpoints (`modelformats convert`), streamed one tensor at a time.

Needs the `gguf` package (`pip install 'modelformats[gguf]'`); rebuilding a tokenizer from GGUF
metadata (no --base) also needs transformers. Imports neither torch nor vLLM.
"""

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
