"""The contract every `ModelFormat` passes. A format's test class inherits `FormatContract` and
provides the strategy and listings it must (and must not) claim; the checks here are shared.

Like fsspec's `tests/abstract/`, the point is that a new format cannot forget a rule: detection is
pure and never reads the repo name, selection returns safe, exact, pattern-matched files, and an
unservable format refuses to select files with our error.
"""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelformats.errors import UnservableFormatError
from modelformats.formats.base import Detection, FileSelection, ModelFormat, SelectionContext
from modelformats.listing import RepoListing, check_repo_path
from modelformats.registry import FormatRegistry
from modelformats.sources.recorded import RecordedSource

_OWNER = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}(-(GGUF|AWQ|GPTQ|8x3b|mlx|exl2|bnb-4bit|18b)){0,2}", fullmatch=True)


class FormatContract:
    """Subclass with `fmt`, `claims` (listings it must claim) and `rejects` (listings it must not)."""

    fmt: ClassVar[ModelFormat]
    claims: ClassVar[tuple[RepoListing, ...]]
    rejects: ClassVar[tuple[RepoListing, ...]] = ()
    source: ClassVar[RecordedSource | None] = None

    def context(self) -> SelectionContext:
        return SelectionContext(source=self.source)

    # --- the strategy itself -------------------------------------------------------------------

    def test_registers_in_a_fresh_registry(self) -> None:
        registry = FormatRegistry()
        registry.register(self.fmt)
        assert registry.formats[self.fmt.name] is self.fmt

    def test_protocol_members(self) -> None:
        assert isinstance(self.fmt, ModelFormat)
        assert self.fmt.name == self.fmt.name.lower() and self.fmt.name
        assert isinstance(self.fmt.priority, int)
        assert self.fmt.description

    def test_serving_facts(self) -> None:
        """What the planner, engines and GPU policy read: engines for servable claims, a vLLM method vLLM has."""
        from modelformats.engines.vllm import PROFILES
        from modelformats.formats.base import ServingFacts

        facts = self.fmt.serving
        assert isinstance(facts, ServingFacts)
        servable = any(d is not None and d.servable for d in map(self.fmt.detect, self.claims))
        assert bool(facts.engines) == servable, "servable formats name their engines, unservable ones none"
        method = facts.vllm_quantization
        if method is not None and facts.container == "hf-directory" and "vllm" in facts.engines:
            assert any(method in p.quantization_methods for p in PROFILES), f"no verified vLLM has {method!r}"
        assert not (facts.quantization_flag and method is None), "--quantization needs a method to name"

    # --- detection ------------------------------------------------------------------------------

    def test_claims(self) -> None:
        assert self.claims, "a format's contract needs at least one listing it claims"
        for listing in self.claims:
            detection = self.fmt.detect(listing)
            assert isinstance(detection, Detection), listing.repo_id
            assert detection.format == self.fmt.name
            assert detection.evidence and all(isinstance(e, str) and e for e in detection.evidence)

    def test_rejects(self) -> None:
        for listing in self.rejects:
            assert self.fmt.detect(listing) is None, listing.repo_id

    def test_detection_is_pure_and_repeatable(self) -> None:
        for listing in (*self.claims, *self.rejects):
            before = listing.to_dict()
            assert self.fmt.detect(listing) == self.fmt.detect(listing)
            assert listing.to_dict() == before

    # Inherited by every format's class: each runs it with its own listings, which is the point.
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(owner=_OWNER, name=_NAME)
    def test_detection_never_reads_the_repo_name(self, owner: str, name: str) -> None:
        # Renaming a repo — even to a name that "says" GGUF, AWQ, 8x3b — changes nothing.
        for listing in (*self.claims, *self.rejects):
            renamed = replace(listing, repo_id=f"{owner}/{name}")
            got, want = self.fmt.detect(renamed), self.fmt.detect(listing)
            assert (got is None) == (want is None)
            if got is not None and want is not None:
                assert got.evidence == want.evidence
                assert got.quantization == want.quantization

    # --- file selection -------------------------------------------------------------------------

    def _select(self, listing: RepoListing) -> FileSelection | None:
        detection = self.fmt.detect(listing)
        assert detection is not None
        if not detection.servable:
            with pytest.raises(UnservableFormatError) as exc:
                self.fmt.select_files(listing, detection, self.context())
            assert detection.instead and detection.instead in str(exc.value)
            return None
        return self.fmt.select_files(listing, detection, self.context())

    def test_selection_is_exact_safe_and_pattern_matched(self) -> None:
        for listing in self.claims:
            selection = self._select(listing)
            if selection is None:
                continue
            assert selection.files, listing.repo_id
            assert len(set(selection.files)) == len(selection.files)
            for path in selection.files:
                check_repo_path(path)
                assert listing.has(path), f"{path} is not in {listing.repo_id}"
                assert any(fnmatchcase(path, p) for p in selection.allow_patterns), path
            assert set(selection.weight_files) <= set(selection.files)
            excluded = {p for e in selection.excluded for p in e.paths}
            assert not excluded & set(selection.files)
            # Every pattern that names an existing file names a selected one (no weights sneak in).
            for path in listing.paths:
                if path not in selection.files and any(fnmatchcase(path, p) for p in selection.allow_patterns):
                    pytest.fail(f"pattern would also fetch {path}")
            if selection.download_bytes is not None:
                assert selection.download_bytes >= 0
            assert selection.bytes_basis

    def test_selection_is_deterministic(self) -> None:
        for listing in self.claims:
            if (detection := self.fmt.detect(listing)) is not None and detection.servable:
                a = self.fmt.select_files(listing, detection, self.context())
                b = self.fmt.select_files(listing, detection, self.context())
                assert a == b
