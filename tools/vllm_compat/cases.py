"""Build the vllm_compat checker's input from modelformats itself (runs in the dev environment).

    python -m tools.vllm_compat.cases --vllm-version 0.33.0 --output cases.json [--source engine --source cli]
    python -m tools.vllm_compat.cases --vllm-version 0.33.0 --output bad.json --bad

Two sources, both on by default:
- `engine`: `VllmEngine.command()` on WeightsSpec/RuntimeSpec values covering every kind of plan
  (GGUF single and split, safetensors, AWQ, GPTQ, FP8, compressed-tensors, bitsandbytes, TP>1,
  pipeline + multi-node, expert parallel, chunked prefill off, block size, remote code, experts per token,
  a pinned KV cache);
- `cli`: `modelformats plan --listing tests/data/listings REPO --engine vllm --vllm-version X --json` for
  every recorded listing, with the expectations read from the plan's other fields (plan_shape.md),
  not from its argv. Listings that produce no vLLM plan are reported as skipped. Plus the GGUF
  converted to safetensors (issue 18) with `--format native` on the synthetic GGUF listings that carry a
  read header and no base model (no recorded listing has a header, so there the route is refused): the
  same safetensors-directory case, served from the plan's `download.converts[0].output`.
- `modal`: the argv the Modal example (examples/modal_vllm/app.py) runs per container: a one-node plan's
  rank 0 with `--middleware modelformats_serve_auth.BearerAuth` (the key in VLLM_API_KEY, probed by the
  checker through vLLM's own middleware loading), and a two-node cluster's rank 0 and headless worker.
Labels in REQUIRED (the two-node ranks, the experts cases...) must be built: a missing one exits 1.
`--bad` writes cases that must fail (a flag vLLM does not have, a value that differs from the plan,
a scheduler conflict, a model path vLLM does not take for GGUF, a wrong quantization table):
nox checks that the checker rejects each one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from modelformats.engines.base import RuntimeSpec, WeightsSpec
from modelformats.engines.vllm import VllmEngine, vllm_engine
from modelformats.errors import EngineCannotLoadError
from modelformats.formats.hf import BitsAndBytesFormat
from modelformats.traits import ModelTraits

ROOT = Path(__file__).resolve().parents[2]
LISTINGS = ROOT / "tests" / "data" / "listings"
M = "/models"


@dataclass(frozen=True, kw_only=True, slots=True)
class Spec:
    label: str
    weights: WeightsSpec
    runtime: RuntimeSpec


def _w(fmt: str, repo: str, model: str, traits: ModelTraits, **kw: Any) -> WeightsSpec:
    container = "gguf-file" if kw.get("quantization") == "gguf" else "hf-directory"
    return WeightsSpec(format=fmt, repo_id=repo, revision=None, model=model, traits=traits, container=container, **kw)


def _rt(name: str, **kw: Any) -> RuntimeSpec:
    values: dict[str, Any] = {"max_model_len": 4096, "max_num_seqs": 8, "gpu_memory_utilization": 0.9} | kw
    return RuntimeSpec(served_model_name=name, **values)


LLAMA = ModelTraits(architecture="LlamaForCausalLM", model_type="llama")
MIXTRAL = ModelTraits(architecture="MixtralForCausalLM", model_type="mixtral", is_moe=True, num_experts=8)
GGUF_DENSE = ModelTraits(gguf_architecture="llama", model_type="llama", is_moe=False)
GGUF_MOE = ModelTraits(gguf_architecture="llama", model_type="mixtral", is_moe=True, num_experts=8)
GGUF_GEMMA = ModelTraits(gguf_architecture="gemma3", model_type="gemma3_text", is_moe=False)
TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"
TARGET_Q8_0 = "L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf"
TARGET_BASE = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B"


def specs() -> list[Spec]:
    """One spec per kind of plan the library emits (the shared fixtures' kinds and runtime options)."""
    bart = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    base = f"{M}/meta-llama/Meta-Llama-3.1-8B-Instruct"
    gemma = "ggml-org/gemma-3-27b-it-GGUF"
    return [
        Spec(
            label="gguf-single-dense",
            weights=_w("gguf", bart, f"{M}/{bart}/Meta-Llama-3.1-8B-Instruct-Q8_0.gguf", GGUF_DENSE,
                       quantization="gguf", tokenizer=base, hf_config_path=base, gguf_quant="Q8_0",
                       gguf_layout="single"),
            runtime=_rt(bart),
        ),
        Spec(
            label="gguf-split-gemma3",
            weights=_w("gguf", gemma, f"{M}/{gemma}/gemma-3-27b-it-f16-00001-of-00002.gguf", GGUF_GEMMA,
                       quantization="gguf", tokenizer=f"{M}/google/gemma-3-27b-it",
                       hf_config_path=f"{M}/google/gemma-3-27b-it", gguf_quant="F16", gguf_layout="split"),
            runtime=_rt(gemma, dtype="half", tensor_parallel_size=2),
        ),
        Spec(
            label="gguf-target-moe",
            weights=_w("gguf", TARGET, f"{M}/{TARGET}/{TARGET_Q8_0}", GGUF_MOE, quantization="gguf",
                       tokenizer=f"{M}/{TARGET_BASE}", hf_config_path=f"{M}/{TARGET_BASE}", gguf_quant="Q8_0",
                       gguf_layout="single"),
            runtime=_rt(TARGET, enable_chunked_prefill=False),
        ),
        Spec(
            label="safetensors-mixtral-ep",
            weights=_w("safetensors", TARGET_BASE, f"{M}/{TARGET_BASE}", MIXTRAL),
            runtime=_rt(TARGET_BASE, dtype="bfloat16", tensor_parallel_size=2, enable_expert_parallel=True),
        ),
        Spec(
            # `plan --experts-per-token 4`: --hf-overrides '{"num_experts_per_tok": 4}'.
            label="safetensors-mixtral-experts-per-token",
            weights=_w("safetensors", TARGET_BASE, f"{M}/{TARGET_BASE}", MIXTRAL),
            runtime=_rt(
                TARGET_BASE, dtype="bfloat16", experts_per_token=4, experts_per_token_key="num_experts_per_tok"
            ),
        ),
        Spec(
            # A model whose config nests the key (Llama-4: text_config.num_experts_per_tok): a nested override.
            label="safetensors-experts-per-token-nested",
            weights=_w("safetensors", TARGET_BASE, f"{M}/{TARGET_BASE}", MIXTRAL),
            runtime=_rt(TARGET_BASE, dtype="bfloat16", experts_per_token=4,
                        experts_per_token_key="text_config.num_experts_per_tok"),
        ),
        Spec(
            # `plan --pin-kv-cache`: the KV cache pinned to the estimate (--kv-cache-memory-bytes), 8 GiB here.
            label="safetensors-mixtral-pinned-kv-cache",
            weights=_w("safetensors", TARGET_BASE, f"{M}/{TARGET_BASE}", MIXTRAL),
            runtime=_rt(TARGET_BASE, dtype="bfloat16", kv_cache_memory_bytes=8 * 1024**3),
        ),
        Spec(
            label="gguf-target-moe-experts-per-token",
            weights=_w("gguf", TARGET, f"{M}/{TARGET}/{TARGET_Q8_0}", GGUF_MOE, quantization="gguf",
                       tokenizer=f"{M}/{TARGET_BASE}", hf_config_path=f"{M}/{TARGET_BASE}", gguf_quant="Q8_0",
                       gguf_layout="single"),
            runtime=_rt(TARGET, experts_per_token=4, experts_per_token_key="num_experts_per_tok"),
        ),
        Spec(
            # Issue 18's online FP8 route: 16-bit weights quantized by vLLM at load (--quantization fp8),
            # on two L4s as `plan --policy cost` sizes it for the target's base.
            label="online-fp8-target-base",
            weights=_w("safetensors", TARGET_BASE, f"{M}/{TARGET_BASE}", MIXTRAL, quantization="fp8",
                       quantization_flag=True),
            runtime=_rt(TARGET, pipeline_parallel_size=2, enable_chunked_prefill=False, block_size=16),
        ),
        Spec(
            label="awq",
            weights=_w("awq", "Qwen/Qwen2.5-7B-Instruct-AWQ", f"{M}/Qwen/Qwen2.5-7B-Instruct-AWQ",
                       ModelTraits(architecture="Qwen2ForCausalLM", model_type="qwen2"), quantization="awq"),
            runtime=_rt("Qwen/Qwen2.5-7B-Instruct-AWQ", dtype="half", max_num_batched_tokens=8192),
        ),
        Spec(
            label="gptq-chunked-off",
            weights=_w("gptq", "TheBloke/Llama-2-7B-Chat-GPTQ", f"{M}/TheBloke/Llama-2-7B-Chat-GPTQ", LLAMA,
                       quantization="gptq"),
            runtime=_rt("TheBloke/Llama-2-7B-Chat-GPTQ", enable_chunked_prefill=False, max_num_seqs=16,
                        max_model_len=4096, max_num_batched_tokens=2048),
        ),
        Spec(
            label="fp8-compressed-tensors",
            weights=_w("compressed-tensors", "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8",
                       f"{M}/neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", LLAMA, quantization="compressed-tensors"),
            runtime=_rt("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", block_size=32, enforce_eager=True),
        ),
        Spec(
            label="fp8",
            weights=_w("fp8", "owner/fp8-model", f"{M}/owner/fp8-model", LLAMA, quantization="fp8"),
            runtime=_rt("owner/fp8-model", enable_chunked_prefill=True, max_num_batched_tokens=4096),
        ),
        Spec(
            label="bitsandbytes",
            weights=_w("bitsandbytes", "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit",
                       f"{M}/unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit", LLAMA, quantization="bitsandbytes",
                       vllm_plugin=BitsAndBytesFormat.serving.vllm_plugin),
            runtime=_rt("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit"),
        ),
        Spec(
            # The format tests/plugins/quark_format.py registers through the entry point (issue 13): the
            # strategy asks for --quantization quark, which vLLM's parser must accept.
            label="quark-plugin-format",
            weights=_w("quark", "example/Llama-3.1-8B-Instruct-Quark", f"{M}/example/Llama-3.1-8B-Instruct-Quark",
                       LLAMA, quantization="quark", quantization_flag=True),
            runtime=_rt("example/Llama-3.1-8B-Instruct-Quark"),
        ),
        Spec(
            label="pytorch-bin",
            weights=_w("pytorch", "lmsys/vicuna-7b-v1.5", f"{M}/lmsys/vicuna-7b-v1.5", LLAMA),
            runtime=_rt("lmsys/vicuna-7b-v1.5", dtype="float16"),
        ),
        Spec(
            label="remote-code-multinode",
            weights=_w("safetensors", "deepseek-ai/DeepSeek-V2-Lite", f"{M}/deepseek-ai/DeepSeek-V2-Lite",
                       ModelTraits(architecture="DeepseekV2ForCausalLM", model_type="deepseek_v2"),
                       trust_remote_code=True),
            runtime=_rt("deepseek-ai/DeepSeek-V2-Lite", tensor_parallel_size=8, pipeline_parallel_size=2, nnodes=2,
                        gpu_memory_utilization=0.92, port=8080),
        ),
    ]  # fmt: skip


def _engines(version: str) -> Iterator[VllmEngine]:
    yield vllm_engine(version)
    yield vllm_engine(version, modelformats_plugin=True)


def _expect(weights: WeightsSpec, runtime: RuntimeSpec) -> dict[str, Any]:
    # quantization: passed only where the format asks for it (Quark); otherwise vLLM detects it from the
    # GGUF file or config.json, so it parses to None.
    return {
        "model": weights.model,
        "tokenizer": weights.tokenizer,
        "hf_config_path": weights.hf_config_path,
        "quantization": weights.quantization if weights.quantization_flag else None,
        "dtype": runtime.dtype,
        "max_model_len": runtime.max_model_len,
        "max_num_seqs": runtime.max_num_seqs,
        "gpu_memory_utilization": runtime.gpu_memory_utilization,
    }


def _override(key: str, n: int) -> dict[str, Any]:
    """{"a": {"b": n}} for the dotted key "a.b", built independently of the engine's own code."""
    head, _, rest = key.partition(".")
    return {head: _override(rest, n) if rest else n}


def _expect_extra(weights: WeightsSpec, runtime: RuntimeSpec) -> dict[str, Any]:
    chunked = runtime.enable_chunked_prefill
    return {
        "served_model_name": [runtime.served_model_name],
        "tensor_parallel_size": runtime.tensor_parallel_size,
        "pipeline_parallel_size": runtime.pipeline_parallel_size,
        "enable_expert_parallel": runtime.enable_expert_parallel,
        "trust_remote_code": weights.trust_remote_code,
        "enforce_eager": runtime.enforce_eager,
        "nnodes": runtime.nnodes,
        **(
            {"hf_overrides": _override(runtime.experts_per_token_key or "num_experts_per_tok", n)}
            if (n := runtime.experts_per_token) is not None
            else {}
        ),
        **({"block_size": runtime.block_size} if runtime.block_size is not None else {}),
        **(
            {"kv_cache_memory_bytes": runtime.kv_cache_memory_bytes}
            if runtime.kv_cache_memory_bytes is not None
            else {}
        ),
        **({"enable_chunked_prefill": chunked} if chunked is not None else {}),
    }


def engine_cases(version: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Cases from VllmEngine.command(); a spec no engine variant loads is reported as skipped."""
    cases, skipped = [], []
    for spec in specs():
        last = ""
        for engine in _engines(version):
            try:
                command = engine.command(spec.weights, spec.runtime, engine.check(spec.weights))
            except EngineCannotLoadError as exc:
                last = str(exc)
                continue
            cases.append(
                {
                    "label": f"engine:{spec.label}" + (" (modelformats plugin)" if engine.modelformats_plugin else ""),
                    "argv": list(command.argv),
                    "env": dict(command.env),
                    "gguf": spec.weights.container == "gguf-file",
                    "expect": _expect(spec.weights, spec.runtime),
                    "expect_extra": _expect_extra(spec.weights, spec.runtime),
                    "expect_args": {"host": spec.runtime.host, "port": spec.runtime.port},
                }
            )
            break
        else:
            skipped.append(f"engine:{spec.label}: {last}")
    return cases, skipped


def _plan(
    repo_id: str, version: str, fmt: str = "auto", listings: Path = LISTINGS
) -> tuple[dict[str, Any] | None, str]:
    from modelformats.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["plan", "--listing", str(listings), repo_id, "--engine", "vllm", "--vllm-version", version, "--json"]
    argv += ["--format", fmt]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    if code != 0:
        return None, (err.getvalue().strip().splitlines() or ["no output"])[0]
    return json.loads(out.getvalue()), ""


def _plan_case(plan: dict[str, Any]) -> dict[str, Any]:
    """Expectations from the plan's own fields (plan_shape.md), independent of its argv."""
    root = plan["download"]["root"].rstrip("/")
    weights_dir = f"{root}/{plan['weights_repo_id']}" if "weights_repo_id" in plan else f"{root}/{plan['repo_id']}"
    is_gguf = plan["format"] == "gguf"
    # A converted route serves the directory its conversion writes (tokenizer and config inside it).
    converts = [c["output"] for c in plan["download"].get("converts", [])]
    model = converts[0] if converts else weights_dir
    if is_gguf:
        # A split set is served from shard 1; byte-split parts are joined into the join's output.
        joins = [j["output"] for j in plan["download"].get("joins", [])]
        ggufs = sorted(f for f in plan["files"] if f.endswith(".gguf"))
        model = joins[0] if joins else f"{weights_dir}/{ggufs[0]}"
    tokenizer = f"{root}/{plan['tokenizer']['repo_id']}" if plan.get("tokenizer") and not converts else None
    runtime = plan["runtime"]
    return {
        "label": f"cli:{plan['repo_id']}",
        "argv": plan["vllm"]["argv"],
        "env": plan["engine"].get("env") or {},
        "gguf": is_gguf,
        "expect": {
            "model": model,
            "tokenizer": tokenizer,
            "hf_config_path": tokenizer if is_gguf else None,
            # No recorded listing's format passes --quantization (the Quark case is an engine case).
            "quantization": None,
            "dtype": runtime.get("dtype", "auto"),
            "max_model_len": runtime["max_model_len"],
            "max_num_seqs": runtime["max_num_seqs"],
            "gpu_memory_utilization": plan["gpu"]["gpu_memory_utilization"],
        },
        "expect_extra": {
            "served_model_name": [plan["served_model_name"]],
            "tensor_parallel_size": runtime.get("tensor_parallel_size", 1),
            "pipeline_parallel_size": runtime.get("pipeline_parallel_size", 1),
        },
        "expect_args": {"port": plan["port"]},
    }


def cli_cases(version: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Cases from `modelformats plan` on every recorded listing that yields a vLLM plan."""
    cases, skipped = [], []
    seen: set[tuple[str, ...]] = set()
    for path in sorted(LISTINGS.glob("*.json")):
        repo_id = json.loads(path.read_text())["repo_id"]
        # --format gguf too: a GGUF repo's auto plan may be its base model's native weights.
        for fmt in ("auto", "gguf"):
            plan, error = _plan(repo_id, version, fmt)
            if plan is None or not plan.get("vllm"):
                skipped.append(f"cli:{repo_id} --format {fmt}: {error or 'the plan chose another engine'}")
                continue
            if tuple(plan["vllm"]["argv"]) in seen:
                continue
            seen.add(tuple(plan["vllm"]["argv"]))
            case = _plan_case(plan)
            cases.append(case | {"label": f"{case['label']} --format {fmt}"})
    for repo_id in CONVERTED:
        plan, error = _plan(repo_id, version, "native", listings=ROOT / "tests" / "data" / "synthetic")
        if plan is None or not plan.get("vllm") or not plan["download"].get("converts"):
            skipped.append(f"cli:{repo_id} --format native: {error or 'the plan is not the converted route'}")
            continue
        case = _plan_case(plan)
        cases.append(case | {"label": f"{case['label']} --format native"})
    return cases, skipped


# Synthetic GGUF listings (a read header, no base model) whose --format native plan is the converted route.
CONVERTED = ("example/Llama-3.1-8B-Instruct-GGUF", "example/Llama-3-70Bx2-MOE-GGUF")


SYNTHETIC = ROOT / "tests" / "data" / "synthetic"
EXAMPLE = ROOT / "examples" / "modal_vllm" / "app.py"
# A loopback key and address: what the Modal example adds per rank is parsed, not the secret itself.
_KEY = "modelformats-compat-key"
_MASTER = "10.0.0.1"


def _import_example(plan: dict[str, Any]) -> Any:
    """examples/modal_vllm/app.py imported with `plan` (modal builds its objects offline)."""
    import importlib.util
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        path.write_text(json.dumps(plan))
        saved = {k: os.environ.get(k) for k in ("MODELFORMATS_PLAN", "MODELFORMATS_PLAN_JSON", "MODELFORMATS_AUTH")}
        os.environ["MODELFORMATS_PLAN"] = str(path)
        os.environ.pop("MODELFORMATS_PLAN_JSON", None)
        os.environ.pop("MODELFORMATS_AUTH", None)  # the default: auth on
        try:
            spec = importlib.util.spec_from_file_location("modal_example_for_compat", EXAMPLE)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return module


def modal_cases(version: str) -> tuple[list[dict[str, Any]], list[str]]:
    """What the Modal example runs in each container: one node (rank 0 with --api-key), and a two-node
    cluster's rank 0 and worker (the synthetic listing no single node holds)."""
    cases, skipped = [], []
    plans = [("one-node", _plan_from([LISTINGS], TARGET_BASE, version))]
    plans.append(("two-node", _plan_from([SYNTHETIC], "example/Huge-MoE-2.5T", version)))
    for label, (plan, error) in plans:
        if plan is None or plan["engine"]["name"] != "vllm":
            skipped.append(f"modal:{label}: {error or 'the plan chose another engine'}")
            continue
        app = _import_example(plan)
        base = _plan_case(plan)
        ranks = range(app.SPEC.nodes)
        for rank in ranks:
            argv = list(app.node_argv(app.SPEC, rank=rank, master_addr=_MASTER))
            extra = dict(base["expect_extra"])
            args: dict[str, Any] = dict(base["expect_args"])
            if app.SPEC.nodes > 1:
                extra |= {"nnodes": app.SPEC.nodes, "node_rank": rank, "master_addr": _MASTER}
                args["headless"] = rank > 0
            probe = {}
            if rank == 0:
                # The key is not in argv; vLLM loads the example's middleware, which reads it from the env.
                args |= {"api_key": None, "middleware": [app.SPEC.auth_args[1]]}
                probe = {"auth_probe": {"env": app.engine_env(app.SPEC, api_key=_KEY), "path": str(EXAMPLE.parent)}}
            cases.append(
                base
                | {"label": f"modal:{label} rank {rank}", "argv": argv, "expect_extra": extra, "expect_args": args}
                | probe
            )
    return cases, skipped


def _plan_from(listings: list[Path], repo_id: str, version: str) -> tuple[dict[str, Any] | None, str]:
    from modelformats.errors import ModelFormatsError
    from modelformats.planner import PlanOptions, plan
    from modelformats.sources.recorded import RecordedSource

    try:
        made = plan(repo_id, source=RecordedSource.from_paths(listings), options=PlanOptions(vllm_version=version))
    except ModelFormatsError as exc:
        return None, str(exc).splitlines()[0]
    return made.to_dict(), ""


# Cases that must exist whenever their source runs: a plan change that makes one vanish (skipped, or
# no longer built) fails the session instead of passing with fewer checks.
# Each label maps to whether it needs modelformats' vLLM plugin (the target's GGUF on vLLM does): such a
# case is required only where the version's profile says the plugin runs (`VllmProfile.modelformats_plugin`).
REQUIRED: dict[str, dict[str, bool]] = {
    "engine": {
        "engine:safetensors-mixtral-experts-per-token": False,
        "engine:gguf-target-moe-experts-per-token": True,
        "engine:safetensors-mixtral-ep": False,
        "engine:safetensors-mixtral-pinned-kv-cache": False,
        "engine:remote-code-multinode": False,
    },
    "modal": {"modal:one-node rank 0": False, "modal:two-node rank 0": False, "modal:two-node rank 1": False},
    # Issue 18: the GGUF converted to safetensors, served from the converted directory.
    "cli": {f"cli:{repo_id} --format native": False for repo_id in CONVERTED},
}


def missing_required(version: str, sources: list[str], cases: list[dict[str, Any]]) -> list[str]:
    """Required labels of the chosen sources that no case carries (an engine case may name its plugin after)."""
    plugin_runs = vllm_engine(version).profile.modelformats_plugin
    labels = {case["label"].split(" (", 1)[0] for case in cases}
    return [
        label
        for name in sources
        for label, needs_plugin in REQUIRED.get(name, {}).items()
        if (plugin_runs or not needs_plugin) and label not in labels
    ]


# The one place that names the case sources; `--source` picks among them.
SOURCES: dict[str, Callable[[str], tuple[list[dict[str, Any]], list[str]]]] = {
    "engine": engine_cases,
    "cli": cli_cases,
    "modal": modal_cases,
}


def bad_cases(version: str) -> list[dict[str, Any]]:
    """Cases the checker must reject, built by breaking a good one."""
    cases = engine_cases(version)[0]
    good = cases[0]
    argv = good["argv"]
    misspelt = [("--max-model-length" if a == "--max-model-len" else a) for a in argv]
    i = argv.index("--max-model-len")
    chunked = [*argv[: i + 2], "--no-enable-chunked-prefill", "--max-num-batched-tokens", "1024", *argv[i + 2 :]]
    # The Modal one-node rank 0 without the example's middleware: vLLM's own VLLM_API_KEY check alone
    # leaves /invocations open, which only the auth probe can see.
    modal = next(c for c in modal_cases(version)[0] if c["label"] == "modal:one-node rank 0")
    cut = modal["argv"].index("--middleware")
    unguarded = modal | {
        "label": "bad:vllm-own-api-key-only",
        "argv": modal["argv"][:cut] + modal["argv"][cut + 2 :],
        "expect_args": {k: v for k, v in modal["expect_args"].items() if k != "middleware"},
    }
    return [
        unguarded,
        good | {"label": "bad:misspelt-flag", "argv": misspelt},
        good | {"label": "bad:value-differs", "expect": good["expect"] | {"max_model_len": 1234}},
        good | {"label": "bad:chunked-prefill-conflict", "argv": chunked},
        good | {"label": "bad:plugin-not-installed", "env": {"VLLM_PLUGINS": "gguf,not-a-vllm-plugin"}},
        *_bad_gguf_path([c for c in cases if c["gguf"]][:1]),
    ]


def _bad_gguf_path(gguf_cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A GGUF case whose model path vLLM does not take for GGUF (none where the version plans no GGUF: 0.34)."""
    return [
        case
        | {
            "label": "bad:not-a-gguf-path",
            "argv": [*case["argv"][:2], case["argv"][2].removesuffix(".gguf") + ".bin", *case["argv"][3:]],
            "expect": case["expect"] | {"model": case["argv"][2].removesuffix(".gguf") + ".bin"},
        }
        for case in gguf_cases
    ]


def quantization_plugins(version: str, *, locked: bool = True) -> dict[str, str]:
    """`{entry point name: method}` of the plugins this version's plans bring for methods it lacks in-tree,
    that its environment has (`locked`) or lacks (the profile's `locked_quant_plugins`)."""
    profile = vllm_engine(version).profile
    plugins = (spec.weights.vllm_plugin for spec in specs())
    return {
        p.plugin_name: p.method
        for p in plugins
        if p is not None
        and p.method not in profile.quantization_methods
        and (Requirement(p.requirement).name in profile.locked_quant_plugins) == locked
    }


def build(version: str, sources: list[str], *, bad: bool) -> dict[str, Any]:
    engine = vllm_engine(version)
    table = list(engine.profile.quantization_methods)
    if bad:
        return {
            "vllm_version": version,
            "quantization_methods": [*table, "not-a-vllm-method"],
            "gguf_plugin_entry_point": bool(engine.profile.gguf_requirements),
            "quantization_plugins": quantization_plugins(version),
            "unlocked_plugins": list(quantization_plugins(version, locked=False)),
            "cases": bad_cases(version),
            "skipped": [],
        }
    cases, skipped = [], []
    for name in sources:
        more, skip = SOURCES[name](version)
        cases += more
        skipped += skip
    return {
        "vllm_version": version,
        "quantization_methods": table,
        "gguf_plugin_entry_point": bool(engine.profile.gguf_requirements),
        "quantization_plugins": quantization_plugins(version),
        "unlocked_plugins": list(quantization_plugins(version, locked=False)),
        "cases": cases,
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm-version", required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--source", action="append", choices=sorted(SOURCES), help="default: all")
    parser.add_argument("--bad", action="store_true", help="write cases the checker must reject")
    args = parser.parse_args(argv)
    data = build(args.vllm_version, args.source or list(SOURCES), bad=args.bad)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1))
    print(f"{len(data['cases'])} case(s) for vLLM {args.vllm_version} -> {args.output}", file=sys.stderr)
    for line in data["skipped"]:
        print(f"  skipped {line}", file=sys.stderr)
    if not args.bad and (missing := missing_required(args.vllm_version, args.source or list(SOURCES), data["cases"])):
        print(f"required case(s) missing (skipped or no longer built): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
