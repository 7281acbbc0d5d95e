"""bitsandbytes plans (issue 17): in-tree on vLLM 0.23, through vllm-bnb-plugin on 0.33 and 0.34.

No recorded listing holds a bitsandbytes checkpoint (the one named `...-bnb-4bit` is a LoRA adapter and
GGUFs, and is not planned as bitsandbytes), so these plans come from a listing that states its config.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelformats.errors import EngineCannotLoadError
from modelformats.listing import RepoFile, RepoListing
from modelformats.planner import PlanOptions, plan
from modelformats.sources.recorded import RecordedSource

REPO = "owner/Llama-3.1-8B-Instruct-bnb"
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
}
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


def _source() -> RecordedSource:
    sizes = {"model.safetensors": 5_700_000_000}
    files = tuple(RepoFile(path=p, size=sizes.get(p, 10_000)) for p in FILES)
    return RecordedSource([RepoListing(repo_id=REPO, files=files, config=CONFIG)])


@pytest.mark.parametrize("version", ["0.33.0", "0.34.0"])
def test_a_bitsandbytes_checkpoint_plans_with_vllm_bnb_plugin(version):
    p = plan(REPO, source=_source(), options=PlanOptions(engine="vllm", vllm_version=version))
    assert p.format == "bitsandbytes"
    assert "vllm-bnb-plugin==0.0.3" in p.engine.requirements
    assert f"vllm=={version}" in p.engine.requirements
    assert dict(p.engine.env) == {"VLLM_PLUGINS": "bitsandbytes"}
    assert p.engine.verdict is not None and p.engine.verdict.level.value == "source-read"
    assert "--quantization" not in p.engine.argv


def test_on_0_23_bitsandbytes_is_in_tree():
    p = plan(REPO, source=_source(), options=PlanOptions(engine="vllm", vllm_version="0.23.0"))
    assert not any(r.startswith("vllm-bnb-plugin") for r in p.engine.requirements)
    assert dict(p.engine.env) == {}


def test_the_repo_named_bnb_4bit_is_not_planned_as_bitsandbytes():
    # Its metadata (a LoRA adapter and GGUFs, no quantization_config) decides, not its name.
    source = RecordedSource.from_paths([Path(__file__).parent / "data" / "listings"])
    p = plan("kbang2021/unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit", source=source)
    assert p.format != "bitsandbytes"
    with pytest.raises(EngineCannotLoadError):
        plan("kbang2021/unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit", source=source,
             options=PlanOptions(engine="vllm"))  # fmt: skip
