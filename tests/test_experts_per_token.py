"""`plan --experts-per-token N`: checked against the model's expert count, written by each engine its own way.

The recorded target listings carry no config.json (the Hub page was not in any stored corpus), so these
tests give the base repo the config.json a Mixtral-layout merge has (`num_local_experts`,
`num_experts_per_tok`); without it the count is unknown and the option is refused as uncheckable.
The argv themselves are parsed by vLLM (`nox -s vllm_compat`) and started by llama-server
(`nox -s llamacpp_e2e`, the `experts-per-token` case).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from modelformats.cli import main
from modelformats.errors import ExpertsPerTokenError, InvalidRequestError
from modelformats.listing import dump_listing
from modelformats.planner import DEFAULT_REPO, PlanOptions, plan
from modelformats.sources.recorded import RecordedSource, default_source

BASE = DEFAULT_REPO.removesuffix("-GGUF")
MIXTRAL_CONFIG = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 28,
    "hidden_size": 3072,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(scope="module")
def source() -> RecordedSource:
    """The embedded target listings, the base repo with its config.json."""
    recorded = default_source()
    listings = [recorded.fetch(DEFAULT_REPO), replace(recorded.fetch(BASE), config=MIXTRAL_CONFIG)]
    return RecordedSource(listings)


def _plan(source: RecordedSource, **options: object):
    return plan(DEFAULT_REPO, source=source, options=PlanOptions(**options))  # type: ignore[arg-type]


def test_vllm_gets_hf_overrides_with_num_experts_per_tok(source):
    p = _plan(source, experts_per_token=4)
    assert p.engine.name == "vllm"
    argv = list(p.engine.argv)
    i = argv.index("--hf-overrides")
    assert json.loads(argv[i + 1]) == {"num_experts_per_tok": 4}
    assert argv.count("--hf-overrides") == 1
    assert any("Experts per token: 4 of the model's 8" in line and "instead of the model's 2" in line
               for line in p.explanation)  # fmt: skip
    assert any(n.startswith("--hf-overrides (vllm/engine/arg_utils.py:1035)") for n in p.engine.notes)


def test_llamacpp_gets_override_kv_on_the_gguf_architecture(source):
    p = _plan(source, experts_per_token=4, format="gguf", engine="llamacpp")
    argv = list(p.engine.argv)
    i = argv.index("--override-kv")
    # llama.cpp's converter writes Mixtral as 'llama'; its keys are <arch>.<name>.
    assert argv[i + 1] == "llama.expert_used_count=int:4"
    assert any(n.startswith("--override-kv (common/arg.cpp:") for n in p.engine.notes)


def test_without_the_option_no_engine_overrides_anything(source):
    for options in ({}, {"format": "gguf", "engine": "llamacpp"}):
        argv = _plan(source, **options).engine.argv
        assert "--hf-overrides" not in argv and "--override-kv" not in argv


def test_more_experts_than_the_model_has_is_refused_naming_them(source):
    with pytest.raises(ExpertsPerTokenError) as caught:
        _plan(source, experts_per_token=9)
    err = caught.value
    assert "the model has 8 experts" in str(err)
    assert "routes each token to 2 by default" in str(err)
    assert "between 1 and 8" in str(err)
    assert (err.requested, err.num_experts, err.default) == (9, 8, 2)


def test_all_eight_is_allowed(source):
    assert "int:8" in _plan(source, experts_per_token=8, format="gguf", engine="llamacpp").engine.argv[-1]


def test_a_dense_model_is_refused(source):
    dense = replace(
        source.fetch(BASE),
        config={**MIXTRAL_CONFIG, "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "num_local_experts": None, "num_experts_per_tok": None},
    )  # fmt: skip
    with pytest.raises(ExpertsPerTokenError, match=r"not a mixture of experts.*Drop --experts-per-token"):
        plan(BASE, source=RecordedSource([dense]), options=PlanOptions(experts_per_token=2))


def test_an_unknown_expert_count_is_refused_as_uncheckable():
    # The embedded offline listings record no config.json and no GGUF header for the target.
    with pytest.raises(ExpertsPerTokenError, match="does not record its number of experts"):
        plan(None, options=PlanOptions(experts_per_token=4))


@pytest.mark.parametrize("value", [0, -1, True])
def test_a_non_positive_count_is_an_argument_error(value):
    with pytest.raises(InvalidRequestError, match=r"--experts-per-token .* must be a positive integer"):
        plan(None, options=PlanOptions(experts_per_token=value))


def test_cli_refuses_nine_with_the_expert_count(tmp_path, capsys, source):
    base = tmp_path / "base.json"
    target = tmp_path / "target.json"
    dump_listing(source.fetch(BASE), base)
    dump_listing(source.fetch(DEFAULT_REPO), target)
    code = main(["plan", "--listing", str(tmp_path), DEFAULT_REPO, "--experts-per-token", "9"])
    assert code != 0
    assert "the model has 8 experts" in capsys.readouterr().err
    code = main(["plan", "--listing", str(tmp_path), DEFAULT_REPO, "--experts-per-token", "4", "--json"])
    assert code == 0
    argv = json.loads(capsys.readouterr().out)["engine"]["argv"]
    assert argv[argv.index("--hf-overrides") + 1] == '{"num_experts_per_tok": 4}'


# Where vLLM's model reads experts per token (vllm 0.33.0 vllm/model_executor/models/): llama4.py
# `config.num_experts_per_tok` on the text config, dbrx.py `config.ffn_config.moe_top_k`, ernie45_moe.py
# `config.moe_k`. --hf-overrides walks nested dicts into sub-configs (config/model.py _apply_dict_overrides).
@pytest.mark.parametrize(
    ("config", "override"),
    [
        (
            {"model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"],
             "text_config": {**MIXTRAL_CONFIG, "num_local_experts": 16, "num_experts_per_tok": 1}},
            {"text_config": {"num_experts_per_tok": 4}},
        ),
        (
            {**{k: v for k, v in MIXTRAL_CONFIG.items() if k not in ("num_local_experts", "num_experts_per_tok")},
             "model_type": "dbrx", "architectures": ["DbrxForCausalLM"],
             "ffn_config": {"moe_num_experts": 16, "moe_top_k": 4}},
            {"ffn_config": {"moe_top_k": 4}},
        ),
        (
            {**{k: v for k, v in MIXTRAL_CONFIG.items() if k not in ("num_local_experts", "num_experts_per_tok")},
             "model_type": "ernie4_5_moe", "architectures": ["Ernie4_5_MoeForCausalLM"],
             "moe_num_experts": 64, "moe_k": 6},
            {"moe_k": 4},
        ),
    ],
)  # fmt: skip
def test_vllm_override_sets_the_key_the_model_reads(
    source: RecordedSource, config: dict[str, object], override: dict[str, object]
) -> None:
    listings = [source.fetch(DEFAULT_REPO), replace(source.fetch(BASE), config=config)]
    p = plan(DEFAULT_REPO, source=RecordedSource(listings), options=PlanOptions(experts_per_token=4, engine="vllm"))
    argv = list(p.engine.argv)
    assert json.loads(argv[argv.index("--hf-overrides") + 1]) == override


def test_vllm_refuses_when_no_key_records_experts_per_token(source: RecordedSource) -> None:
    config = {k: v for k, v in MIXTRAL_CONFIG.items() if k != "num_experts_per_tok"}
    listings = [source.fetch(DEFAULT_REPO), replace(source.fetch(BASE), config=config)]
    with pytest.raises(InvalidRequestError, match=r"which config key holds its experts per token.*--engine llamacpp"):
        plan(DEFAULT_REPO, source=RecordedSource(listings),
             options=PlanOptions(experts_per_token=4, engine="vllm", format="native"))  # fmt: skip
