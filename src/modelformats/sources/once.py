"""A source asked at most once per repo during one plan."""

from __future__ import annotations

from modelformats.errors import LISTING_UNAVAILABLE, ModelFormatsError
from modelformats.listing import ListingSource, RepoListing

__all__ = ["OncePerPlanSource"]


class OncePerPlanSource:
    """The source, asked at most once per repo during one plan (the Hub costs a round trip per call).

    Routes, tokenizer sources and traits all ask about the same base repo; failures are remembered too.
    """

    def __init__(self, source: ListingSource) -> None:
        self._source = source
        self._fetched: dict[tuple[str, str | None], RepoListing | ModelFormatsError] = {}
        self._exists: dict[str, bool] = {}

    def fetch(self, repo_id: str, *, revision: str | None = None) -> RepoListing:
        key = (repo_id.lower(), revision)
        if key not in self._fetched:
            try:
                self._fetched[key] = self._source.fetch(repo_id, revision=revision)
            except LISTING_UNAVAILABLE as exc:
                self._fetched[key] = exc
        found = self._fetched[key]
        if isinstance(found, ModelFormatsError):
            raise found
        return found

    def exists(self, repo_id: str) -> bool:
        key = repo_id.lower()
        if key not in self._exists:
            fetched = [v for (k, _), v in self._fetched.items() if k == key and isinstance(v, RepoListing)]
            self._exists[key] = bool(fetched) or self._source.exists(repo_id)
        return self._exists[key]
