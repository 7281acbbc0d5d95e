"""Serve a modelformats DeploymentPlan on Modal (vLLM or llama.cpp's server), then smoke-test it.

    modal run examples/modal_vllm/app.py::test_gguf_model     # download, start, chat, measure
    modal deploy examples/modal_vllm/app.py                    # keep the endpoint

Everything here comes from one plan dict (`modelformats plan --json`): the image (the engine's
pinned requirements on a CUDA base, or the engine's own image), the GPU, the files the download
function fetches into a Volume (and nothing else), the command the web server runs, and the
timeouts. Which plan:

- `MODELFORMATS_PLAN=/path/plan.json`: a plan you wrote with `modelformats plan ... --json > plan.json`;
- otherwise the offline default plan of the library (`modelformats.planner.plan(None)`), with
  `MODELFORMATS_FORMAT=gguf|native|auto` and `MODELFORMATS_ENGINE=vllm|llamacpp|auto` as its
  `--format` / `--engine` (e.g. `MODELFORMATS_FORMAT=gguf` serves the Q8_0 GGUF).

A plan that needs more than one node (`plan["launch"]`, vLLM's multi-node launch facts) is served by an
`@app.server` class under `@modal.clustered(size=N, rdma=True)`: every container runs the plan's argv
plus its rank's arguments (rank 0 serves HTTP; the others join `--headless`). One node keeps the
`@app.function` + `@modal.web_server` server.

Authentication is on by default: the key comes from the Modal Secret named by
`MODELFORMATS_API_KEY_SECRET` (default `modelformats-api-key`, holding `MODELFORMATS_API_KEY`) and
reaches the engine in its environment, never its argv (`VLLM_API_KEY` / `LLAMA_API_KEY`). vLLM also
gets `--middleware modelformats_serve_auth.BearerAuth` (next to this file), which demands the key on
every path but /health: vLLM's own check leaves /invocations, /tokenize, /metrics... open. Clients
send it as a bearer token. Only `MODELFORMATS_AUTH=none` serves a public, unauthenticated endpoint.

The plan travels to the containers as `MODELFORMATS_PLAN_JSON` in the functions' environment, so
a container imports this file with the same plan as your machine, without the planner.
This is the only module of the project that imports modal (docs/modal.md explains each part).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import modal  # this example is the one place that imports modal (pyproject: examples/** may)

APP_NAME = "modelformats-serve"
PLAN_FILE_ENV = "MODELFORMATS_PLAN"
PLAN_JSON_ENV = "MODELFORMATS_PLAN_JSON"
FORMAT_ENV = "MODELFORMATS_FORMAT"
ENGINE_ENV = "MODELFORMATS_ENGINE"
# This checkout: a plan that needs modelformats itself in the image (its vLLM plugin) installs it from here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_IN_IMAGE = "/opt/modelformats"
_PROJECT_IGNORE = [".git", ".cache", ".nox", ".venv", "**/__pycache__", "tests", "benchmarks", "tools"]
# The name of a Modal secret holding HF_TOKEN (`modal secret create huggingface-secret HF_TOKEN=hf_...`);
# only needed for gated or private repos, so it is used only when this variable names one.
SECRET_ENV = "MODELFORMATS_HF_SECRET"
# Authentication of the served endpoint: "api-key" (default) or "none" (explicitly public).
AUTH_ENV = "MODELFORMATS_AUTH"
AUTH_CHOICES = ("api-key", "none")
# The Modal Secret holding the key (`modal secret create modelformats-api-key MODELFORMATS_API_KEY=...`); the
# local entrypoint reads the same variable (only that one) to smoke-test the endpoint.
API_KEY_SECRET_ENV = "MODELFORMATS_API_KEY_SECRET"
DEFAULT_API_KEY_SECRET = "modelformats-api-key"
API_KEY_ENV = "MODELFORMATS_API_KEY"


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineAuth:
    """How one engine takes the key: an environment variable (argv is world-readable in /proc/*/cmdline)
    and the arguments that make it guard every path."""

    key_env: str
    args: tuple[str, ...] = ()


# The ASGI middleware vLLM loads with --middleware (a class: vLLM calls app.add_middleware(cls),
# vllm/entrypoints/serve/middleware/register.py:65-75 in 0.33 and 0.34); copied into the image and put
# on PYTHONPATH, since vLLM plans' images do not hold modelformats.
AUTH_MODULE = Path(__file__).resolve().with_name("modelformats_serve_auth.py")
AUTH_DIR_IN_IMAGE = "/opt/modelformats_serve"
# The plan's `uv pip install --override` lines, written into the image before the requirements install.
OVERRIDES_IN_IMAGE = "/opt/modelformats_overrides/overrides.txt"
ENGINE_AUTH: Mapping[str, EngineAuth] = {
    # VLLM_API_KEY: vllm/envs.py:829 and register.py:33 (0.33); vLLM's own check guards only /v1, /v2,
    # /inference, /cohere (authenticate.py:11), so BearerAuth guards the rest (it reads the same variable).
    "vllm": EngineAuth(key_env="VLLM_API_KEY", args=("--middleware", "modelformats_serve_auth.BearerAuth")),
    # LLAMA_API_KEY: common/arg.cpp:3492-3501 (llama-cpp-python 0.3.36 sdist), a comma-separated list;
    # llama-server checks every path but /health, /v1/health and its web UI (tools/server/server-http.cpp:251-258).
    "llamacpp": EngineAuth(key_env="LLAMA_API_KEY"),
}

MINUTES = 60
HOURS = 60 * MINUTES
PYTHON = "3.12"
# Modal's vLLM recipe (modal-examples 06_gpu_and_ml/llm-serving/vllm_inference.py): a CUDA devel
# image, so kernels that JIT-compile (flashinfer, triton) find nvcc.
CUDA_BASE_IMAGE = "nvidia/cuda:12.9.0-devel-ubuntu22.04"
# Where an engine's own image keeps its binaries and shared libraries. llama.cpp's server image
# copies both to /app and starts /app/llama-server by ENTRYPOINT (.devops/cuda.Dockerfile:87,127-133
# in the llama-cpp-python 0.3.36 sdist); Modal replaces the entrypoint, so PATH and the library path
# are set explicitly. The rest of each value is what the nvidia/cuda base images set.
ENGINE_IMAGE_DIRS: Mapping[str, str] = {"llamacpp": "/app"}
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CUDA_LIBRARY_PATH = "/usr/local/nvidia/lib:/usr/local/nvidia/lib64"
# What the download function needs: modelformats' own runtime dependencies (pyproject.toml
# [project].dependencies), huggingface_hub pinned to the version the download tests ran against so the
# image is reproducible. A test checks these are exactly pyproject's dependency names. (Not read from
# pyproject.toml at import: containers import this file without the checkout.)
DOWNLOAD_REQUIREMENTS = ("huggingface_hub==2.4.0", "packaging>=24")
# A plan whose route converts the GGUF after download (`download.converts`, issue 18) also needs what
# `modelformats convert` runs on: the `gguf` extra (gguf + numpy) and transformers (the tokenizer when no
# base model's files came with the GGUF), pinned to the versions `nox -s gguf_convert_proof` ran
# (locks/vllm-0.33.0.txt). No torch: convert never imports it.
CONVERT_REQUIREMENTS = ("gguf==0.19.0", "numpy==2.3.5", "transformers==5.20.2", "tokenizers==0.23.3")

HF_CACHE = "/root/.cache/huggingface"
VLLM_CACHE = "/root/.cache/vllm"
VOLUME_NAMES: Mapping[str, str] = {
    "weights": "modelformats-models",
    "hf_cache": "huggingface-cache",
    "vllm_cache": "vllm-cache",
}

# Timeouts come from the plan's download size. The rates are deliberately low so a slow day still
# fits: the Hub through Xet is usually 100-500 MB/s into Modal, a Volume reads at 1-3 GB/s.
HUB_BYTES_PER_S = 50e6
VOLUME_BYTES_PER_S = 200e6
# Engine start besides reading weights: CUDA init, vLLM's torch.compile and CUDA-graph capture
# ("tens of seconds to minutes" on a cold vllm-cache Volume), llama.cpp's model warm-up.
ENGINE_INIT_S = 10 * MINUTES
DOWNLOAD_BASE_S = 10 * MINUTES
UNKNOWN_BYTES_DOWNLOAD_S = 2 * HOURS
# The conversion's share of the download function: the plan's estimate (GGUF bytes at the rate
# benchmarks/bench_convert.py measured on 2 cores) times this margin; an unknown estimate gets 2 h.
CONVERT_MARGIN = 2.0
UNKNOWN_CONVERT_S = 2 * HOURS
MAX_FUNCTION_TIMEOUT_S = 24 * HOURS  # Modal's upper bound for `timeout`
# Modal schedules the container and pulls the image before the engine starts.
CONTAINER_START_S = 5 * MINUTES
# A cluster's ranks are scheduled together and meet in torch.distributed before rank 0 serves.
CLUSTER_JOIN_S = 10 * MINUTES
REQUEST_TIMEOUT_S = 5 * MINUTES
DEFAULT_MAX_INPUTS = 32
DOWNLOAD_CPUS = 4.0
DOWNLOAD_MEMORY_MIB = 16 * 1024
GPU_SAMPLE_INTERVAL_S = 1.0
GPU_STATS_KEY = f"{APP_NAME}/serve"


class PlanError(ValueError):
    """The plan cannot be served by this example (and what to do instead)."""


def load_plan() -> dict[str, Any]:
    """The plan: inline (in containers), a JSON file named by MODELFORMATS_PLAN, or the offline default."""
    inline = os.environ.get(PLAN_JSON_ENV)
    path = os.environ.get(PLAN_FILE_ENV)
    text = inline or (Path(path).read_text(encoding="utf-8") if path else None)
    if text:
        plan: dict[str, Any] = json.loads(text)
        return plan
    # Imported here: containers get the plan inline and need not have the planner.
    from modelformats.planner import PlanOptions
    from modelformats.planner import plan as make_plan

    options = PlanOptions(
        format=os.environ.get(FORMAT_ENV, "auto"),  # type: ignore[arg-type] - PlanOptions validates it
        engine=os.environ.get(ENGINE_ENV, "auto"),  # type: ignore[arg-type]
    )
    return make_plan(None, options=options).to_dict()


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeSpec:
    """Everything the Modal objects below are built from, derived from the plan by `serve_spec`."""

    engine: str
    argv: tuple[str, ...]
    port: int
    # Per container: all GPUs of one node ("B300:8"); `nodes` containers form one Modal cluster.
    gpu: str
    nodes: int
    # Multi-node only: what rank 0 and the other ranks add to `argv` ({master_addr}, {node_rank} filled at start).
    head_args: tuple[str, ...]
    worker_args: tuple[str, ...]
    rdma: bool
    apt_packages: tuple[str, ...]
    # "api-key": the engine demands the key of the Modal Secret `api_key_secret`; "none": public.
    auth: str
    api_key_secret: str | None
    # auth "api-key": the engine's key variable and the arguments rank 0 adds (vLLM: the middleware).
    key_env: str | None
    auth_args: tuple[str, ...]
    max_inputs: int
    download_root: str
    # What the download function's image installs (the convert extras when the plan converts the GGUF).
    download_requirements: tuple[str, ...]
    base_image: str
    requirements: tuple[str, ...]
    # Requirements naming modelformats itself (not on PyPI): installed from this checkout instead.
    project_requirements: tuple[str, ...]
    # `uv pip install --override` lines without which the requirements do not resolve (the plan's
    # engine.overrides, e.g. vLLM 0.34.0's unpublished flashinfer pin); written to OVERRIDES_IN_IMAGE.
    overrides: tuple[str, ...]
    image_env: Mapping[str, str]
    download_timeout: int
    web_startup_timeout: int
    serve_timeout: int
    health_timeout: int


def _clamp(seconds: float, low: int, high: int) -> int:
    return int(min(max(seconds, low), high))


def serve_spec(plan: Mapping[str, Any], *, auth: str = "api-key", api_key_secret: str | None = None) -> ServeSpec:
    """Derive image, GPU, command, cluster, auth and timeouts from a plan dict; PlanError when it cannot be
    served here."""
    if auth not in AUTH_CHOICES:
        raise PlanError(
            f"{AUTH_ENV}={auth!r} is not one of {', '.join(AUTH_CHOICES)}. Leave it unset for an endpoint that "
            f"demands the key in the Modal Secret {DEFAULT_API_KEY_SECRET!r}, or set it to 'none' for a public one."
        )
    engine = plan.get("engine") or {}
    argv = tuple(engine.get("argv") or ())
    if not argv:
        raise PlanError(
            f"The plan for {plan.get('repo_id')!r} has no engine command (engine.argv is empty): no engine "
            "can load it. Read its 'explanation' and pick one of its 'alternatives' with --engine/--format."
        )
    gpu = plan.get("gpu")
    if not gpu:
        raise PlanError(
            f"The plan for {plan.get('repo_id')!r} has no GPU (nothing in the catalogue fits its memory "
            "estimate). Re-plan with --gpu TYPE:N or a smaller --quant."
        )
    nodes = int(gpu.get("nodes", 1))
    launch = plan.get("launch") or {}
    if nodes > 1 and not (launch.get("mp") or {}).get("head_args"):
        raise PlanError(
            f"The plan needs {nodes} nodes but carries no multi-node launch facts ('launch'); only vLLM plans "
            "run on several nodes. Re-plan with vLLM, a larger --gpu TYPE:N or a smaller quant (docs/modal.md)."
        )
    local = [i["source_dir"] for i in (plan.get("download") or {}).get("items") or () if i.get("source_dir")]
    if local:
        raise PlanError(
            f"The plan for {plan.get('repo_id')!r} reads its weights from a local directory ({local[0]!r}): "
            "that path does not exist in a Modal container. Re-plan from the Hub repo "
            "(`modelformats plan REPO_ID --json`, not a local path) so the download function fetches it."
        )
    name = str(engine.get("name"))
    engine_auth = ENGINE_AUTH.get(name)
    if auth == "api-key" and engine_auth is None:
        raise PlanError(
            f"The example does not know how engine {name!r} takes an API key: re-plan with --engine vllm or "
            f"llamacpp, or set {AUTH_ENV}=none for a public endpoint."
        )
    mp = launch.get("mp") or {}
    cluster = launch.get("modal_cluster") or {}
    size = plan.get("download_bytes")
    if isinstance(size, int) and size > 0:
        download = _clamp(DOWNLOAD_BASE_S + size / HUB_BYTES_PER_S, DOWNLOAD_BASE_S, MAX_FUNCTION_TIMEOUT_S)
        startup = _clamp(ENGINE_INIT_S + size / VOLUME_BYTES_PER_S, ENGINE_INIT_S, 2 * HOURS)
    else:
        download, startup = UNKNOWN_BYTES_DOWNLOAD_S, 2 * HOURS
    converts = (plan.get("download") or {}).get("converts") or ()
    for step in converts:
        seconds = step.get("estimated_seconds")
        extra = CONVERT_MARGIN * seconds if isinstance(seconds, int) else UNKNOWN_CONVERT_S
        download = _clamp(download + extra, DOWNLOAD_BASE_S, MAX_FUNCTION_TIMEOUT_S)
    if nodes > 1:
        # Every rank is scheduled and joins the process group before rank 0 answers.
        startup += CLUSTER_JOIN_S
    image_env = {
        "HF_XET_HIGH_PERFORMANCE": "1",
        **{str(k): str(v) for k, v in (engine.get("env") or {}).items()},
    }
    home = ENGINE_IMAGE_DIRS.get(name) if engine.get("image") else None
    if home:
        image_env["PATH"] = f"{home}:{_SYSTEM_PATH}"
        image_env["LD_LIBRARY_PATH"] = f"{home}:{_CUDA_LIBRARY_PATH}"
    auth_args = engine_auth.args if auth == "api-key" and engine_auth else ()
    if auth_args:  # the middleware module, copied next to nothing else
        image_env["PYTHONPATH"] = AUTH_DIR_IN_IMAGE
    return ServeSpec(
        engine=name,
        argv=argv,
        port=int(plan.get("port", 8000)),
        # The plan's Modal string keeps modifiers ('H100!': no silent upgrade to H200).
        gpu=str(gpu.get("modal") or f"{gpu['name']}:{int(gpu.get('count', 1))}"),
        nodes=nodes,
        head_args=tuple(mp.get("head_args") or ()) if nodes > 1 else (),
        worker_args=tuple(mp.get("worker_args") or ()) if nodes > 1 else (),
        rdma=bool(cluster.get("rdma", False)) if nodes > 1 else False,
        apt_packages=tuple(cluster.get("apt_install") or ()) if nodes > 1 else (),
        auth=auth,
        api_key_secret=(api_key_secret or DEFAULT_API_KEY_SECRET) if auth == "api-key" else None,
        key_env=engine_auth.key_env if auth == "api-key" and engine_auth else None,
        auth_args=auth_args,
        max_inputs=int((plan.get("runtime") or {}).get("max_num_seqs") or DEFAULT_MAX_INPUTS),
        download_root=str((plan.get("download") or {}).get("root") or "/models"),
        download_requirements=DOWNLOAD_REQUIREMENTS + (CONVERT_REQUIREMENTS if converts else ()),
        base_image=str(engine.get("image") or CUDA_BASE_IMAGE),
        requirements=tuple(r for r in engine.get("requirements") or () if not _is_project(r)),
        project_requirements=tuple(r for r in engine.get("requirements") or () if _is_project(r)),
        overrides=tuple(str(o) for o in engine.get("overrides") or ()),
        image_env=image_env,
        download_timeout=download,
        web_startup_timeout=startup,
        # A request may arrive while the engine starts and then wait for its answer.
        serve_timeout=startup + 10 * MINUTES,
        health_timeout=startup + CONTAINER_START_S,
    )


def node_argv(spec: ServeSpec, *, rank: int = 0, master_addr: str = "") -> tuple[str, ...]:
    """The command one container runs: the plan's argv, its rank's arguments, and (rank 0, auth on) the
    engine's auth arguments. Never the key: that travels in the environment (`engine_env`).

    Only rank 0 serves HTTP, so only it is guarded; the others run `--headless`.
    """
    if rank < 0 or rank >= spec.nodes:
        raise PlanError(f"rank {rank} is outside the plan's {spec.nodes} node(s).")
    extra = spec.head_args if rank == 0 else spec.worker_args
    filled = tuple(a.replace("{master_addr}", master_addr).replace("{node_rank}", str(rank)) for a in extra)
    return (*spec.argv, *filled, *(spec.auth_args if rank == 0 else ()))


def engine_env(spec: ServeSpec, *, rank: int = 0, api_key: str | None = None) -> dict[str, str]:
    """What the engine process adds to its environment: rank 0 with auth on gets the key under the
    engine's own variable (`VLLM_API_KEY` / `LLAMA_API_KEY`); PlanError when auth is on and no key came."""
    if spec.auth != "api-key" or rank != 0 or spec.key_env is None:
        return {}
    if not api_key:
        raise PlanError(
            f"Authentication is on but {API_KEY_ENV} is empty: attach the Modal Secret {spec.api_key_secret!r} "
            f"(`modal secret create {spec.api_key_secret} {API_KEY_ENV}=...`), or set {AUTH_ENV}=none to serve "
            "a public endpoint."
        )
    return {spec.key_env: api_key}


def _is_project(requirement: str) -> bool:
    name = requirement.split("[", 1)[0].split("=", 1)[0].split(">", 1)[0].split("<", 1)[0].strip().lower()
    return name == "modelformats"


def _project_install_command(requirement: str) -> str:
    """`modelformats[vllm-plugin]==0.1.0` -> a pip install of this checkout with the same extras."""
    extras = requirement.split("[", 1)[1].split("]", 1)[0] if "[" in requirement else ""
    target = PROJECT_IN_IMAGE + (f"[{extras}]" if extras else "")
    # --no-deps: the engine requirements above already pinned vLLM and friends; an entry point is all we add.
    return f"python -m pip install --no-deps '{target}'"


def overrides_file_command(overrides: tuple[str, ...], path: str = OVERRIDES_IN_IMAGE) -> str:
    """The shell command that writes the plan's override lines to `path` (one per line, quoted)."""
    lines = " ".join(shlex.quote(line) for line in overrides)
    return f"mkdir -p {shlex.quote(str(Path(path).parent))} && printf '%s\\n' {lines} > {shlex.quote(path)}"


def requirements_install_options(spec: ServeSpec) -> str:
    """Extra `uv pip install` options for the engine requirements: the overrides file when the plan has one."""
    return f"--override {OVERRIDES_IN_IMAGE}" if spec.overrides else ""


def parse_nvidia_smi(text: str) -> list[tuple[float, float]]:
    """(used MiB, total MiB) per GPU from nvidia-smi's `--format=csv,noheader,nounits` output."""
    rows = []
    for line in text.strip().splitlines():
        used, total = (float(x) for x in line.split(","))
        rows.append((used, total))
    return rows


# --- Modal objects, all from the plan ------------------------------------------------------------

PLAN = load_plan()
SPEC = serve_spec(
    PLAN, auth=os.environ.get(AUTH_ENV, "api-key"), api_key_secret=os.environ.get(API_KEY_SECRET_ENV) or None
)
SERVE_ARGV = SPEC.argv

app = modal.App(APP_NAME)

serve_image = modal.Image.from_registry(SPEC.base_image, add_python=PYTHON).entrypoint([])
if SPEC.apt_packages:  # RDMA between cluster nodes needs the InfiniBand verbs library
    serve_image = serve_image.apt_install(*SPEC.apt_packages)
if SPEC.overrides:  # uv reads --override from a file: written in a layer of its own, before the install
    serve_image = serve_image.run_commands(overrides_file_command(SPEC.overrides))
if SPEC.requirements:
    serve_image = serve_image.uv_pip_install(*SPEC.requirements, extra_options=requirements_install_options(SPEC))
for _requirement in SPEC.project_requirements:
    # Installed (not just copied) so the `vllm.general_plugins` entry point exists for vLLM to load.
    serve_image = serve_image.add_local_dir(
        PROJECT_ROOT, PROJECT_IN_IMAGE, copy=True, ignore=_PROJECT_IGNORE
    ).run_commands(_project_install_command(_requirement))
if SPEC.auth_args:  # vLLM's --middleware imports it from PYTHONPATH (SPEC.image_env)
    serve_image = serve_image.add_local_file(AUTH_MODULE, f"{AUTH_DIR_IN_IMAGE}/{AUTH_MODULE.name}", copy=True)
serve_image = serve_image.env(dict(SPEC.image_env))

download_image = (
    modal.Image.debian_slim(python_version=PYTHON)
    .uv_pip_install(*SPEC.download_requirements)
    .env({"HF_XET_HIGH_PERFORMANCE": "1"})
    .add_local_python_source("modelformats")
)

weights_volume = modal.Volume.from_name(VOLUME_NAMES["weights"], create_if_missing=True)
hf_cache_volume = modal.Volume.from_name(VOLUME_NAMES["hf_cache"], create_if_missing=True)
vllm_cache_volume = modal.Volume.from_name(VOLUME_NAMES["vllm_cache"], create_if_missing=True)
gpu_stats = modal.Dict.from_name("modelformats-gpu-stats", create_if_missing=True)

_secret_name = os.environ.get(SECRET_ENV, "")
SECRETS = [modal.Secret.from_name(_secret_name, required_keys=["HF_TOKEN"])] if _secret_name else []
# The endpoint's key, for the serving containers only (the download function never needs it).
SERVE_SECRETS = [
    *SECRETS,
    *([modal.Secret.from_name(SPEC.api_key_secret, required_keys=[API_KEY_ENV])] if SPEC.api_key_secret else []),
]
# Containers import this file again: give them the same plan, secret and auth choice.
_FUNCTION_ENV = {
    PLAN_JSON_ENV: json.dumps(PLAN, sort_keys=True),
    SECRET_ENV: _secret_name,
    AUTH_ENV: SPEC.auth,
    API_KEY_SECRET_ENV: SPEC.api_key_secret or "",
}


@app.function(
    image=download_image,
    volumes={SPEC.download_root: weights_volume, HF_CACHE: hf_cache_volume},
    secrets=SECRETS,
    timeout=SPEC.download_timeout,
    env=_FUNCTION_ENV,
    # Xet's high-performance mode runs many parallel streams and buffers in RAM (an OOM was
    # reported on a 12 GB node), so the CPU-only download container asks for room.
    cpu=DOWNLOAD_CPUS,
    memory=DOWNLOAD_MEMORY_MIB,
)
def download_weights() -> str:
    """Fetch exactly the plan's files into the weights Volume, join .partXofY splits, convert the GGUF into
    the directory the engine serves when the plan says so (`download.converts`); return the report."""
    from modelformats.download import download  # in the download image only

    weights_volume.reload()
    report = download(PLAN, progress=print)
    weights_volume.commit()
    return report.render()


def _sample_gpu_memory() -> None:
    """Keep the peak of nvidia-smi's memory.used per GPU in a modal.Dict the local entrypoint reads."""
    peak: list[float] = []
    total: list[float] = []
    samples = 0
    pushed = 0.0
    query = ["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"]
    while True:
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True).stdout
            rows = parse_nvidia_smi(out)
        except (OSError, ValueError, subprocess.SubprocessError):
            rows = []
        if rows:
            samples += 1
            grew = not peak or any(used > p for (used, _), p in zip(rows, peak, strict=False))
            peak = [max(used, peak[i] if i < len(peak) else 0.0) for i, (used, _) in enumerate(rows)]
            total = [t for _, t in rows]
            # Push on a new peak, else every 15 s so the reader can tell a live record from a stale one.
            if grew or time.time() - pushed > 15:
                pushed = time.time()
                gpu_stats.put(
                    GPU_STATS_KEY,
                    {"peak_used_mib": peak, "total_mib": total, "samples": samples, "updated_at": pushed},
                )
        time.sleep(GPU_SAMPLE_INTERVAL_S)


_SERVE_VOLUMES = {SPEC.download_root: weights_volume, HF_CACHE: hf_cache_volume, VLLM_CACHE: vllm_cache_volume}


def _start_engine(rank: int = 0, master_addr: str = "") -> subprocess.Popen[bytes]:
    """Start this container's engine process (argv as planned plus its rank's arguments, no shell; the key,
    if any, in its environment)."""
    argv = node_argv(SPEC, rank=rank, master_addr=master_addr)
    env = {**os.environ, **engine_env(SPEC, rank=rank, api_key=os.environ.get(API_KEY_ENV))}
    if rank == 0:
        threading.Thread(target=_sample_gpu_memory, name="gpu-memory", daemon=True).start()
    return subprocess.Popen(list(argv), env=env)


if SPEC.nodes == 1:

    @app.function(
        image=serve_image,
        gpu=SPEC.gpu,
        volumes=_SERVE_VOLUMES,
        secrets=SERVE_SECRETS,
        timeout=SPEC.serve_timeout,
        scaledown_window=15 * MINUTES,
        # One replica: a second GPU container doubles the bill; raise this for real traffic.
        max_containers=1,
        env={**_FUNCTION_ENV, "HF_HUB_OFFLINE": "1"},
    )
    @modal.concurrent(max_inputs=SPEC.max_inputs)
    @modal.web_server(port=SPEC.port, startup_timeout=SPEC.web_startup_timeout)
    def serve() -> None:
        """Start the plan's engine command; Modal routes HTTP to SPEC.port once it accepts connections."""
        _start_engine()

else:

    @app.server(
        image=serve_image,
        gpu=SPEC.gpu,
        volumes=_SERVE_VOLUMES,  # type: ignore[arg-type] - a dict of Volumes is what modal takes
        secrets=SERVE_SECRETS,
        env={**_FUNCTION_ENV, "HF_HUB_OFFLINE": "1"},
        port=SPEC.port,
        startup_timeout=SPEC.web_startup_timeout,
        # The engine checks the key itself (auth "api-key"); Modal's proxy auth would also demand
        # Modal-Key/Modal-Secret headers that OpenAI clients do not send.
        unauthenticated=True,
        max_concurrency=SPEC.max_inputs,
        # One cluster: max_containers counts containers and must be a multiple of the cluster size.
        max_containers=SPEC.nodes,
        scaledown_window=15 * MINUTES,
    )
    @modal.clustered(size=SPEC.nodes, rdma=SPEC.rdma)
    class ClusterServer:
        """One vLLM across SPEC.nodes containers: rank 0 serves HTTP, the others run headless."""

        @modal.enter()
        def start(self) -> None:
            cluster = modal.Cluster.from_context()
            # vLLM's mp backend and torch.distributed rendezvous over IPv4.
            master = cluster.container_ips(family="ipv4")[0]
            self.process = _start_engine(cluster.container_rank(), master)

        @modal.exit()
        def stop(self) -> None:
            self.process.terminate()


def _read_gpu_memory(since: float) -> Any:
    from modelformats.smoke import GpuMemory

    record = gpu_stats.get(GPU_STATS_KEY)
    if not record or record.get("updated_at", 0) < since:
        return None  # no sample from this run's container
    return GpuMemory(
        peak_used_mib=tuple(record["peak_used_mib"]),
        total_mib=tuple(record["total_mib"]),
        samples=int(record["samples"]),
        source="nvidia-smi in the serving container, peak since it started",
    )


def _check_secret(name: str) -> None:
    """Stop with the command that creates the API-key secret when the workspace lacks it (Modal would
    otherwise fail the serving function at start with only 'Secret not found')."""
    try:
        modal.Secret.from_name(name, required_keys=[API_KEY_ENV]).hydrate()
    except modal.exception.NotFoundError as exc:
        raise SystemExit(
            f"The Modal Secret {name!r} does not exist ({exc}). Create it with "
            f"`modal secret create {name} {API_KEY_ENV}=$MODELFORMATS_API_KEY`, or set {AUTH_ENV}=none "
            "to serve a public endpoint."
        ) from exc


@app.local_entrypoint()
def test_gguf_model(skip_download: bool = False, max_tokens: int = 256) -> None:
    """Download the plan's files, start the server, send the three prompts, print answers and timings."""
    from modelformats.smoke import DEFAULT_PROMPTS, render_report, run_smoke

    nodes = f" x {SPEC.nodes} nodes" if SPEC.nodes > 1 else ""
    print(f"plan: {PLAN['repo_id']} -> {SPEC.engine} on {SPEC.gpu}{nodes}: {' '.join(SERVE_ARGV)}")
    # Only our own variable: OPENAI_API_KEY is the user's OpenAI key and must not go to this endpoint.
    api_key = os.environ.get(API_KEY_ENV) or None
    if SPEC.auth == "api-key" and not api_key:
        raise SystemExit(
            f"The endpoint demands the key in the Modal Secret {SPEC.api_key_secret!r}: export {API_KEY_ENV} "
            f"with the same value to smoke-test it, or set {AUTH_ENV}=none for a public endpoint."
        )
    if SPEC.api_key_secret:
        _check_secret(SPEC.api_key_secret)
    if not skip_download:
        print(download_weights.remote())
    started = time.time()
    url = serve.get_web_url() if SPEC.nodes == 1 else ClusterServer.get_url()
    print(f"waiting for {url}/health (up to {SPEC.health_timeout} s) ...")
    report = run_smoke(
        url,
        model=PLAN.get("served_model_name"),
        prompts=DEFAULT_PROMPTS,
        timeout=REQUEST_TIMEOUT_S,
        max_tokens=max_tokens,
        started_at=started,
        health_timeout=SPEC.health_timeout,
        gpu_memory=lambda: _read_gpu_memory(started),
        api_key=api_key if SPEC.auth == "api-key" else None,
    )
    for result in report.results:
        print(f"\n> {result.prompt}")
        if result.ok:
            rate = f"{result.tokens_per_s:.1f} tok/s" if result.tokens_per_s else "tok/s unknown"
            print(f"{result.answer}\n[{result.latency_s:.2f} s, TTFT {result.ttft_s or 0:.2f} s, {rate}]")
        else:
            print(f"ERROR: {result.error}")
    print("\n" + render_report(report))
    if not report.ok:
        raise SystemExit(report.exit_code)
