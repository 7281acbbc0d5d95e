"""`FormatRegistry`: the set of format strategies, validated at registration, and detection.

Detection asks every strategy; all claims are kept (with their evidence) and the highest
`priority` wins. Priorities are unique, so the outcome never depends on registration order.
Third-party packages add formats through the entry-point group `modelformats.formats`.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, cast

from modelformats.errors import DuplicateRegistrationError, NoWeightsError, RegistrationError
from modelformats.formats.base import Detection, ModelFormat, ServingFacts
from modelformats.listing import RepoListing

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "DetectionResult",
    "DetectionSummary",
    "FormatRegistry",
    "default_registry",
    "disabled_from_env",
]

ENTRY_POINT_GROUP = "modelformats.formats"
# Rollback switch: `MODELFORMATS_DISABLE=gguf` (comma-separated) removes formats from detection.
DISABLE_ENV = "MODELFORMATS_DISABLE"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class DetectionResult:
    """The winning claim, the strategy behind it, and every claim made (winner first)."""

    detection: Detection
    strategy: ModelFormat
    candidates: tuple[Detection, ...]
    disabled: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        losers = [c.format for c in self.candidates[1:]]
        if not losers:
            return f"only {self.detection.format!r} matched"
        return f"{self.detection.format!r} has the highest priority among {[self.detection.format, *losers]}"

    def detection_summary(self) -> DetectionSummary:
        """What a plan keeps of the detection (its `detection` object), typed: the claims as their JSON
        carries them, the rule as a sentence, no strategy object."""
        return DetectionSummary(
            detection=Detection.from_dict(self.detection.to_dict()),
            rule=self.rule,
            candidates=tuple(Detection.from_dict(c.to_dict()) for c in self.candidates),
            disabled=self.disabled,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.detection_summary().to_dict()


@dataclass(frozen=True, kw_only=True, slots=True)
class DetectionSummary:
    """The plan's view of a `DetectionResult` (its `detection` object): exactly the fields the JSON carries.

    The winning claim's fields sit at the top of the JSON object, beside the rule, every claim made
    (winner first) and the formats switched off. `from_dict(to_dict())` gives it back unchanged.
    """

    detection: Detection
    rule: str
    candidates: tuple[Detection, ...]
    disabled: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        return self.detection.format

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.detection.to_dict(),
            "rule": self.rule,
            "candidates": [c.to_dict() for c in self.candidates],
            "disabled": list(self.disabled),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectionSummary:
        return cls(
            detection=Detection.from_dict(d),
            rule=str(d.get("rule", "")),
            candidates=tuple(Detection.from_dict(c) for c in d.get("candidates", ())),
            disabled=tuple(d.get("disabled", ())),
        )


def _check_callable(fmt: object, member: str, params: int) -> str | None:
    fn = getattr(fmt, member, None)
    if not callable(fn):
        return f"has no callable {member}()"
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without signatures: trust them
        return None
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) != params and not any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()
    ):
        return f"{member}() must take {params} positional argument(s), takes {len(positional)}"
    return None


def validate_format(fmt: object) -> None:
    """Refuse a strategy that lacks a member of the ModelFormat protocol (pluggy-style check)."""
    problems: list[str] = []
    name = getattr(fmt, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"name must be a lower-case identifier like 'safetensors', got {name!r}")
    priority = getattr(fmt, "priority", None)
    if not isinstance(priority, int) or isinstance(priority, bool):
        problems.append(f"priority must be an int, got {priority!r}")
    if not isinstance(getattr(fmt, "description", None), str):
        problems.append("description must be a string")
    serving = getattr(fmt, "serving", None)
    if not isinstance(serving, ServingFacts):
        problems.append(
            f"serving must be a ServingFacts (the engines, vLLM quantization and floor of the format), got {serving!r}"
        )
    for member, params in (("detect", 1), ("select_files", 3)):
        if (problem := _check_callable(fmt, member, params)) is not None:
            problems.append(problem)
    if problems:
        raise RegistrationError(f"Cannot register format {fmt!r}: " + "; ".join(problems) + ".")


class FormatRegistry:
    """Format strategies by name. Build fresh ones in tests; `default_registry()` for the app."""

    def __init__(self, formats: Iterable[ModelFormat] = ()) -> None:
        self._formats: dict[str, ModelFormat] = {}
        for fmt in formats:
            self.register(fmt)

    def register(self, fmt: ModelFormat, *, replace: bool = False) -> ModelFormat:
        validate_format(fmt)
        if fmt.name in self._formats and not replace:
            raise DuplicateRegistrationError("format", fmt.name)
        clash = next(
            (other for other in self._formats.values() if other.priority == fmt.priority and other.name != fmt.name),
            None,
        )
        if clash is not None:
            raise RegistrationError(
                f"Format {fmt.name!r} has priority {fmt.priority}, already used by {clash.name!r}; "
                "priorities decide conflicts and must be unique. Pick another priority."
            )
        self._formats[fmt.name] = fmt
        return fmt

    def unregister(self, name: str) -> ModelFormat:
        try:
            return self._formats.pop(name)
        except KeyError:
            raise RegistrationError(
                f"No format named {name!r} is registered; known: {sorted(self._formats)}."
            ) from None

    @property
    def formats(self) -> Mapping[str, ModelFormat]:
        """A read-only view, highest priority first."""
        ordered = sorted(self._formats.values(), key=lambda f: -f.priority)
        return MappingProxyType({f.name: f for f in ordered})

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def copy(self, *, without: Iterable[str] = ()) -> FormatRegistry:
        drop = set(without)
        unknown = drop - set(self._formats)
        if unknown:
            raise RegistrationError(
                f"Cannot disable unknown format(s) {sorted(unknown)}; known: {sorted(self._formats)}."
            )
        return FormatRegistry(f for n, f in self._formats.items() if n not in drop)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register formats advertised by installed packages; returns their names."""
        added: list[str] = []
        for ep in entry_points(group=group):
            obj = ep.load()
            fmt = cast("ModelFormat", obj() if inspect.isclass(obj) else obj)
            self.register(fmt)  # validated here: the cast is checked, not trusted
            added.append(fmt.name)
        return added

    def detect(self, listing: RepoListing, *, disabled: Iterable[str] = ()) -> DetectionResult:
        """The highest-priority claim on `listing`; NoWeightsError when nothing claims it."""
        off = tuple(sorted(set(disabled)))
        claims: list[tuple[ModelFormat, Detection]] = []
        for fmt in self.formats.values():
            if fmt.name in off:
                continue
            detection = fmt.detect(listing)
            if detection is not None:
                claims.append((fmt, detection))
        if not claims:
            raise NoWeightsError(listing.repo_id, list(listing.paths))
        strategy, winner = claims[0]
        return DetectionResult(
            detection=winner, strategy=strategy, candidates=tuple(d for _, d in claims), disabled=off
        )


def builtin_formats() -> list[ModelFormat]:
    from modelformats.formats.gguf import GGUFFormat
    from modelformats.formats.hf import (
        AWQFormat,
        BitsAndBytesFormat,
        CompressedTensorsFormat,
        FP8Format,
        GPTQFormat,
        PyTorchBinFormat,
        SafeTensorsFormat,
    )
    from modelformats.formats.unservable import (
        EXL2Format,
        LoraAdapterFormat,
        MetaConsolidatedFormat,
        MLXFormat,
        ONNXFormat,
    )

    return [
        SafeTensorsFormat(),
        PyTorchBinFormat(),
        GPTQFormat(),
        AWQFormat(),
        FP8Format(),
        CompressedTensorsFormat(),
        BitsAndBytesFormat(),
        GGUFFormat(),
        EXL2Format(),
        MLXFormat(),
        ONNXFormat(),
        MetaConsolidatedFormat(),
        LoraAdapterFormat(),
    ]


_DEFAULT: FormatRegistry | None = None


def default_registry() -> FormatRegistry:
    """The module-level registry: built-in formats plus installed entry points (built once)."""
    global _DEFAULT  # noqa: PLW0603 - a lazily built module singleton, like fsspec's registry
    if _DEFAULT is None:
        registry = FormatRegistry(builtin_formats())
        registry.load_entry_points()
        _DEFAULT = registry
    return _DEFAULT


def disabled_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Formats switched off by MODELFORMATS_DISABLE (e.g. 'gguf' to roll GGUF support back)."""
    raw = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return tuple(sorted({part.strip().lower() for part in raw.split(",") if part.strip()}))
