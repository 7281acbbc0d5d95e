"""Developer and CI sessions. `nox -s tests` is the test command the README gives.

Heavy sessions (real vLLM parsers, engine probes, llama.cpp) run in cached virtualenvs under
`.cache/venvs/`, keyed by their requirement list, so a second run reuses them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CACHE = ROOT / ".cache"
VENVS = CACHE / "venvs"

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
DEV = ["pytest>=8", "hypothesis>=6.100", "gguf>=0.17", "numpy>=1.26"]

# Requirement sets of the heavy environments, shared by every session that needs them.
# vLLM installs without a GPU; VLLM_TARGET_DEVICE=cpu lets its CLI parser and loaders run on CPU.
HEAVY_ENVS: dict[str, list[str]] = {
    "vllm-0.23.0": ["vllm==0.23.0"],
    # The newest vLLM with the GGUF plugin, plus llama.cpp (converter, CPU runtime, server) for the proofs.
    "vllm-0.33.0": [
        "vllm==0.33.0",
        "vllm-gguf-plugin==0.0.5",
        "llama-cpp-python[server]==0.3.36",
        "sentencepiece>=0.2",
    ],
}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default test run: unit, contract, golden and offline integration tests."""
    session.install("-e", ".[modal]", *DEV)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict on the package."""
    session.install("-e", ".", "ruff>=0.8", "mypy>=1.13", *DEV)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


def cached_venv(session: nox.Session, name: str, extra: list[str] | None = None) -> Path:
    """Create (once) the heavy virtualenv `name`; return its python. Reused while its requirements match."""
    requirements = [*HEAVY_ENVS[name], *(extra or [])]
    key = hashlib.sha256(json.dumps(requirements).encode()).hexdigest()[:16]
    venv = VENVS / name
    VENVS.mkdir(parents=True, exist_ok=True)
    # Sessions may share an environment; a lock keeps two of them from building it at once.
    with (VENVS / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_venv(session, venv, requirements, key)


def _build_venv(session: nox.Session, venv: Path, requirements: list[str], key: str) -> Path:
    python = venv / "bin" / "python"
    stamp = venv / ".modelformats-stamp"
    if not (python.exists() and stamp.exists() and stamp.read_text() == key):
        uv = shutil.which("uv")
        if uv is None:
            session.install("uv")
            uv = str(Path(session.bin) / "uv")
        shutil.rmtree(venv, ignore_errors=True)
        session.run(uv, "venv", "--python", PYTHON, str(venv), external=True)
        # Resolution is pinned by the requirement strings; the project goes in without deps so
        # vLLM's own pins of huggingface_hub/transformers stay as vLLM wants them.
        session.run(uv, "pip", "install", "--python", str(python), *requirements, external=True)
        session.run(
            uv, "pip", "install", "--python", str(python), "--no-deps", "-e", str(ROOT), external=True
        )
        stamp.write_text(key)
    else:
        session.log(f"reusing {venv} ({key})")
    return python


def run_in(session: nox.Session, python: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """Run `python args...` from a cached venv with a CPU-only vLLM environment."""
    full_env = {"VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    full_env.update(env or {})
    session.run(str(python), *args, env=full_env, external=True)
