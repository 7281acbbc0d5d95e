"""The rule registry: validation at registration, order, duplicates, and matching from traits only."""

from __future__ import annotations

import pytest

from modelformats.errors import DuplicateRegistrationError, RegistrationError
from modelformats.gpu import (
    GpuRequest,
    GpuRule,
    RuleMatch,
    RuleRegistry,
    RuleSettings,
    RuleSubject,
    builtin_rules,
    choose_gpu,
    default_rules,
)
from modelformats.traits import ModelTraits


def _subject(**kw):
    base = {
        "is_moe": None,
        "params_total": None,
        "params_active": None,
        "weights_bytes": 10**9,
        "format": None,
        "engine": "vllm",
    }
    return RuleSubject(**(base | kw))


def _rule(name="r", **settings):
    return GpuRule(name=name, reason="test", settings=RuleSettings(**settings))


def test_default_registry_holds_the_shipped_rules_in_order():
    assert default_rules().names == ("moe-18b-h100", "llamacpp", "moe", "default")
    assert tuple(default_rules()) == builtin_rules()
    users = default_rules().get("moe-18b-h100")
    s = users.settings
    assert (s.gpu, s.gpu_memory_utilization, s.max_num_seqs, s.max_model_len) == ("H100", 0.75, 4, 4096)
    assert (s.tensor_parallel, s.enable_chunked_prefill, s.block_size) == (False, False, 16)
    assert users.match.describe() == "MoE, 12B-24B total parameters"


def test_matching_uses_traits_never_names():
    moe18 = _subject(is_moe=True, params_total=18_404_944_896)
    assert default_rules().match(moe18).name == "moe-18b-h100"
    assert default_rules().match(_subject(is_moe=False, params_total=18_404_944_896)).name == "default"
    assert default_rules().match(_subject(is_moe=True, params_total=46_702_792_704)).name == "moe"
    # An unknown parameter count never satisfies a bound: an MoE of unknown size is not "~18B".
    assert default_rules().match(_subject(is_moe=True)).name == "moe"
    # The repo name is not an input at all: the request has no field for it.
    assert "repo" not in " ".join(GpuRequest.__dataclass_fields__)


def test_register_refuses_duplicates_unless_replaced():
    reg = RuleRegistry([_rule("a"), _rule("b")])
    with pytest.raises(DuplicateRegistrationError) as exc:
        reg.register(_rule("a"))
    assert str(exc.value) == "A GPU rule named 'a' is already registered; pass replace=True to replace it."
    reg.register(_rule("a", max_num_seqs=2), replace=True)
    assert reg.names == ("a", "b") and reg.get("a").settings.max_num_seqs == 2
    reg.register(_rule("c"), before="a")
    assert reg.names == ("c", "a", "b")
    reg.register(_rule("b", max_num_seqs=3), replace=True, before="c")
    assert reg.names == ("b", "c", "a")
    assert reg.unregister("c").name == "c" and "c" not in reg and len(reg) == 2
    with pytest.raises(KeyError, match=r"No GPU rule named 'zz'; registered: b, a\."):
        reg.get("zz")
    with pytest.raises(RegistrationError) as exc:
        reg.register(_rule("d"), before="zz")
    assert str(exc.value) == "Cannot register GPU rule 'd' before 'zz': no rule of that name; registered: b, a."
    assert default_rules().names == ("moe-18b-h100", "llamacpp", "moe", "default")  # fresh registries are independent


def test_invalid_rule_reports_every_problem():
    bad = GpuRule(
        name="Bad Name",
        reason=" ",
        match=RuleMatch(min_params_total=5, max_params_total=1, formats=frozenset()),
        settings=RuleSettings(
            gpu="H900",
            prefer=("L40S",),
            gpu_memory_utilization=1.5,
            max_num_seqs=0,
            block_size=12,
            enable_chunked_prefill=False,
            max_num_batched_tokens=100,
        ),
    )
    with pytest.raises(RegistrationError) as exc:
        RuleRegistry().register(bad)
    assert str(exc.value) == (
        "GPU rule 'Bad Name' is invalid:\n"
        "- name 'Bad Name' must be lower-case letters, digits, '.', '_' or '-'\n"
        "- reason is empty: say why the rule exists (it is shown in every plan it decides)\n"
        "- min_params_total 5 is above max_params_total 1\n"
        "- formats must be a non-empty frozenset or None, got frozenset()\n"
        "- gpu: Unknown GPU type 'H900'; Modal offers: T4, L4, A10, L40S, A100-40GB, A100-80GB, "
        "RTX-PRO-6000, "
        "H100, H200, B200, B300.\n"
        "- prefer is only used when gpu is None; set one or the other\n"
        "- gpu_memory_utilization must be in (0, 1], got 1.5\n"
        "- max_num_seqs must be a positive int, got 0\n"
        "- block_size 12 is not one of 8, 16, 32, 64, 128, 256\n"
        "- max_num_batched_tokens 100 is below max_model_len 8,192 with chunked prefill off; vLLM refuses "
        "that "
        "(config/scheduler.py:317)\n"
        "Fix the rule and register it again."
    )
    with pytest.raises(RegistrationError) as exc:
        RuleRegistry().register(object())  # type: ignore[arg-type]
    assert str(exc.value).endswith("- expected a GpuRule, got object\nFix the rule and register it again.")
    with pytest.raises(RegistrationError, match="gpu_count 9 exceeds the 4 x A10 one container takes"):
        RuleRegistry().register(_rule("a10", gpu="A10", gpu_count=9))


def test_a_new_rule_changes_the_plan_and_is_recorded():
    reg = default_rules()
    reg.register(
        GpuRule(
            name="small-on-l4",
            reason="test: small dense models on one L4",
            match=RuleMatch(is_moe=False, max_weights_bytes=8 * 10**9, engines=frozenset({"vllm"})),
            settings=RuleSettings(gpu="L4", gpu_count=1, max_num_seqs=4, max_model_len=4096),
        ),
        before="default",
    )
    traits = ModelTraits(is_moe=False, num_layers=32, num_attention_heads=32, num_kv_heads=8, head_dim=128)
    d = choose_gpu(GpuRequest(traits=traits, weights_bytes=4_920_000_000, weights_basis="Q4_K_M"), rules=reg)
    assert (d.rule.name, d.choice.modal_gpu, d.limits.max_num_seqs) == ("small-on-l4", "L4", 4)
    assert d.to_dict()["rule"]["matches"] == "dense, 0-8 GB of weights, engine vllm"
    assert d.explanation[0].startswith("GPU rule 'small-on-l4' fired (dense, 0-8 GB of weights, engine vllm)")
