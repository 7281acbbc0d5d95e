"""GPU rules as data: what a rule matches (from traits, never names) and what it sets.

Rules are tried in order; the first whose `RuleMatch` holds fires and the plan records its name.
A `RuleRegistry` validates each rule when it is registered (every GPU name in the catalogue,
utilization in (0, 1], counts within Modal's limits, ...) and refuses a second rule of the same
name unless `replace=True`. `default_registry` holds the shipped rules; tests build their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from modelformats.errors import DuplicateRegistrationError, RegistrationError, UnknownGpuError
from modelformats.gpu.catalogue import get_gpu

__all__ = [
    "BLOCK_SIZES",
    "GpuRule",
    "RuleMatch",
    "RuleRegistry",
    "RuleSettings",
    "RuleSubject",
    "builtin_rules",
    "default_rules",
]

# Block sizes vLLM's CUDA attention backends take (CacheConfig.DEFAULT_BLOCK_SIZE = 16, config/cache.py:185).
BLOCK_SIZES = (8, 16, 32, 64, 128, 256)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleSubject:
    """The facts a rule may look at: resolved from the request, never from a repo or file name."""

    is_moe: bool | None
    params_total: int | None
    params_active: int | None
    weights_bytes: int
    format: str | None
    engine: str


def _human(n: int) -> str:
    return f"{n / 1e9:g}B" if n >= 10**9 else f"{n:,}"


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleMatch:
    """Conditions, all of which must hold; `None` means "any". An unknown fact never satisfies a bound."""

    is_moe: bool | None = None
    min_params_total: int | None = None
    max_params_total: int | None = None
    min_params_active: int | None = None
    max_params_active: int | None = None
    min_weights_bytes: int | None = None
    max_weights_bytes: int | None = None
    formats: frozenset[str] | None = None
    engines: frozenset[str] | None = None

    def matches(self, subject: RuleSubject) -> bool:
        if self.is_moe is not None and subject.is_moe is not self.is_moe:
            return False
        for low, high, value in (
            (self.min_params_total, self.max_params_total, subject.params_total),
            (self.min_params_active, self.max_params_active, subject.params_active),
            (self.min_weights_bytes, self.max_weights_bytes, subject.weights_bytes),
        ):
            if low is None and high is None:
                continue
            if value is None or (low is not None and value < low) or (high is not None and value > high):
                return False
        if self.formats is not None and subject.format not in self.formats:
            return False
        return self.engines is None or subject.engine in self.engines

    def describe(self) -> str:
        parts: list[str] = []
        if self.is_moe is not None:
            parts.append("MoE" if self.is_moe else "dense")
        for label, low, high in (
            ("total parameters", self.min_params_total, self.max_params_total),
            ("active parameters", self.min_params_active, self.max_params_active),
        ):
            if low is not None or high is not None:
                lo = _human(low) if low is not None else "0"
                hi = _human(high) if high is not None else "any"
                parts.append(f"{lo}-{hi} {label}")
        if self.min_weights_bytes is not None or self.max_weights_bytes is not None:
            lo = f"{(self.min_weights_bytes or 0) / 1e9:g}"
            hi = f"{self.max_weights_bytes / 1e9:g}" if self.max_weights_bytes is not None else "any"
            parts.append(f"{lo}-{hi} GB of weights")
        if self.formats is not None:
            parts.append("format " + "/".join(sorted(self.formats)))
        if self.engines is not None:
            parts.append("engine " + "/".join(sorted(self.engines)))
        return ", ".join(parts) or "any model"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = sorted(value) if isinstance(value, frozenset) else value
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleSettings:
    """What a rule sets. `gpu=None`: the policy picks a type from `prefer` (seed) or by price (cost)."""

    gpu: str | None = None
    # Types tried in order when `gpu` is None (seed policy only).
    prefer: tuple[str, ...] = ()
    # Exact GPU count; None = the fewest that hold the estimate.
    gpu_count: int | None = None
    gpu_memory_utilization: float = 0.9
    # Caps: the plan uses min(cap, the model's native context) and the user's override when given.
    max_model_len: int = 8192
    max_num_seqs: int = 16
    # False: no tensor parallelism; more than one GPU is then pipeline parallel.
    tensor_parallel: bool = True
    # None: leave vLLM's default.
    enable_chunked_prefill: bool | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuRule:
    """A named rule: when `match` holds, `settings` apply. `reason` is shown in the plan."""

    name: str
    reason: str
    match: RuleMatch = field(default_factory=RuleMatch)
    settings: RuleSettings = field(default_factory=RuleSettings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "match": self.match.to_dict(),
            "matches": self.match.describe(),
            "settings": self.settings.to_dict(),
        }


def _check_gpu(problems: list[str], label: str, name: str, count: int | None = None) -> None:
    try:
        gpu = get_gpu(name)
    except UnknownGpuError as exc:
        problems.append(f"{label}: {exc}")
        return
    if count is not None and count > gpu.max_count:
        problems.append(f"gpu_count {count} exceeds the {gpu.max_count} x {gpu.name} one container takes")


def _validate_match(m: RuleMatch) -> list[str]:
    problems: list[str] = []
    for low_name, high_name in (
        ("min_params_total", "max_params_total"),
        ("min_params_active", "max_params_active"),
        ("min_weights_bytes", "max_weights_bytes"),
    ):
        low, high = getattr(m, low_name), getattr(m, high_name)
        for bound_name, bound in ((low_name, low), (high_name, high)):
            if bound is not None and (not isinstance(bound, int) or bound < 0):
                problems.append(f"{bound_name} must be a non-negative int, got {bound!r}")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append(f"{low_name} {low:,} is above {high_name} {high:,}")
    for name in ("formats", "engines"):
        value = getattr(m, name)
        if value is not None and not (isinstance(value, frozenset) and value):
            problems.append(f"{name} must be a non-empty frozenset or None, got {value!r}")
    return problems


def _validate_settings(s: RuleSettings) -> list[str]:
    problems: list[str] = []
    if s.gpu is not None:
        _check_gpu(problems, "gpu", s.gpu, s.gpu_count)
        if s.prefer:
            problems.append("prefer is only used when gpu is None; set one or the other")
    for name in s.prefer:
        _check_gpu(problems, "prefer", name)
    if s.gpu_count is not None and s.gpu_count < 1:
        problems.append(f"gpu_count must be >= 1, got {s.gpu_count}")
    util: object = s.gpu_memory_utilization
    if not isinstance(util, float | int) or not 0 < util <= 1:
        problems.append(f"gpu_memory_utilization must be in (0, 1], got {util!r}")
    for name in ("max_model_len", "max_num_seqs"):
        value = getattr(s, name)
        if not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive int, got {value!r}")
    if s.block_size is not None and s.block_size not in BLOCK_SIZES:
        problems.append(f"block_size {s.block_size} is not one of {', '.join(map(str, BLOCK_SIZES))}")
    batched = s.max_num_batched_tokens
    if batched is not None and s.enable_chunked_prefill is False and batched < s.max_model_len:
        problems.append(
            f"max_num_batched_tokens {batched:,} is below max_model_len {s.max_model_len:,} with chunked "
            "prefill off; vLLM refuses that (config/scheduler.py:317)"
        )
    if batched is not None and batched < s.max_num_seqs:
        problems.append("max_num_batched_tokens must be >= max_num_seqs")
    return problems


def _validate(rule: object) -> list[str]:
    """Every problem with a rule, so one error can name them all (pluggy checks hooks the same way)."""
    if not isinstance(rule, GpuRule):
        return [f"expected a GpuRule, got {type(rule).__name__}"]
    problems: list[str] = []
    if not _NAME.match(rule.name):
        problems.append(f"name {rule.name!r} must be lower-case letters, digits, '.', '_' or '-'")
    if not rule.reason.strip():
        problems.append("reason is empty: say why the rule exists (it is shown in every plan it decides)")
    match: object = rule.match
    settings: object = rule.settings
    if isinstance(match, RuleMatch):
        problems += _validate_match(match)
    else:
        problems.append(f"match must be a RuleMatch, got {type(match).__name__}")
    if isinstance(settings, RuleSettings):
        problems += _validate_settings(settings)
    else:
        problems.append(f"settings must be RuleSettings, got {type(settings).__name__}")
    return problems


class RuleRegistry:
    """An ordered set of `GpuRule`s; the first that matches fires."""

    def __init__(self, rules: tuple[GpuRule, ...] | list[GpuRule] = ()) -> None:
        self._rules: list[GpuRule] = []
        for rule in rules:
            self.register(rule)

    def register(self, rule: GpuRule, *, replace: bool = False, before: str | None = None) -> GpuRule:
        """Add `rule` last (or before the rule named `before`); a same-named rule needs `replace=True`."""
        problems = _validate(rule)
        if problems:
            name = getattr(rule, "name", repr(rule))
            raise RegistrationError(
                f"GPU rule {name!r} is invalid:\n"
                + "\n".join(f"- {p}" for p in problems)
                + "\nFix the rule and register it again."
            )
        index = self._index(rule.name)
        if index is not None and not replace:
            raise DuplicateRegistrationError("GPU rule", rule.name)
        if before is not None and self._index(before) is None:
            raise RegistrationError(
                f"Cannot register GPU rule {rule.name!r} before {before!r}: no rule of that name; "
                f"registered: {', '.join(self.names) or 'none'}."
            )
        if index is not None:
            if before is None:
                self._rules[index] = rule  # replacing keeps the rule's place in the order
                return rule
            del self._rules[index]
        position = len(self._rules) if before is None else self._index(before)
        assert position is not None
        self._rules.insert(position, rule)
        return rule

    def unregister(self, name: str) -> GpuRule:
        index = self._index(name)
        if index is None:
            raise KeyError(f"No GPU rule named {name!r}; registered: {', '.join(self.names) or 'none'}.")
        return self._rules.pop(index)

    def _index(self, name: str) -> int | None:
        for i, rule in enumerate(self._rules):
            if rule.name == name:
                return i
        return None

    @property
    def rules(self) -> tuple[GpuRule, ...]:
        """A read-only snapshot, in matching order."""
        return tuple(self._rules)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self._rules)

    def get(self, name: str) -> GpuRule:
        index = self._index(name)
        if index is None:
            raise KeyError(f"No GPU rule named {name!r}; registered: {', '.join(self.names) or 'none'}.")
        return self._rules[index]

    def match(self, subject: RuleSubject) -> GpuRule | None:
        for rule in self._rules:
            if rule.match.matches(subject):
                return rule
        return None

    def __iter__(self) -> Iterator[GpuRule]:
        return iter(tuple(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._index(name) is not None

    def copy(self) -> RuleRegistry:
        return RuleRegistry(self.rules)


def builtin_rules() -> tuple[GpuRule, ...]:
    """The shipped rules, in order: the user's MoE rules, then a default for everything else."""
    return (
        GpuRule(
            name="moe-18b-h100",
            reason=(
                "The user's rule for ~18B mixture-of-experts models (decided from traits: MoE and 12B-24B "
                "total parameters; it replaces a repo-name test for '8x3b'/'18b'): one H100 at 0.75 "
                "utilization, at most 4 sequences of 4,096 tokens, no tensor parallelism, no chunked "
                "prefill, block size 16."
            ),
            match=RuleMatch(is_moe=True, min_params_total=12 * 10**9, max_params_total=24 * 10**9),
            settings=RuleSettings(
                gpu="H100",
                gpu_memory_utilization=0.75,
                max_model_len=4096,
                max_num_seqs=4,
                tensor_parallel=False,
                enable_chunked_prefill=False,
                block_size=16,
            ),
        ),
        GpuRule(
            name="llamacpp",
            reason=(
                "llama.cpp's server allocates its whole --ctx-size up front, so it gets llama-server's own "
                "automatic slot count, 4 parallel sequences (tools/server/server.cpp:156-160 in the vendored "
                "build), of 8,192 tokens; all layers on the GPU; Modal's recommended inference GPU first."
            ),
            match=RuleMatch(engines=frozenset({"llamacpp"})),
            settings=RuleSettings(
                prefer=("L40S", "A100-80GB", "H100", "H200", "B200", "B300"),
                gpu_memory_utilization=0.9,
                max_model_len=8192,
                max_num_seqs=4,
            ),
        ),
        GpuRule(
            name="moe",
            reason=(
                "The user's MoE limits for every other mixture-of-experts model: all experts stay resident, "
                "no tensor parallelism (more GPUs are pipeline stages; expert parallelism is offered), "
                "no chunked prefill, block size 16."
            ),
            match=RuleMatch(is_moe=True),
            settings=RuleSettings(
                prefer=("L40S", "A100-80GB", "H100", "H200", "B200", "B300"),
                gpu_memory_utilization=0.9,
                max_model_len=8192,
                max_num_seqs=8,
                tensor_parallel=False,
                enable_chunked_prefill=False,
                block_size=16,
            ),
        ),
        GpuRule(
            name="default",
            reason=(
                "Everything else: Modal's recommended inference GPU first (L40S), then larger ones; vLLM's "
                "default utilization 0.9; up to 16 sequences of 8,192 tokens."
            ),
            settings=RuleSettings(
                prefer=("L40S", "A100-80GB", "H100", "H200", "B200", "B300"),
                gpu_memory_utilization=0.9,
                max_model_len=8192,
                max_num_seqs=16,
            ),
        ),
    )


def default_rules() -> RuleRegistry:
    """A fresh registry of the shipped rules: change it freely, nothing else sees it."""
    return RuleRegistry(builtin_rules())
