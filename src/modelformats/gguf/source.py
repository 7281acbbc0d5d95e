"""Where a GGUF's tokenizer and HF config come from: the base model's repo, found from metadata.

vLLM needs HF tokenizer files and (for vllm-gguf-plugin) an HF config.json beside a GGUF; building a
tokenizer from GGUF metadata is slow and fails for many models. The source is found, in order:

1. ``--tokenizer-from REPO`` (explicit);
2. the GGUF repo itself, when it carries tokenizer files and a real config.json (not a stub such as
   TheBloke's 31-byte ``{"model_type": ...}``): same repo and revision, nothing gated;
3. the model card's ``base_model``;
4. the GGUF header's ``general.base_model.N.repo_url`` keys (llama.cpp's converter writes them);
5. a sibling repo of the same owner named without the ``-GGUF`` suffix, only when the listing
   source confirms that it exists;
6. the GGUF repo itself when it has tokenizer files but its config.json could not be read.

Only tokenizer/config files are fetched from the source, never its weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelformats.errors import (
    LISTING_UNAVAILABLE,
    GatedRepoError,
    InvalidRepoIdError,
    RepoNotFoundError,
    TokenizerSourceError,
)
from modelformats.listing import ListingSource, RepoListing, validate_repo_id
from modelformats.naming import (
    CONFIG_FILES,
    TOKENIZER_CORE_FILES,
    TOKENIZER_FILES,
    escape_pattern,
    has_tokenizer,
    support_files,
)

__all__ = [
    "STANDARD_TOKENIZER_FILES",
    "BaseRepo",
    "config_state",
    "find_base_repo",
    "find_tokenizer_source",
    "header_base_repos",
    "sibling_candidates",
]

# Fetched from a source whose listing is partial: snapshot_download skips names that do not exist.
STANDARD_TOKENIZER_FILES: tuple[str, ...] = (*CONFIG_FILES, *TOKENIZER_FILES)
# "tokenizer.json, tokenizer.model, ... or spiece.model", for messages.
_TOKENIZER_NAMES = f"{', '.join(TOKENIZER_CORE_FILES[:-1])} or {TOKENIZER_CORE_FILES[-1]}"
# A real HF config.json is >= ~500 bytes (architectures, sizes, rope); TheBloke's stub is 31 bytes.
_MIN_REAL_CONFIG_BYTES = 256
# Keys only a real model config has (a stub carries just model_type).
_REAL_CONFIG_KEYS = ("architectures", "hidden_size", "num_hidden_layers", "text_config", "d_model")
# Repo-name suffixes of GGUF conversions: `-GGUF`, mradermacher's `-i1-GGUF`, gguf-my-repo's `-Q4_K_M-GGUF`.
_GGUF_SUFFIX = re.compile(r"[-_.]gguf$", re.IGNORECASE)
_HUB_HOSTS = ("huggingface.co", "hf.co")


@dataclass(frozen=True, kw_only=True)
class BaseRepo:
    """A repo found to hold the tokenizer/config (and usually the original weights) of a GGUF."""

    repo_id: str
    # Which rule found it: "explicit" | "self" | "card" | "header" | "sibling".
    rule: str
    # A sentence for the plan's explanation.
    reason: str
    # Its listing, when the source could fetch it; else why not.
    listing: RepoListing | None = None
    unavailable: str | None = None
    # Sentences on candidates that were considered and passed over.
    skipped: tuple[str, ...] = ()

    @property
    def is_self(self) -> bool:
        return self.rule == "self"

    def tokenizer_files(self) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        """(files seen, allow_patterns, patterns guessed) for fetching only tokenizer/config files."""
        if self.listing is None:
            return (), STANDARD_TOKENIZER_FILES, True
        files = support_files(self.listing)
        patterns = tuple(escape_pattern(p) for p in files)
        if self.listing.complete:
            return files, patterns, False
        extra = tuple(n for n in STANDARD_TOKENIZER_FILES if n not in files)
        return files, patterns + extra, bool(extra)


def config_state(listing: RepoListing) -> str:
    """ "real", "stub", "unread" (present, content and size unknown) or "absent" for config.json."""
    f = listing.get("config.json")
    if f is None:
        return "absent"
    if listing.config is not None:
        return "real" if any(k in listing.config for k in _REAL_CONFIG_KEYS) else "stub"
    if f.size is not None:
        return "real" if f.size >= _MIN_REAL_CONFIG_BYTES else "stub"
    return "unread"


def header_base_repos(headers: Mapping[str, Mapping[str, Any]], *, prefer: str | None = None) -> tuple[str, ...]:
    """Repo ids named by `general.base_model.N.repo_url` in the listing's GGUF headers (`prefer` first)."""
    order = sorted(headers, key=lambda p: (p != prefer, p))
    found: list[str] = []
    for path in order:
        meta = headers[path].get("metadata", {})
        if not isinstance(meta, Mapping):
            continue
        count = meta.get("general.base_model.count")
        for i in range(count if isinstance(count, int) and 0 < count <= 64 else 0):
            repo = _repo_from_url(meta.get(f"general.base_model.{i}.repo_url"))
            if repo is not None and repo not in found:
                found.append(repo)
    return tuple(found)


def _repo_from_url(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not any(host == h or host.endswith(f".{h}") for h in _HUB_HOSTS):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        return None
    return _valid(f"{segments[0]}/{segments[1]}")


def _valid(repo_id: str) -> str | None:
    try:
        return validate_repo_id(repo_id)
    except InvalidRepoIdError:
        return None


def sibling_candidates(repo_id: str) -> tuple[str, ...]:
    """Same-owner repos a `-GGUF` conversion is usually named after, most likely first."""
    owner, _, name = repo_id.partition("/")
    base = _GGUF_SUFFIX.sub("", name)
    if base == name:
        return ()
    names = [base]
    from modelformats.gguf.quant import find_quant

    # mradermacher's `-i1-GGUF` and gguf-my-repo's `<name>-Q4_K_M-GGUF`.
    for suffix in ("-i1", "_i1", ".i1"):
        if base.lower().endswith(suffix):
            names.append(base[: -len(suffix)])
    tag, raw = find_quant(base)
    if tag is not None and base.endswith(raw) and len(base) > len(raw) + 1:
        names.append(base[: -len(raw) - 1])
    return tuple(dict.fromkeys(r for n in names if (r := _valid(f"{owner}/{n}")) is not None))


def _fetch(
    source: ListingSource | None, repo_id: str, *, missing_ok: bool = True
) -> tuple[RepoListing | None, str | None]:
    """The listing of `repo_id`, or why not; a missing repo raises RepoNotFoundError unless `missing_ok`."""
    if source is None:
        return None, "no listing source was given to read it"
    try:
        return source.fetch(repo_id), None
    except GatedRepoError:
        return None, "it is gated: accept its licence on the Hub, and a token is needed to download"
    except LISTING_UNAVAILABLE as exc:
        if isinstance(exc, RepoNotFoundError) and not missing_ok:
            raise
        return None, f"the listing source could not list it ({type(exc).__name__})"


def _exists(source: ListingSource | None, repo_id: str) -> bool:
    if source is None:
        return False
    try:
        return bool(source.exists(repo_id))
    except LISTING_UNAVAILABLE:
        return False


def find_base_repo(
    listing: RepoListing,
    source: ListingSource | None,
    *,
    explicit: str | None = None,
    model_file: str | None = None,
) -> BaseRepo | None:
    """The base model's repo of a GGUF repo (rules 1, 3, 4 and 5 of the module docstring), or None."""
    if explicit:
        validate_repo_id(explicit)
        try:
            # Only a source that knows every repo (the Hub) can say a name does not exist; a recording
            # that lacks the repo leaves it unavailable (its standard file names are requested).
            found, why = _fetch(source, explicit, missing_ok=not getattr(source, "knows_every_repo", False))
        except RepoNotFoundError as exc:
            # A mistyped flag must not become a base repo: it would be sized from and fetched from.
            # The source's own words follow (a recording source says how to record the repo).
            raise TokenizerSourceError(
                f"--tokenizer-from {explicit!r} was not found on the source; check the name, or pass a repo "
                f"that has tokenizer.json/tokenizer.model. The source said: {exc}"
            ) from None
        reason = f"{explicit} was given with --tokenizer-from"
        return BaseRepo(repo_id=explicit, rule="explicit", reason=reason, listing=found, unavailable=why)
    return _search(listing, source, model_file=model_file)[0]


def _search(
    listing: RepoListing, source: ListingSource | None, *, model_file: str | None
) -> tuple[BaseRepo | None, list[str]]:
    """The first usable candidate of rules 3-5, and sentences on the candidates passed over."""
    skipped: list[str] = []
    candidates: list[tuple[str, str, str]] = []
    for i, repo in enumerate(listing.base_models):
        many = f" (the first of {len(listing.base_models)})" if len(listing.base_models) > 1 and i == 0 else ""
        candidates.append((repo, "card", f"the model card's base_model{many} names {repo}"))
    for repo in header_base_repos(listing.gguf_headers, prefer=model_file):
        candidates.append((repo, "header", f"the GGUF header's general.base_model keys name {repo}"))
    for repo in sibling_candidates(listing.repo_id):
        candidates.append((repo, "sibling", f"{repo} is this repo's name without the GGUF suffix"))
    seen = {listing.repo_id.lower()}
    for repo, rule, reason in candidates:
        if _valid(repo) is None:
            skipped.append(f"{reason}, which is not a valid repo id")
            continue
        if repo.lower() in seen:
            continue
        seen.add(repo.lower())
        if rule == "sibling" and not _exists(source, repo):
            skipped.append(f"{reason}, but no such repo was found")
            continue
        found, why = _fetch(source, repo)
        if found is not None and found.complete and not has_tokenizer(found):
            skipped.append(f"{reason}, but it has no tokenizer file ({_TOKENIZER_NAMES})")
            continue
        confirmed = ", and the listing source confirms that it exists" if rule == "sibling" else ""
        base = BaseRepo(
            repo_id=repo,
            rule=rule,
            reason=reason + confirmed,
            listing=found,
            unavailable=why,
            skipped=tuple(skipped),
        )
        return base, skipped
    return None, skipped


def find_tokenizer_source(
    listing: RepoListing,
    source: ListingSource | None,
    *,
    explicit: str | None = None,
    model_file: str | None = None,
) -> BaseRepo:
    """The repo to take tokenizer/config files from, by the module docstring's order; raise if none."""
    state = config_state(listing)
    own = has_tokenizer(listing)
    if explicit:
        found = find_base_repo(listing, source, explicit=explicit)
        assert found is not None
        return found
    if own and state == "real":
        return BaseRepo(
            repo_id=listing.repo_id,
            rule="self",
            reason=f"{listing.repo_id} carries its own tokenizer files and a real config.json",
            listing=listing,
        )
    found, skipped = _search(listing, source, model_file=model_file)
    if found is not None:
        return found
    if own and state == "unread":
        reason = (
            f"{listing.repo_id} carries its own tokenizer files; its config.json was not read, so check that "
            "it is a full model config (or pass --tokenizer-from)"
        )
        return BaseRepo(repo_id=listing.repo_id, rule="self", reason=reason, listing=listing, skipped=tuple(skipped))
    raise TokenizerSourceError(_no_source_message(listing, state, own, skipped))


def _no_source_message(listing: RepoListing, state: str, own: bool, skipped: Sequence[str]) -> str:
    why: list[str] = []
    if own:
        why.append(f"its config.json is {state}")
    elif state == "real":
        why.append(f"it has a config.json but no tokenizer file ({_TOKENIZER_NAMES})")
    else:
        why.append("it has no tokenizer files")
    if not listing.base_models:
        why.append("its card names no base_model")
    if not header_base_repos(listing.gguf_headers):
        why.append("no GGUF header with general.base_model keys was read")
    if not sibling_candidates(listing.repo_id):
        why.append("its name has no -GGUF suffix to strip")
    why.extend(skipped)
    return (
        f"No tokenizer/config source for the GGUF repo {listing.repo_id!r}: {'; '.join(why)}. Without one, "
        "vLLM builds the tokenizer from GGUF metadata, which is slow and fails for many models "
        '("TypeError: not a string" when tokenizer files are missing, SentencePiece load errors). '
        "Pass --tokenizer-from REPO, naming the original model the GGUF was converted from."
    )
