"""The Hugging Face Hub as a `ListingSource`, through huggingface_hub itself.

One `model_info(files_metadata=True)` call gives the tree with sizes, the resolved commit, tags,
the card's `base_model` and the Hub's safetensors/gguf summaries; small JSON documents
(config.json, quantize_config.json, index files, ...) are then read at that pinned commit. The token
comes from huggingface_hub's usual places (HF_TOKEN, `hf auth login`) and is never printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from modelformats.errors import (
    GatedRepoError,
    HubUnavailableError,
    InvalidListingError,
    ModelFormatsError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from modelformats.listing import (
    DOCUMENT_NAMES,
    INDEX_SUFFIX,
    MAX_DOCUMENT_BYTES,
    RepoFile,
    RepoListing,
    SafetensorsSummary,
    shards_of_index,
    validate_repo_id,
)

__all__ = ["HubSource", "hub_errors"]

# Reads one GGUF header given (url, http headers) -> header dict; injected so the core stays small.
HeaderReader = Callable[[str, Mapping[str, str]], Mapping[str, Any]]


class HubSource:
    """Listings from the Hub (or any server speaking its API, e.g. a mirror or a test server)."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        token: str | bool | None = None,
        read_gguf_headers: bool = True,
        gguf_header_reader: HeaderReader | None = None,
    ) -> None:
        """`read_gguf_headers`: read one GGUF header per GGUF repo (Range requests, a few MB) so the
        architecture, expert count and shapes come from the file, not from guesses."""
        from huggingface_hub import HfApi

        self._api = HfApi(endpoint=endpoint, token=token)
        self._endpoint = self._api.endpoint
        self._token = token
        if gguf_header_reader is None and read_gguf_headers:
            from modelformats.gguf.header import read_remote_header_dict

            gguf_header_reader = read_remote_header_dict
        self._read_header = gguf_header_reader

    def exists(self, repo_id: str) -> bool:
        validate_repo_id(repo_id)
        with hub_errors(repo_id, None):
            return bool(self._api.repo_exists(repo_id))

    def fetch(self, repo_id: str, *, revision: str | None = None) -> RepoListing:
        validate_repo_id(repo_id)
        with hub_errors(repo_id, revision):
            info = self._api.model_info(repo_id, revision=revision, files_metadata=True)
        sha = info.sha or revision
        files = tuple(
            RepoFile(path=s.rfilename, size=s.lfs.size if s.lfs is not None else s.size, size_exact=True)
            for s in sorted(info.siblings or [], key=lambda s: s.rfilename)
        )
        paths = {f.path for f in files}
        documents: dict[str, Any] = {}
        index_shards: dict[str, tuple[str, ...]] = {}
        config = None
        for f in files:
            small = f.size is not None and f.size <= MAX_DOCUMENT_BYTES
            if f.folder == "" and f.name in DOCUMENT_NAMES and small:
                doc = self._read_json(repo_id, sha, f.path)
                if f.path == "config.json":
                    config = doc if isinstance(doc, dict) else None
                elif doc is not None:
                    documents[f.path] = doc
            elif f.name.endswith(INDEX_SUFFIX) and small:
                shards = shards_of_index(self._read_json(repo_id, sha, f.path), folder=f.folder)
                if shards is not None:
                    index_shards[f.path] = shards
        headers: dict[str, Mapping[str, Any]] = {}
        representative = _representative_gguf(files)
        if self._read_header is not None and representative is not None:
            headers[representative] = self._read_header(self._url(repo_id, sha, representative), self._auth())
        card = info.card_data
        base = getattr(card, "base_model", None) if card is not None else None
        base_models = (base,) if isinstance(base, str) else tuple(b for b in (base or []) if isinstance(b, str))
        st = info.safetensors
        safetensors = (
            SafetensorsSummary(total=int(st.total), parameters={k: int(v) for k, v in st.parameters.items()})
            if st is not None
            else None
        )
        return RepoListing(
            repo_id=info.id or repo_id,
            revision=sha,
            complete=True,
            files=files,
            config=config,
            tags=tuple(info.tags or ()),
            base_models=base_models,
            safetensors=safetensors,
            gguf=info.gguf if isinstance(info.gguf, dict) else None,
            documents=documents,
            index_shards={k: v for k, v in index_shards.items() if k in paths},
            gguf_headers=headers,
            notes=f"recorded from {self._endpoint} at commit {sha}",
        )

    def _url(self, repo_id: str, revision: str | None, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(repo_id, path, revision=revision, endpoint=self._endpoint)

    def _auth(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        return build_hf_headers(token=self._token)

    def _read_json(self, repo_id: str, revision: str | None, path: str) -> Any:
        """GET a small JSON file at the pinned revision; None if it is not valid JSON."""
        from huggingface_hub.utils import get_session, hf_raise_for_status

        with (
            hub_errors(repo_id, revision),
            get_session().stream(
                "GET", self._url(repo_id, revision, path), headers=self._auth(), follow_redirects=True
            ) as response,
        ):
            hf_raise_for_status(response)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise InvalidListingError(
                        f"{repo_id}/{path} is larger than {MAX_DOCUMENT_BYTES} bytes; refusing to read it as JSON.",
                        source=repo_id,
                        field=path,
                    )
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None


def _representative_gguf(files: tuple[RepoFile, ...]) -> str | None:
    """The smallest model GGUF (shard 1 of a split): all quants of a repo share one architecture."""
    from modelformats.formats._files import parse_shard_name

    candidates = []
    for f in files:
        if not f.name.endswith(".gguf") or "mmproj" in f.name.lower():
            continue
        shard = parse_shard_name(f.path)
        if shard is None or shard.index == 1:
            candidates.append(f)
    if not candidates:
        return None
    return min(candidates, key=lambda f: (f.size if f.size is not None else 1 << 62, f.path)).path


@contextmanager
def hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into ours, with the fix named (for every Hub call we make)."""
    try:
        yield
    except Exception as exc:
        mapped = _map_hub_error(exc, repo_id, revision)
        if mapped is None:
            raise
        raise mapped from None


def _map_hub_error(exc: Exception, repo_id: str, revision: str | None) -> ModelFormatsError | None:
    from huggingface_hub import errors as hub

    # Order matters: GatedRepoError subclasses RepositoryNotFoundError in huggingface_hub.
    if isinstance(exc, hub.GatedRepoError):
        return GatedRepoError(repo_id)
    if isinstance(exc, hub.RevisionNotFoundError):
        return RevisionNotFoundError(repo_id, revision or "<default>")
    if isinstance(exc, hub.RepositoryNotFoundError):
        return RepoNotFoundError(repo_id, revision=revision)
    if isinstance(exc, ModelFormatsError):
        return None
    if isinstance(exc, hub.HfHubHTTPError | hub.HTTPError | hub.LocalEntryNotFoundError | OSError):
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return HubUnavailableError(repo_id, f"{type(exc).__name__}: {detail}")
    return None
