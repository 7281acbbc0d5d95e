"""Issue 13: GPU policies and rule registries are values. A test adds a rule and a third policy without
touching any global, and plans with different policies in one process do not influence each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelformats.errors import DuplicateRegistrationError, InvalidRequestError
from modelformats.gpu import (
    GpuPolicy,
    GpuRule,
    PolicyRegistry,
    RuleMatch,
    RuleSettings,
    SearchSpace,
    default_policies,
    default_rules,
)
from modelformats.planner import PlanOptions, plan
from modelformats.sources.recorded import RecordedSource

LISTINGS = Path(__file__).parents[1] / "data" / "listings"
SOURCE = RecordedSource.from_paths([LISTINGS])
VICUNA = "lmsys/vicuna-7b-v1.5"


def most_memory_search(space: SearchSpace):
    """A third policy: the single GPU with the most memory that fits (headroom over price)."""
    tried = list(space.single_node(space.capable(space.preferred()), counts_first=True))
    fitting = [o for o in tried if o.fits and o.choice.count == 1]
    return (max(fitting, key=lambda o: o.choice.usable_bytes) if fitting else None), tried


def _rules_with_a_small_model_rule():
    rules = default_rules()
    rules.register(
        GpuRule(
            name="small",
            reason="weights under 20 GB: a fixed preference list, 8 sequences",
            match=RuleMatch(max_weights_bytes=20 * 10**9),
            settings=RuleSettings(prefer=("L4", "A10", "L40S", "H100", "H200"), max_num_seqs=8),
        ),
        before="default",
    )
    return rules


def test_a_rule_and_a_third_policy_need_no_global_state():
    baseline = plan(VICUNA, source=SOURCE).to_dict()
    third = GpuPolicy(name="most-memory", search=most_memory_search, rules=_rules_with_a_small_model_rule())
    mine = plan(VICUNA, source=SOURCE, options=PlanOptions(policy=third))
    assert mine.gpu.policy == "most-memory" and mine.gpu.rule == "small"
    assert mine.gpu.name == "H200"  # the largest of the rule's preferred GPUs
    assert mine.runtime.max_num_seqs == 8
    # Nothing shared changed: the shipped rules and policies, and a default plan made after it.
    assert default_rules().names == ("moe-18b-h100", "llamacpp", "moe", "default")
    assert default_policies().names == ("seed", "cost")
    assert plan(VICUNA, source=SOURCE).to_dict() == baseline
    assert baseline["gpu"]["policy"] == "seed" and baseline["gpu"]["rule"] == "default"


def test_two_policies_in_one_process_do_not_influence_each_other():
    policies = default_policies()
    policies.register(GpuPolicy(name="most-memory", search=most_memory_search))
    by_name = {name: plan(VICUNA, source=SOURCE, policies=policies, options=PlanOptions(policy=name)) for name in
               ("seed", "most-memory", "cost")}  # fmt: skip
    again = {name: plan(VICUNA, source=SOURCE, policies=policies, options=PlanOptions(policy=name)) for name in
             ("cost", "most-memory", "seed")}  # fmt: skip
    assert {n: p.to_dict() for n, p in by_name.items()} == {n: p.to_dict() for n, p in again.items()}
    assert [by_name[n].gpu.policy for n in ("seed", "most-memory", "cost")] == ["seed", "most-memory", "cost"]
    assert by_name["seed"].gpu.name != by_name["most-memory"].gpu.name
    # A policy registered in one registry is unknown to a fresh one.
    with pytest.raises(InvalidRequestError, match=r"--policy 'most-memory' is not one of: seed, cost\."):
        plan(VICUNA, source=SOURCE, options=PlanOptions(policy="most-memory"))


def test_policy_registries_refuse_duplicates():
    registry = PolicyRegistry(default_policies())
    with pytest.raises(DuplicateRegistrationError):
        registry.register(default_policies().get("seed"))
    assert registry.register(default_policies().get("seed"), replace=True).name == "seed"
