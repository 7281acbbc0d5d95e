"""Where listings come from: recorded JSON, a local directory, the Hub (`sources.hub`, imported on use:
it loads huggingface_hub)."""

from __future__ import annotations

from modelformats.sources.documents import Documents, collect_documents, read_one_gguf_header, representative_gguf
from modelformats.sources.local import LocalDirSource
from modelformats.sources.recorded import RecordedSource, default_source

__all__ = [
    "Documents",
    "LocalDirSource",
    "RecordedSource",
    "collect_documents",
    "default_source",
    "read_one_gguf_header",
    "representative_gguf",
]
