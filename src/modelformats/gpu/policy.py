"""GPU policies as values: a `GpuPolicy` is a rule registry plus a search, and `choose()` answers.

    policies = default_policies()                 # "seed" and "cost", each reporting the other's answer
    decision = policies.get("seed").choose(request)
    mine = GpuPolicy(name="fewest-gpus", search=my_search, rules=my_rules)   # nothing global changes

`choose` resolves the request once (`sizing.resolve_request`: weights, the first matching rule, limits,
capability floor), runs the policy's search over sized layouts (`search.py`) and explains the answer
(`explain.py`). A policy's `compare_with` runs its search on the same resolution, so every answer
carries the other policy's answer and the price difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from modelformats.errors import DuplicateRegistrationError, InvalidRequestError, NoFittingGpuError
from modelformats.gpu.catalogue import GpuSelection, format_compute_capability, parse_gpu
from modelformats.gpu.decision import GpuChoice, GpuDecision, GpuRequest
from modelformats.gpu.explain import explain_decision, launch_facts, no_fit_error, parallel_options
from modelformats.gpu.rules import RuleRegistry, default_rules
from modelformats.gpu.search import GpuSearch, SearchResult, SearchSpace, cost_search, seed_search
from modelformats.gpu.sizing import ResolvedRequest, build_option, resolve_request

__all__ = [
    "POLICIES",
    "GpuPolicy",
    "PolicyRegistry",
    "choose_gpu",
    "cost_policy",
    "default_policies",
    "seed_policy",
]

# The shipped policies, in the order `default_policies()` registers them.
POLICIES = ("seed", "cost")


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuPolicy:
    """A GPU policy: its name, how it searches, the rules it resolves requests with.

    Build your own with any `GpuSearch` and `RuleRegistry`; nothing is registered globally.
    """

    name: str
    search: GpuSearch
    rules: RuleRegistry = field(default_factory=default_rules)
    description: str = ""
    # The policy whose answer each decision also reports (its search on the same resolved request).
    compare_with: GpuPolicy | None = None

    def choose(self, request: GpuRequest) -> GpuDecision:
        """GPUs and limits for `request`, with `compare_with`'s answer and the price difference."""
        ctx = resolve_request(request, self.rules)
        decision = _decide(ctx, self, use_override=True)
        if decision.gpu_from_override:
            decision = self._note_oversized(ctx, decision)
        other_policy = self.compare_with
        if other_policy is None:
            return decision
        try:
            other = _decide(ctx, other_policy, use_override=False)
        except NoFittingGpuError as exc:
            sentence = f"The {other_policy.name} policy finds no GPU: {exc}"
            return replace(decision, warnings=(*decision.warnings, sentence))
        difference: float | None = None
        notes = decision.notes
        if not other.choice.same_hardware(decision.choice):
            difference = round(other.price_per_hour - decision.price_per_hour, 2)
            verdict = _price_words(difference)
            sentence = (
                f"The {other_policy.name} policy would choose {other.choice.describe()} at "
                f"${other.price_per_hour:.2f}/h "
                f"({verdict} than this plan's ${decision.price_per_hour:.2f}/h)."
            )
            notes = (*notes, self._policy_note(decision, other, verdict))
        else:
            sentence = f"The {other_policy.name} policy chooses the same GPUs."
        return replace(
            decision,
            other=other,
            price_difference_per_hour=difference,
            explanation=(*decision.explanation, sentence),
            notes=notes,
        )

    def _policy_note(self, decision: GpuDecision, other: GpuDecision, verdict: str) -> str:
        """Why this plan's GPUs and not the other policy's, in one line a new user reads as intended."""
        mine = _name(decision.choice)
        if decision.gpu_from_override:
            why = f"{mine} as forced by --gpu"
        elif self.search is seed_search:
            why = f"kept {mine} by rule {decision.rule.name}"
        else:
            why = f"{mine} is the cheapest that fits"
        return f"{why}; --policy {other.policy} picks {_name(other.choice)} for {verdict}"

    def _note_oversized(self, ctx: ResolvedRequest, decision: GpuDecision) -> GpuDecision:
        """A forced --gpu costlier than what this policy picks on its own: say so, and what would do."""
        try:
            needed = _decide(ctx, self, use_override=False)
        except NoFittingGpuError:
            return decision
        saving = round(decision.price_per_hour - needed.price_per_hour, 2)
        if saving <= 0 or needed.choice.same_hardware(decision.choice):
            return decision
        budget = decision.choice.gpu.usable_memory_bytes * decision.choice.gpu_memory_utilization
        share = 100 * decision.memory.per_gpu_in_budget_bytes / budget if budget else 0.0
        c, n = decision.choice, needed.choice
        forced = c.gpu.name + (f":{c.count}" if c.count > 1 else "") + (f" x {c.nodes} nodes" if c.nodes > 1 else "")
        if n.gpu.name != c.gpu.name:
            enough = f"{n.describe()} is enough"
        elif n.total_gpus == 1:
            enough = f"one {n.gpu.name} is enough"
        else:
            enough = f"{n.total_gpus} x {n.gpu.name} are enough"
        note = f"--gpu {forced} is larger than needed: each GPU is {share:.0f} % full; {enough} (${saving:.2f}/h less)"
        explanation = (*decision.explanation, note[0].upper() + note[1:] + ".")
        return replace(decision, notes=(*decision.notes, note), explanation=explanation)

    def with_rules(self, rules: RuleRegistry) -> GpuPolicy:
        return replace(self, rules=rules)


def _name(choice: GpuChoice) -> str:
    """`H100` for one GPU, else `describe()` (`H100 x2`, `2 nodes x H100:8`)."""
    return choice.gpu.name if choice.total_gpus == 1 else choice.describe()


def _price_words(difference: float) -> str:
    if difference < 0:
        return f"${-difference:.2f}/h less"
    if difference > 0:
        return f"${difference:.2f}/h more"
    return "the same price"


class PolicyRegistry:
    """GPU policies by name. A value: build one with `default_policies()` and pass it on."""

    def __init__(self, policies: Iterable[GpuPolicy] = ()) -> None:
        self._policies: dict[str, GpuPolicy] = {}
        for policy in policies:
            self.register(policy)

    def register(self, policy: GpuPolicy, *, replace: bool = False) -> GpuPolicy:
        if not isinstance(policy, GpuPolicy) or not callable(policy.search):
            raise InvalidRequestError(f"A GPU policy must be a GpuPolicy with a callable search, got {policy!r}.")
        if policy.name in self._policies and not replace:
            raise DuplicateRegistrationError("GPU policy", policy.name)
        self._policies[policy.name] = policy
        return policy

    def get(self, name: str) -> GpuPolicy:
        try:
            return self._policies[name]
        except KeyError:
            raise InvalidRequestError(f"GPU policy {name!r} is not one of: {', '.join(self.names)}.") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._policies)

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def __iter__(self) -> Iterator[GpuPolicy]:
        return iter(tuple(self._policies.values()))

    def __len__(self) -> int:
        return len(self._policies)


_SEED = "the rules' preferred GPUs in order, fewest first (the user's MoE rules fire first)"
_COST = "the cheapest GPUs in the catalogue that hold the model"


def seed_policy(rules: RuleRegistry | None = None) -> GpuPolicy:
    """The rules decide: the first preferred layout that fits; reports the cost policy's answer."""
    rules = rules if rules is not None else default_rules()
    cost = GpuPolicy(name="cost", search=cost_search, rules=rules, description=_COST)
    return GpuPolicy(name="seed", search=seed_search, rules=rules, description=_SEED, compare_with=cost)


def cost_policy(rules: RuleRegistry | None = None) -> GpuPolicy:
    """The cheapest layout that fits; reports the seed policy's answer."""
    rules = rules if rules is not None else default_rules()
    seed = GpuPolicy(name="seed", search=seed_search, rules=rules, description=_SEED)
    return GpuPolicy(name="cost", search=cost_search, rules=rules, description=_COST, compare_with=seed)


def default_policies(rules: RuleRegistry | None = None) -> PolicyRegistry:
    """A fresh registry of the shipped policies, `seed` and `cost`, over `rules` (default: `default_rules()`)."""
    rules = rules if rules is not None else default_rules()
    return PolicyRegistry([seed_policy(rules), cost_policy(rules)])


def choose_gpu(
    request: GpuRequest, *, policy: str | GpuPolicy = "seed", rules: RuleRegistry | None = None
) -> GpuDecision:
    """GPUs and limits for `request` under `policy` (a shipped policy's name, or a `GpuPolicy`)."""
    chosen = policy if isinstance(policy, GpuPolicy) else default_policies(rules).get(policy)
    if rules is not None and isinstance(policy, GpuPolicy):
        chosen = chosen.with_rules(rules)
    return chosen.choose(request)


def _search(ctx: ResolvedRequest, policy: GpuPolicy, override: GpuSelection | None) -> SearchResult:
    """The user's --gpu when given (sized, never searched around), else the policy's search."""
    if override is None:
        return policy.search(SearchSpace(ctx))
    option = build_option(ctx, override.gpu, override.count, 1, override.modifier)
    if option is None:
        return None, []
    return (option if option.fits else None), [option]


def _decide(ctx: ResolvedRequest, policy: GpuPolicy, *, use_override: bool) -> GpuDecision:
    override = parse_gpu(ctx.request.gpu) if use_override and ctx.request.gpu is not None else None
    if override is not None and override.gpu.compute_capability < ctx.capability.minimum:
        raise InvalidRequestError(
            f"--gpu {ctx.request.gpu!r}: {override.gpu.name} has compute capability "
            f"{format_compute_capability(override.gpu.compute_capability)}; these weights need >= "
            f"{format_compute_capability(ctx.capability.minimum)} ({'; '.join(ctx.capability.reasons)}). "
            "Pick a newer GPU type."
        )
    option, tried = _search(ctx, policy, override)
    if option is None:
        raise no_fit_error(ctx, policy.name, tried, override)
    layout = option.layout
    limits = replace(
        ctx.limits,
        tensor_parallel_size=layout.tensor_parallel_size,
        pipeline_parallel_size=layout.pipeline_parallel_size,
        nnodes=layout.nodes,
    )
    return GpuDecision(
        policy=policy.name,
        rule=ctx.rule,
        choice=option.choice,
        limits=limits,
        memory=option.estimate,
        engine=ctx.request.engine,
        compute_capability=ctx.capability,
        explanation=explain_decision(ctx, policy.name, option, override),
        warnings=ctx.warnings,
        gpu_from_override=override is not None,
        parallel_options=parallel_options(ctx, option),
        launch=launch_facts(option),
    )
