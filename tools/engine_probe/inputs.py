"""What the probe's result depends on (stdlib only: the default test imports this).

The committed data file carries a provenance block (tools/evidence.py): the sha256 of the probe's
scripts, the listings it resolves tags against and the lock files of the probed environments.
`tests/test_evidence.py` recomputes them and fails when any changed without re-running
`nox -s engine_probe -- --update`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE_DIR = ROOT / "tools" / "engine_probe"
LISTINGS_DIR = ROOT / "tests" / "data" / "listings"
DATA_FILE = ROOT / "src" / "modelformats" / "engines" / "data" / "vllm_gguf_probe.json"
LOCKS_DIR = ROOT / "locks"
# The environments probed, oldest first; each is installed from locks/<name>.txt.
PROBED_ENVS = ("vllm-0.23.0", "vllm-0.33.0", "vllm-0.34.0")
SCHEMA = "modelformats-vllm-gguf-probe/2"


def lock_file(env: str) -> Path:
    return LOCKS_DIR / f"{env}.txt"


def locked_versions(
    env: str, names: tuple[str, ...] = ("vllm", "vllm-gguf-plugin", "torch", "transformers")
) -> dict[str, str | None]:
    """The versions some packages have in an environment's lock file (None: not in it)."""
    from tools.locks import pins

    locked = pins(env)
    return {n: locked.get(n) for n in names}
