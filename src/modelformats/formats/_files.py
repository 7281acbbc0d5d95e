"""Checks on a listing's file names that the HF-style formats share (the names themselves: `naming`)."""

from __future__ import annotations

from collections.abc import Sequence

from modelformats.errors import IncompleteUploadError
from modelformats.listing import RepoListing
from modelformats.naming import ShardName, parse_shard_name

__all__ = ["check_shards_complete"]


def check_shards_complete(listing: RepoListing, weights: Sequence[str], *, index_path: str | None) -> None:
    """Raise IncompleteUploadError if an index or a shard name promises files the repo lacks."""
    missing: list[str] = []
    declared_by = ""
    if index_path is not None and index_path in listing.index_shards:
        missing = [p for p in listing.index_shards[index_path] if not listing.has(p)]
        declared_by = f"the index {index_path!r}"
    if not missing:
        # One check per shard set (stem, total), not per shard: 10,000 shards stay linear.
        sets: dict[tuple[str, str, int, str], ShardName] = {}
        for shard in filter(None, (parse_shard_name(p) for p in weights)):
            sets.setdefault(shard.group, shard)
        for shard in sets.values():
            absent = [name for i in range(1, shard.total + 1) if not listing.has(name := shard.sibling(i))]
            if absent:
                missing, declared_by = absent, f"the shard name {shard.sibling(shard.index)!r}"
                break
    if missing:
        raise IncompleteUploadError(listing.repo_id, sorted(set(missing)), declared_by=declared_by)
