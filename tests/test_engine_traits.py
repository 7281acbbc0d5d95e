"""Issue 13: the planner and the GPU policy act on what an engine declares (`EngineTraits`), not its name."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

import modelformats
from modelformats.engines.base import Engine, EngineTraits
from modelformats.engines.builtin import BUILTIN_ENGINE_TRAITS, LLAMACPP_TRAITS, build_engine, engine_traits, traits_of
from modelformats.engines.llamacpp import LlamaCppEngine
from modelformats.engines.vllm import VLLM_TRAITS, VllmEngine
from modelformats.errors import InvalidRequestError
from modelformats.formats.base import ENGINE_KINDS
from modelformats.gpu import GpuRequest, choose_gpu
from modelformats.gpu.capability import required_compute_capability
from modelformats.gpu.estimate import Layout, WeightsSize, estimate_memory, resolve_kv_shape
from modelformats.traits import ModelTraits

SRC = Path(modelformats.__file__).parent
ENGINE_NAMES = ("vllm", "llamacpp")
# Where an engine's name may still be compared: the engines themselves, the vLLM plugin (runs inside vLLM),
# the plan's legacy `vllm` JSON key, whose name is the engine's (deployment.py says why), and the user's
# --engine choice deciding whether a GGUF repo's base-model (native weights) routes are looked up.
ALLOWED = {"engines", "vllm_plugin"}
LEGACY = {
    ("deployment.py", "self.engine.name == 'vllm'"),
    ("routes.py", "opts.engine in ('auto', 'vllm')"),
}

DENSE_8B = ModelTraits(
    num_layers=32, hidden_size=4096, num_attention_heads=32, num_kv_heads=8, max_position_embeddings=131072
)


def test_every_built_in_engine_declares_its_traits() -> None:
    assert VllmEngine.traits is VLLM_TRAITS
    # llama.cpp's are declared beside its builder (engines/llamacpp.py is pinned by its e2e evidence).
    assert traits_of(LlamaCppEngine()) is LLAMACPP_TRAITS
    assert dict(BUILTIN_ENGINE_TRAITS) == {"vllm": VLLM_TRAITS, "llamacpp": LLAMACPP_TRAITS}
    for kind in ENGINE_KINDS:
        engine = build_engine(kind)
        assert isinstance(engine, Engine)
        assert traits_of(engine) is engine_traits(engine.name)
    # vLLM is the product's primary engine; llama.cpp has no utilization knob, no scheduler, no TP, one node.
    assert VLLM_TRAITS.preferred and not LLAMACPP_TRAITS.preferred
    assert (LLAMACPP_TRAITS.utilization_budget, LLAMACPP_TRAITS.tensor_parallel, LLAMACPP_TRAITS.multi_node) == (
        False,
        False,
        False,
    )


def test_unknown_names_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="Unknown engine 'sglang'"):
        build_engine("sglang")
    with pytest.raises(InvalidRequestError, match=r"Engine 'sglang' is not one of: vllm, llamacpp\."):
        engine_traits("sglang")


def test_a_request_fills_in_the_named_engines_traits() -> None:
    assert GpuRequest(traits=DENSE_8B, weights_bytes=16 * 10**9).engine_traits is VLLM_TRAITS
    assert GpuRequest(traits=DENSE_8B, weights_bytes=16 * 10**9, engine="llamacpp").engine_traits is LLAMACPP_TRAITS


def test_an_engine_the_gpu_package_does_not_know_is_sized_by_its_traits() -> None:
    # Another engine name with llama.cpp's traits gets llama.cpp's decision: the name is only a label.
    by_name = choose_gpu(GpuRequest(traits=DENSE_8B, weights_bytes=16 * 10**9, engine="llamacpp"))
    other = choose_gpu(
        GpuRequest(traits=DENSE_8B, weights_bytes=16 * 10**9, engine="llamacpp", engine_traits=LLAMACPP_TRAITS)
    )
    assert other == by_name
    named = choose_gpu(
        GpuRequest(
            traits=DENSE_8B,
            weights_bytes=16 * 10**9,
            engine="sglang",
            engine_traits=replace(VLLM_TRAITS, display_name="SGLang"),
        )
    )
    assert named.engine == "sglang" and named.memory.engine == "sglang"
    assert any(line.startswith("SGLang: tensor_parallel_size") for line in named.explanation)


def test_the_memory_model_follows_the_utilization_budget_trait() -> None:
    kv = resolve_kv_shape(DENSE_8B, shape_params=None, shape_params_basis="")
    common = {
        "weights": WeightsSize(bytes=16 * 10**9, basis="test"),
        "kv": kv,
        "max_model_len": 8192,
        "max_num_seqs": 4,
        "max_num_batched_tokens": 8192,
        "layout": Layout(),
    }
    budget = estimate_memory(
        engine="x", engine_traits=EngineTraits(display_name="X", utilization_budget=True), **common
    )
    upfront = estimate_memory(engine="x", engine_traits=EngineTraits(display_name="X"), **common)
    assert budget.terms == estimate_memory(engine="vllm", **common).terms
    assert upfront.terms == estimate_memory(engine="llamacpp", **common).terms
    assert "cuda_graphs" in {t.name for t in budget.terms} and "compute_buffers" in {t.name for t in upfront.terms}


def test_capability_floors_follow_the_trait() -> None:
    floors = required_compute_capability(engine="x", torch_dtype="bfloat16", capability_floors=True)
    assert floors == required_compute_capability(engine="vllm", torch_dtype="bfloat16")
    assert floors.minimum == (8, 0)
    none = required_compute_capability(engine="x", torch_dtype="bfloat16", capability_floors=False)
    assert none.minimum == (0, 0)


def _name_comparisons(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = {n.value for n in operands if isinstance(n, ast.Constant)} & set(ENGINE_NAMES)
        tuples = [n for n in operands if isinstance(n, (ast.Tuple, ast.Set, ast.List))]
        names |= {e.value for t in tuples for e in t.elts if isinstance(e, ast.Constant)} & set(ENGINE_NAMES)
        if names and (path.name, ast.unparse(node)) not in LEGACY:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_engine_name_is_compared_outside_the_engines() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] in ALLOWED:
            continue
        offenders += _name_comparisons(path)
    assert offenders == []
