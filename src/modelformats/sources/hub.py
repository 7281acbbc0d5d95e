"""The Hugging Face Hub as a `ListingSource`, through huggingface_hub itself.

One `model_info(files_metadata=True)` call gives the tree with sizes, the resolved commit, tags,
the card's `base_model` and the Hub's safetensors/gguf summaries; small JSON documents
(config.json, quantize_config.json, index files, ...) are then read at that pinned commit. The token
comes from huggingface_hub's usual places (HF_TOKEN, `hf auth login`) and is never printed.
"""

from __future__ import annotations

import functools
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
    MAX_DOCUMENT_BYTES,
    RepoFile,
    RepoListing,
    SafetensorsSummary,
    validate_repo_id,
)
from modelformats.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries
from modelformats.sources.documents import collect_documents, read_one_gguf_header

__all__ = ["PLANNING_DOCUMENTS", "HubSource", "hub_errors", "network_errors"]

# The small documents a plan decides from (detection, quantization, adapters, Mistral's params.json);
# generation_config.json and tokenizer_config.json decide nothing, so planning does not spend a request
# on each (`modelformats record` still keeps every DOCUMENT_NAMES file).
PLANNING_DOCUMENTS: tuple[str, ...] = tuple(
    n for n in DOCUMENT_NAMES if n not in ("generation_config.json", "tokenizer_config.json")
)

# Reads one GGUF header given (url, http headers) -> header dict; injected so the core stays small.
HeaderReader = Callable[[str, Mapping[str, str]], Mapping[str, Any]]


class HubSource:
    """Listings from the Hub (or any server speaking its API, e.g. a mirror or a test server)."""

    # A RepoNotFoundError from the Hub means the repo does not exist (or is private): see ListingSource.
    knows_every_repo = True

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        token: str | bool | None = None,
        read_gguf_headers: bool = True,
        gguf_header_reader: HeaderReader | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        documents: tuple[str, ...] = PLANNING_DOCUMENTS,
    ) -> None:
        """`read_gguf_headers`: read one GGUF header per GGUF repo (Range requests, a few MB) so the
        architecture, expert count and shapes come from the file, not from guesses. `retry`: how 429s,
        5xx answers and dropped connections are retried (every call this source makes). `documents`: the
        root JSON documents read into the listing (one request each, when the repo has them)."""
        from huggingface_hub import HfApi

        self._documents = frozenset(documents)
        self._retry = retry
        self._api = HfApi(endpoint=endpoint, token=token)
        self._endpoint = self._api.endpoint
        self._token = token
        if gguf_header_reader is None and read_gguf_headers:
            from modelformats.gguf.header import read_remote_header_dict

            gguf_header_reader = functools.partial(read_remote_header_dict, retry=retry)
        self._read_header = gguf_header_reader

    def exists(self, repo_id: str) -> bool:
        validate_repo_id(repo_id)
        with hub_errors(repo_id, None):
            return bool(call_with_retries(lambda: self._api.repo_exists(repo_id), self._retry))

    def fetch(self, repo_id: str, *, revision: str | None = None) -> RepoListing:
        validate_repo_id(repo_id)
        with hub_errors(repo_id, revision):
            info = call_with_retries(
                lambda: self._api.model_info(repo_id, revision=revision, files_metadata=True), self._retry
            )
        sha = info.sha or revision
        files = tuple(
            RepoFile(
                path=s.rfilename,
                size=s.lfs.size if s.lfs is not None else s.size,
                size_exact=True,
                digest=f"sha256:{s.lfs.sha256}"
                if s.lfs is not None
                else f"git-sha1:{s.blob_id}"
                if s.blob_id
                else None,
            )
            for s in sorted(info.siblings or [], key=lambda s: s.rfilename)
        )
        docs = collect_documents(
            files, lambda path: self._read_json(repo_id, sha, path) if self._wanted(path) else None
        )
        headers: dict[str, Mapping[str, Any]] = {}
        notes = f"recorded from {self._endpoint} at commit {sha}"
        if self._read_header is not None:
            read = self._read_header
            headers, problem = read_one_gguf_header(
                files,
                lambda path: call_with_retries(lambda: read(self._url(repo_id, sha, path), self._auth()), self._retry),
                also_catch=network_errors(),
            )
            notes += f"; {problem}" if problem else ""
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
            config=docs.config,
            tags=tuple(info.tags or ()),
            base_models=base_models,
            safetensors=safetensors,
            gguf=info.gguf if isinstance(info.gguf, dict) else None,
            documents=docs.documents,
            index_shards=docs.index_shards,
            gguf_headers=headers,
            notes=notes,
        )

    def _wanted(self, path: str) -> bool:
        """Root documents outside `documents` are not read; index files (shard lists) always are."""
        return "/" in path or path not in DOCUMENT_NAMES or path in self._documents

    def _url(self, repo_id: str, revision: str | None, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(repo_id, path, revision=revision, endpoint=self._endpoint)

    def _auth(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        return build_hf_headers(token=self._token)

    def _read_json(self, repo_id: str, revision: str | None, path: str) -> Any:
        """GET a small JSON file at the pinned revision; None if it is not valid JSON."""
        with hub_errors(repo_id, revision):
            body = call_with_retries(lambda: self._get_document(repo_id, revision, path), self._retry)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _get_document(self, repo_id: str, revision: str | None, path: str) -> bytes:
        from huggingface_hub.utils import get_session, hf_raise_for_status

        with get_session().stream(
            "GET", self._url(repo_id, revision, path), headers=self._auth(), follow_redirects=True
        ) as response:
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
        return bytes(body)


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
    # LocalEntryNotFoundError: the Hub could not be reached and nothing was cached (HF_HUB_OFFLINE too).
    if isinstance(exc, ModelFormatsError) or not isinstance(exc, (*network_errors(), hub.LocalEntryNotFoundError)):
        # A full disk or a permission error is not a Hub outage: it surfaces as is.
        return None
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return HubUnavailableError(repo_id, f"{type(exc).__name__}: {detail}")


def network_errors() -> tuple[type[Exception], ...]:
    """What a failed exchange with the Hub raises: huggingface_hub's HTTP errors (HfHubHTTPError, a
    subclass of its HTTP client's HTTPError, which also covers transport errors: refused connections,
    timeouts, broken reads) and the builtin ConnectionError and TimeoutError. Not other OSErrors."""
    from huggingface_hub import errors as hub

    return (hub.HfHubHTTPError, hub.HTTPError, ConnectionError, TimeoutError)
