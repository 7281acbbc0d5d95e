"""Listings recorded as `modelformats-listing/1` JSON, and the recordings embedded in the package."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path

from modelformats.errors import RepoNotFoundError
from modelformats.listing import (
    RepoListing,
    load_listing,
    parse_listing,
    validate_repo_id,
)

__all__ = ["RecordedSource", "default_source"]


class RecordedSource:
    """Listings recorded as `modelformats-listing/1` JSON (files or every *.json in folders)."""

    # A repo missing here may well exist on the Hub (see ListingSource).
    knows_every_repo = False

    def __init__(self, listings: Iterable[RepoListing], *, origin: str = "recordings") -> None:
        self._by_repo: dict[str, RepoListing] = {}
        for listing in listings:
            self._by_repo[listing.repo_id.lower()] = listing
        self.origin = origin

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike[str]]) -> RecordedSource:
        found: list[RepoListing] = []
        for raw in paths:
            p = Path(raw)
            files = sorted(p.glob("*.json")) if p.is_dir() else [p]
            found.extend(load_listing(f) for f in files)
        return cls(found, origin=", ".join(str(p) for p in paths))

    @property
    def repo_ids(self) -> tuple[str, ...]:
        return tuple(sorted(listing.repo_id for listing in self._by_repo.values()))

    def fetch(self, repo_id: str, *, revision: str | None = None) -> RepoListing:
        validate_repo_id(repo_id)
        listing = self._by_repo.get(repo_id.lower())
        if listing is None:
            raise RepoNotFoundError(
                repo_id,
                hint=f"It is not among the recorded listings ({self.origin}); record it with "
                f"`modelformats record {repo_id} -o FILE` or plan it online.",
            )
        if revision is not None and listing.revision is not None and revision != listing.revision:
            raise RepoNotFoundError(
                repo_id,
                revision=revision,
                hint=f"The recording is of revision {listing.revision!r}; record the revision you want.",
            )
        return listing

    def exists(self, repo_id: str) -> bool:
        return repo_id.lower() in self._by_repo

    def __iter__(self) -> Iterator[RepoListing]:
        return iter(self._by_repo.values())


def default_source() -> RecordedSource:
    """The recordings embedded in the package: the target GGUF repo and its source repo."""
    data = resources.files("modelformats") / "data" / "listings"
    listings = [
        parse_listing(json.loads(entry.read_text(encoding="utf-8")), f"modelformats/data/listings/{entry.name}")
        for entry in sorted(data.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    ]
    return RecordedSource(listings, origin="the recordings embedded in modelformats")
