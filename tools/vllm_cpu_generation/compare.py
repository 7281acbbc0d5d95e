"""Greedy generations of several engines compared token by token, with a margin check (stdlib only).

A generation is, per prompt, the greedy token ids and at each position the log-probabilities of the
best and second-best next token (`top1`, `top2`). Two engines agree on a prompt when their token ids
are identical. A position is *decidable* against one reference when both engines' top-1/top-2 margins
there are at least `MARGIN_FACTOR` times the largest top-1 log-probability difference observed
between the two engines in that case: only then does an exact token match (or mismatch) say
something about the weights rather than about rounding. Tokens that match at a position too close
to call make the comparison *undecidable*, never identical.

The default test run imports this module (tests/test_vllm_cpu_generation.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MARGIN_FACTOR", "CaseComparison", "compare_case", "first_difference", "sig"]

# "Well above the observed numeric difference": a factor of 10 between the smallest margin and the
# largest top-1 log-probability difference between engines.
MARGIN_FACTOR = 10.0
# Below this, a difference is rounding noise of float32 log-softmax (the floor keeps the ratio finite).
DIFF_FLOOR = 1e-6


def sig(value: float, digits: int = 2) -> float:
    """`value` rounded to `digits` significant digits (committed results must reproduce exactly)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits - 1}e}")


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first position where two token sequences differ (None when identical)."""
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseComparison:
    """One engine's generation against the references, for one case (all prompts)."""

    identical: int  # positions whose token equals every reference's (prefix up to the first difference)
    total: int  # prompts x tokens
    max_logprob_diff: float  # largest |top-1 log-prob difference| to any reference over identical positions
    noise: dict[str, float]  # that difference per reference
    min_margin: float  # smallest top-1/top-2 margin of any engine over compared positions
    undecidable_positions: list[str]  # "prompt P position I vs REF": a margin < MARGIN_FACTOR x that difference
    first_differences: list[str]  # "prompt P vs REF at position I (decidable|undecidable)"

    @property
    def verdict(self) -> str:
        """'identical', 'undecidable' (identical but too close to call somewhere), or 'different'."""
        decidable_difference = any(d.endswith("(decidable)") for d in self.first_differences)
        if self.first_differences:
            return "different" if decidable_difference else "undecidable"
        return "undecidable" if self.undecidable_positions else "identical"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "identical_tokens": f"{self.identical}/{self.total}",
            "max_top1_logprob_diff": sig(self.max_logprob_diff),
            "min_top1_top2_margin": sig(self.min_margin),
            "margin_factor_required": MARGIN_FACTOR,
            "undecidable_positions": self.undecidable_positions,
            "first_differences": self.first_differences,
        }


def compare_case(
    candidate: Sequence[Mapping[str, Any]],
    references: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    noise: Mapping[str, float] | None = None,
) -> CaseComparison:
    """Compare `candidate` (one generation per prompt) with each reference engine's generations.

    Each generation: {"tokens": [...], "top1": [...], "top2": [...]} of equal lengths. The numeric
    difference is measured per reference (llama.cpp's F16 kernels round activations to F16, for
    example, so it is noisier than a float32 reference), and decidability is judged against it.
    A negative control passes the `noise` its correct counterpart measured: a broken engine's own
    log-probabilities say nothing about rounding. A difference is decidable when the reference was sure
    of its token there (its margin at least MARGIN_FACTOR x the noise).
    """
    total = sum(len(g["tokens"]) for g in candidate)
    identical = 0
    stops: list[int] = []
    differences: list[tuple[int, str, int]] = []
    for p, generation in enumerate(candidate):
        stop = len(generation["tokens"])
        for name, gens in references.items():
            at = first_difference(generation["tokens"], gens[p]["tokens"])
            if at is not None:
                differences.append((p, name, at))
                stop = min(stop, at)
        stops.append(stop)
        identical += stop
    measured = {
        name: max(
            [abs(candidate[p]["top1"][i] - gens[p]["top1"][i]) for p, stop in enumerate(stops) for i in range(stop)],
            default=0.0,
        )
        for name, gens in references.items()
    }
    noise = dict(noise) if noise is not None else measured

    def margin(generation: Mapping[str, Any], i: int) -> float:
        return float(generation["top1"][i] - generation["top2"][i])

    def sure(generation: Mapping[str, Any], i: int, name: str) -> bool:
        return i < len(generation["top1"]) and margin(generation, i) >= MARGIN_FACTOR * max(noise[name], DIFF_FLOOR)

    def decidable(p: int, i: int, name: str) -> bool:
        return sure(candidate[p], i, name) and sure(references[name][p], i, name)

    undecidable = [
        f"prompt {p} position {i} vs {name}"
        for p, stop in enumerate(stops)
        for i in range(stop)
        for name in references
        if not decidable(p, i, name)
    ]
    margins = [
        margin(g[p], i) for p, stop in enumerate(stops) for i in range(stop) for g in (candidate, *references.values())
    ]
    firsts = [
        f"prompt {p} vs {name} at position {at} "
        f"({'decidable' if sure(references[name][p], at, name) else 'undecidable'})"
        for p, name, at in differences
    ]
    return CaseComparison(
        identical=identical,
        total=total,
        max_logprob_diff=max(measured.values(), default=0.0),
        noise=measured,
        min_margin=min(margins, default=0.0),
        undecidable_positions=undecidable,
        first_differences=firsts,
    )
