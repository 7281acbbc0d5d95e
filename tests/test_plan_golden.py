"""Golden decision table: every recorded listing -> (format, files, engine, argv facts, GPU) or the error.

Each row was derived by reading the listing (see tests/data/listings/README.md for the traps) and
then checked against the planner. Offline: the recordings are the only source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelformats.deployment import DeploymentPlan
from modelformats.errors import (
    EngineCannotLoadError,
    GatedRepoError,
    IncompleteUploadError,
    InvalidRequestError,
    ModelFormatsError,
    UnservableFormatError,
)
from modelformats.planner import DEFAULT_REPO, PlanOptions, plan
from modelformats.sources.recorded import RecordedSource

LISTINGS = Path(__file__).parent / "data" / "listings"
SOURCE = RecordedSource.from_paths([LISTINGS])
TARGET_BASE = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B"


@dataclass(frozen=True)
class Row:
    format: str
    engine: str
    level: str
    gpu: str  # "H100:1"
    limits: tuple[int, int]  # (max_model_len, max_num_seqs)
    files: tuple[str, ...] | int  # exact files, or their count
    quant: str | None = None
    weights_repo: str | None = None  # when not the repo itself
    utilization: float = 0.9


def shards(stem: str, total: int, width: int = 5, ext: str = ".safetensors") -> tuple[str, ...]:
    return tuple(f"{stem}-{i:0{width}d}-of-{total:0{width}d}{ext}" for i in range(1, total + 1))


GOLDEN: dict[str, Row | tuple[type[ModelFormatsError], str]] = {
    # The target: vLLM cannot load its GGUF layout (probe), so the same model's BF16 weights on vLLM win;
    # the user's MoE rule puts it on one H100 at 0.75 with 4 x 4,096 tokens.
    DEFAULT_REPO: Row(
        format="safetensors",
        engine="vllm",
        level="engine-native",
        gpu="H100:1",
        limits=(4096, 4),
        utilization=0.75,
        files=(*shards("model", 8), "model.safetensors.index.json", "config.json"),
        weights_repo=TARGET_BASE,
    ),
    TARGET_BASE: Row(
        format="safetensors",
        engine="vllm",
        level="engine-native",
        gpu="H100:1",
        limits=(4096, 4),
        utilization=0.75,
        files=(*shards("model", 8), "model.safetensors.index.json", "config.json"),
    ),
    # Same author, 4 experts: no base repo recorded, so only the GGUF itself; llama.cpp reads its tokenizer.
    "DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-GGUF": Row(
        format="gguf",
        quant="Q8_0",
        engine="llamacpp",
        level="source-read",
        gpu="L40S:1",  # issue 16: parameters from Q8_0's 8.5 bits per weight, not 4
        limits=(8192, 4),
        files=("Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q8_0.gguf",),
    ),
    "DrNicefellow/Mistral-Nemo-Instruct-2407-exl2-7bpw-h8": (
        UnservableFormatError,
        "'DrNicefellow/Mistral-Nemo-Instruct-2407-exl2-7bpw-h8' holds EXL2 (ExLlamaV2) weights",
    ),
    "Qwen/Qwen2.5-7B-Instruct-AWQ": Row(
        format="awq",
        engine="vllm",
        level="engine-native",  # Hub tag 'qwen2' -> Qwen2ForCausalLM, in vLLM's registry
        gpu="L40S:1",
        limits=(8192, 16),
        files=(
            *shards("model", 2),
            "model.safetensors.index.json",
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.json",
            "merges.txt",
        ),
    ),
    "TheBloke/Llama-2-7B-Chat-GPTQ": Row(
        format="gptq",
        engine="vllm",
        level="source-read",  # no config.json read and no model_type tag: the registry is not consulted
        gpu="L40S:1",
        limits=(8192, 16),
        files=(
            "model.safetensors",
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "tokenizer.model",
            # Detection relied on it (config.json unread) and vLLM reads it when config.json has no
            # quantization_config: fetched, or the download may load as unquantized.
            "quantize_config.json",
        ),
    ),
    # Mistral stored as llama: vLLM refuses (probe); llama.cpp serves Q4_K_M (Q8_0..Q5_K_M not uploaded yet).
    "TheBloke/Mistral-7B-Instruct-v0.2-GGUF": Row(
        format="gguf",
        quant="Q4_K_M",
        engine="llamacpp",
        level="source-read",
        gpu="L40S:1",
        limits=(8192, 4),
        files=("mistral-7b-instruct-v0.2.Q4_K_M.gguf",),
    ),
    "Yasar-02/LLAMA-3.1-8b-Instruct": (
        IncompleteUploadError,
        "Incomplete upload in 'Yasar-02/LLAMA-3.1-8b-Instruct': the shard name 'model-00001-of-00004.safetensors'",
    ),
    "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF": Row(
        format="gguf",
        quant="Q8_0",
        engine="llamacpp",
        level="source-read",
        gpu="L40S:1",  # issue 16: parameters from Q8_0's 8.5 bits per weight, not 4
        limits=(8192, 4),
        files=("Meta-Llama-3.1-8B-Instruct-Q8_0.gguf",),
    ),
    "deepseek-ai/DeepSeek-V2-Lite": Row(
        format="safetensors",
        engine="vllm",
        level="engine-native",  # Hub tag 'deepseek_v2' -> DeepseekV2ForCausalLM; MoE rule (not ~18B: 15.7B params)
        gpu="A100-80GB:1",
        limits=(8192, 8),
        files=(
            # 6-digit shard total, 5-digit index: `-of-000004`.
            *(f"model-{i:05d}-of-000004.safetensors" for i in range(1, 5)),
            "model.safetensors.index.json",
            "config.json",
            "generation_config.json",
            "configuration_deepseek.py",
            "modeling_deepseek.py",
            "tokenization_deepseek_fast.py",
        ),
    ),
    # Split F16 + mmproj next to single-file quants: Q8_0, the projector excluded.
    "ggml-org/gemma-3-27b-it-GGUF": Row(
        format="gguf",
        quant="Q8_0",
        engine="llamacpp",
        level="source-read",
        gpu="H200:1",
        limits=(8192, 4),
        files=("gemma-3-27b-it-Q8_0.gguf",),
    ),
    # The name says bnb-4bit; the files are a LoRA adapter and GGUFs: GGUF wins, Q5_K_M by the user's order.
    "kbang2021/unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit": Row(
        format="gguf",
        quant="Q5_K_M",
        engine="llamacpp",
        level="source-read",
        gpu="L40S:1",
        limits=(8192, 4),
        # Its own tokenizer files ride along (config.json unread: the plan says to check it).
        files=(
            "unsloth.Q5_K_M.gguf",
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ),
    ),
    "lmsys/vicuna-7b-v1.5": Row(
        format="pytorch",
        engine="vllm",
        level="source-read",
        gpu="L40S:1",
        limits=(8192, 16),
        files=(
            *shards("pytorch_model", 2, ext=".bin"),
            "pytorch_model.bin.index.json",
            "config.json",
            "generation_config.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "tokenizer.model",
        ),
    ),
    "mistralai/Mistral-Nemo-Instruct-2407": (
        InvalidRequestError,
        "Cannot size the weights of 'mistralai/Mistral-Nemo-Instruct-2407': its listing records no file sizes",
    ),
    "mlx-community/Llama-3.1-8B-Instruct": (
        UnservableFormatError,
        "'mlx-community/Llama-3.1-8B-Instruct' holds MLX (Apple silicon) weights",
    ),
    "model-hub/Mixtral-8x7B-v0.1": (
        InvalidRequestError,
        "Cannot size the weights of 'model-hub/Mixtral-8x7B-v0.1': its listing records no file sizes",
    ),
    # Raw byte splits: all three parts, joined into one file that the engine is pointed at.
    "mradermacher/Llama-3-70Bx2-MOE-GGUF": Row(
        format="gguf",
        quant="Q8_0",
        engine="llamacpp",
        level="source-read",
        gpu="B200:2",  # issue 16: parameters from Q8_0's 8.5 bits per weight, not 4
        limits=(8192, 4),
        files=tuple(f"Llama-3-70Bx2-MOE.Q8_0.gguf.part{i}of3" for i in range(1, 4)),
    ),
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": Row(
        format="compressed-tensors",
        engine="vllm",
        level="engine-native",  # Hub tag 'llama'
        gpu="L40S:1",
        limits=(8192, 16),
        files=8,
    ),
    # Per-quant sub-folders, 9 shards of Q4_K_M (the Q8_0 folder is incomplete in the recording).
    "unsloth/DeepSeek-R1-GGUF": Row(
        format="gguf",
        quant="Q4_K_M",
        engine="llamacpp",
        level="source-read",
        gpu="B300:4",
        limits=(8192, 4),
        files=tuple(f"DeepSeek-R1-Q4_K_M/{s}" for s in shards("DeepSeek-R1-Q4_K_M", 9, ext=".gguf")),
    ),
    "unsloth/gemma-3-1b-it-GGUF": Row(
        format="gguf",
        quant="Q8_0",
        engine="llamacpp",
        level="source-read",
        gpu="L40S:1",
        limits=(8192, 4),
        files=("gemma-3-1b-it-Q8_0.gguf",),
    ),
}


def test_every_fixture_has_a_row():
    recorded = {json.loads(p.read_text())["repo_id"] for p in LISTINGS.glob("*.json")}
    assert recorded == set(GOLDEN)
    assert len(GOLDEN) == 20


@pytest.mark.parametrize("repo_id", sorted(GOLDEN))
def test_golden(repo_id):
    expected = GOLDEN[repo_id]
    if isinstance(expected, tuple):
        error, prefix = expected
        with pytest.raises(error) as exc:
            plan(repo_id, source=SOURCE)
        assert str(exc.value).startswith(prefix)
        return
    p = plan(repo_id, source=SOURCE)
    gpu = f"{p.gpu.name}:{p.gpu.count}" if p.gpu else None
    assert (p.format, p.quant, p.engine.name, p.engine.verdict.level.value, gpu) == (
        expected.format,
        expected.quant,
        expected.engine,
        expected.level,
        expected.gpu,
    )
    assert p.weights_repo_id == (expected.weights_repo or repo_id)
    assert (p.runtime.max_model_len, p.runtime.max_num_seqs) == expected.limits
    assert p.gpu.gpu_memory_utilization == expected.utilization
    if isinstance(expected.files, int):
        assert len(p.files) == expected.files
    else:
        assert p.files == expected.files
    _check_argv(p)
    # The plan survives JSON: what the Modal example and `download` read is what was planned.
    assert DeploymentPlan.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def _check_argv(p: DeploymentPlan) -> None:
    argv = list(p.engine.argv)
    weights_dir = f"{p.download_root}/{p.weights_repo_id}"
    if p.engine.name == "vllm":
        assert argv[:2] == ["vllm", "serve"]
        assert argv[argv.index("--max-model-len") + 1] == str(p.runtime.max_model_len)
        assert argv[argv.index("--max-num-seqs") + 1] == str(p.runtime.max_num_seqs)
        assert float(argv[argv.index("--gpu-memory-utilization") + 1]) == p.gpu.gpu_memory_utilization
        assert p.to_dict()["vllm"] == {"argv": argv}
    else:
        assert argv[0].endswith("llama-server")
        assert p.to_dict()["vllm"] is None
    model = argv[argv.index("--model") + 1] if "--model" in argv else argv[2]
    assert model.startswith(weights_dir)
    if p.joins:
        assert model == p.joins[0].output  # byte splits are joined before the engine starts
    assert argv[argv.index("--port") + 1] == str(p.port)


# Issue 18: GGUF repos whose base model's weights are not recorded list the GGUF converted to safetensors on
# vLLM; their recordings read no header, so the route is refused there (tests/test_plan_convert.py: with one).
WITHOUT_BASE_WEIGHTS = ("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "mradermacher/Llama-3-70Bx2-MOE-GGUF")


@pytest.mark.parametrize("repo_id", WITHOUT_BASE_WEIGHTS)
def test_gguf_repos_without_base_weights_gain_the_converted_route(repo_id):
    p = plan(repo_id, source=SOURCE)
    assert [(a.rank, a.label, a.loads) for a in p.alternatives] == [
        (2, "gguf weights on vllm 0.33.0", False),
        (3, "gguf weights on vllm 0.33.0 + modelformats plugin", False),
        (4, "gguf weights converted to safetensors (bfloat16) on vllm 0.33.0", False),
    ]
    assert "architecture is unknown" in p.alternatives[-1].reason


def test_repos_with_base_weights_plan_no_conversion():
    for repo_id, row in GOLDEN.items():
        if isinstance(row, Row) and row.weights_repo is not None:
            assert all("converted" not in a.label for a in plan(repo_id, source=SOURCE).alternatives)


def test_target_as_gguf_selects_q8_0_and_the_base_tokenizer():
    p = plan(None, options=PlanOptions(format="gguf"))
    assert (p.format, p.quant, p.engine.name) == ("gguf", "Q8_0", "llamacpp")
    assert p.files == ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf",)
    # ~19.6 GB: 18,404,944,896 parameters x 8.5 bits per weight (Q8_0) / 8, marked as an estimate.
    assert p.download_bytes == 19_555_253_952 and p.download_bytes_estimated
    assert p.gpu.name == "H100" and p.gpu.count == 1 and p.gpu.gpu_memory_utilization == 0.75


def test_target_gguf_on_vllm_needs_the_plugin_and_the_base_tokenizer():
    p = plan(None, options=PlanOptions(engine="vllm", format="gguf"))
    # vLLM's own engine generated the reference tokens on CPU (data/vllm_cpu_generation.json); the
    # plan's Q8_0 kernels cannot run there, and the verdict says so.
    assert p.engine.verdict.level.value == "cpu-generation"
    assert any(w.startswith("Q8_0 kernels are GPU unverified") for w in p.engine.verdict.warnings)
    assert "modelformats[vllm-plugin]==0.1.0" in p.engine.requirements
    assert "vllm-gguf-plugin==0.0.5" in p.engine.requirements
    assert p.engine.env["VLLM_PLUGINS"] == "gguf,modelformats"
    assert p.tokenizer is not None and p.tokenizer.repo_id == TARGET_BASE
    assert "tokenizer.json" in p.tokenizer.allow_patterns
    argv = list(p.engine.argv)
    assert argv[argv.index("--tokenizer") + 1] == f"/models/{TARGET_BASE}"
    assert argv[argv.index("--hf-config-path") + 1] == f"/models/{TARGET_BASE}"
    plain = next(a for a in p.alternatives if a.label == "gguf weights on vllm 0.33.0")
    assert not plain.loads and "Unknown gguf model_type: mixtral" in plain.reason


def test_target_on_vllm_0_23_routes_to_native_weights():
    p = plan(None, options=PlanOptions(vllm_version="0.23.0", engine="vllm"))
    assert (p.format, p.engine.version, p.weights_repo_id) == ("safetensors", "0.23.0", TARGET_BASE)
    refused = [a for a in p.alternatives if not a.loads]
    assert refused and all(a.format == "gguf" for a in refused)


def test_target_alternatives_are_ranked_priced_and_explained():
    p = plan(None)
    assert [(a.rank, a.engine.split()[0], a.format, a.loads) for a in p.alternatives] == [
        (2, "llamacpp", "gguf", True),
        (3, "vllm", "gguf", True),
        (4, "vllm", "safetensors", True),  # online FP8 of the base (issue 18): source-read, ranked below
        (5, "vllm", "gguf", False),
    ]
    assert all(a.price_per_hour is not None for a in p.alternatives if a.loads)
    text = "\n".join(p.explanation)
    assert "Chosen: native safetensors weights of " + TARGET_BASE in text
    assert "Alternative 2: gguf weights on llamacpp" in text
    assert "GPU rule 'moe-18b-h100' fired" in text


def test_cost_policy_shows_the_saving():
    p = plan(None, options=PlanOptions(policy="cost"))
    assert p.gpu.policy == "cost" and p.gpu.name != "H100"
    assert any("The seed policy would choose H100 x1 at $3.95/h" in s for s in p.explanation)


def test_rollback_flag_sends_a_gguf_repo_to_its_base_model():
    p = plan(None, options=PlanOptions(environ={"MODELFORMATS_DISABLE": "gguf"}))
    assert (p.format, p.weights_repo_id) == ("safetensors", TARGET_BASE)
    assert all(a.format != "gguf" for a in p.alternatives)
    assert any("gguf is disabled (rollback flag)" in s for s in p.explanation)


def test_rollback_without_a_base_model_fails_clearly():
    with pytest.raises(InvalidRequestError) as exc:
        plan("unsloth/gemma-3-1b-it-GGUF", source=SOURCE, options=PlanOptions(disable=("gguf",)))
    assert str(exc.value).startswith(
        "'unsloth/gemma-3-1b-it-GGUF' holds gguf weights and gguf is disabled (MODELFORMATS_DISABLE or --disable)"
    )


def test_format_and_engine_requests_that_cannot_be_met():
    with pytest.raises(InvalidRequestError, match=r"--format gguf: 'lmsys/vicuna-7b-v1.5' holds pytorch weights"):
        plan("lmsys/vicuna-7b-v1.5", source=SOURCE, options=PlanOptions(format="gguf"))
    with pytest.raises(InvalidRequestError, match=r"--engine llamacpp serves GGUF files only"):
        plan("lmsys/vicuna-7b-v1.5", source=SOURCE, options=PlanOptions(engine="llamacpp"))
    with pytest.raises(InvalidRequestError, match=r"--download-root 'models' must be an absolute path"):
        PlanOptions(download_root="models")


def test_every_quant_order_entry_is_checked_up_front():
    with pytest.raises(InvalidRequestError) as exc:
        PlanOptions(quant_order=("Q8_0", "BOGUS"))
    assert str(exc.value).startswith("--quant-order entry 'BOGUS' is not a GGUF quant name: not in gguf 0.19.0's")


def test_a_typo_in_the_rollback_flag_names_the_known_formats():
    with pytest.raises(InvalidRequestError) as exc:
        plan(None, options=PlanOptions(environ={"MODELFORMATS_DISABLE": "ggfu"}))
    assert str(exc.value).startswith("--disable / MODELFORMATS_DISABLE names unknown format(s) ['ggfu']; known: mlx, ")
    assert str(exc.value).endswith("Fix the name (e.g. MODELFORMATS_DISABLE=gguf).")


class _Gated(RecordedSource):
    """The recordings, with one repo gated (as meta-llama's are without a token)."""

    def __init__(self, gated: str) -> None:
        super().__init__(list(SOURCE))
        self.gated = gated

    def fetch(self, repo_id, *, revision=None):
        if repo_id.lower() == self.gated.lower():
            raise GatedRepoError(repo_id)
        return super().fetch(repo_id, revision=revision)


def test_a_gated_base_repo_is_not_a_crash():
    # The target's recording has no sizes; with its base gated, nothing can size or identify it, and the
    # error says so per route (the gated base is no longer an unexplained GatedRepoError).
    with pytest.raises(EngineCannotLoadError) as exc:
        plan(DEFAULT_REPO, source=_Gated(TARGET_BASE))
    lines = str(exc.value).splitlines()
    assert (
        lines[1]
        == "- gguf weights on vllm 0.33.0: the GGUF architecture is unknown (no header read and no base config)"
    )
    # Without its base, the GGUF converted is a route too (issue 18), refused for the same unknown architecture.
    assert lines[3].startswith(
        "- gguf weights converted to safetensors (bfloat16) on vllm 0.33.0: the gguf architecture is unknown"
    )
    assert lines[4].startswith(f"- gguf weights on llamacpp b11312: Cannot size the weights of '{DEFAULT_REPO}'")


class _Counting(RecordedSource):
    def __init__(self) -> None:
        super().__init__(list(SOURCE))
        self.fetches: list[str] = []

    def fetch(self, repo_id, *, revision=None):
        self.fetches.append(repo_id)
        return super().fetch(repo_id, revision=revision)


def test_each_repo_is_fetched_once_per_plan():
    source = _Counting()
    plan(DEFAULT_REPO, source=source)
    assert sorted(source.fetches) == sorted([DEFAULT_REPO, TARGET_BASE])
