"""The online-FP8 route: vLLM quantizes 16-bit HF weights at load (`--quantization fp8`), 1 byte/param."""

from __future__ import annotations

from pathlib import Path

from modelformats.planner import PlanOptions, plan
from modelformats.sources.recorded import RecordedSource

SOURCE = RecordedSource.from_paths([Path(__file__).parent / "data" / "listings"])
TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"


def _fp8(policy: str):
    p = plan(TARGET, source=SOURCE, options=PlanOptions(policy=policy))
    found = [a for a in p.alternatives if a.label.startswith("online FP8 of ")]
    assert len(found) == 1, [a.label for a in p.alternatives]
    return p, found[0]


def test_target_online_fp8_is_priced_sized_at_one_byte_per_param_and_source_read():
    p, fp8 = _fp8("cost")
    assert fp8.loads and fp8.verdict.level.value == "source-read"
    assert fp8.argv[fp8.argv.index("--quantization") + 1] == "fp8"
    assert "--quantization" not in p.engine.argv  # the chosen 16-bit route is unchanged
    assert fp8.price_per_hour is not None and p.gpu.price_per_hour > fp8.price_per_hour  # a cheaper GPU fits
    assert any("online FP8" in e for e in fp8.verdict.evidence)


def test_seed_policy_keeps_its_gpu_and_lists_the_fp8_route():
    p, fp8 = _fp8("seed")
    assert p.gpu.name == "H100" and "--quantization" not in p.engine.argv
    assert fp8.gpu is not None and fp8.price_per_hour is not None


def test_no_fp8_route_for_gguf_or_quantized_weights():
    p = plan(TARGET, source=SOURCE, options=PlanOptions(format="gguf"))
    assert not [a for a in p.alternatives if "online FP8" in a.label]
