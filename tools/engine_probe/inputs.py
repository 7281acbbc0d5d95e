"""What the probe's result depends on, as one digest (stdlib only: the default test imports this).

The committed data file stores `inputs_sha256`; `tests/engines/test_vllm_probe_data.py` recomputes
it from the repo and fails when the probe scripts, the listings it resolves tags against, or the
requirement lists of the vLLM environments changed without regenerating the data
(`nox -s engine_probe -- --write`).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE_DIR = ROOT / "tools" / "engine_probe"
LISTINGS_DIR = ROOT / "tests" / "data" / "listings"
DATA_FILE = ROOT / "src" / "modelformats" / "engines" / "data" / "vllm_gguf_probe.json"
NOXFILE = ROOT / "noxfile.py"
# The environments probed, oldest first; their requirement lists come from noxfile.HEAVY_ENVS.
PROBED_ENVS = ("vllm-0.23.0", "vllm-0.33.0")
SCHEMA = "modelformats-vllm-gguf-probe/1"


# The scripts whose content can change the probe's result (table.py only renders it).
PROBE_SCRIPTS = ("__main__.py", "engine.py", "fixtures.py", "layouts.py")


def probe_files() -> list[Path]:
    """Every file whose content can change the probe's result."""
    scripts = [PROBE_DIR / name for name in PROBE_SCRIPTS]
    listings = sorted(p for p in LISTINGS_DIR.glob("*.json") if ".gguf" in p.read_text())
    return [*scripts, *listings]


def inputs_digest(requirements: Mapping[str, Sequence[str]]) -> str:
    """sha256 over the probe's files (path + bytes) and the probed environments' requirements."""
    digest = hashlib.sha256()
    for path in probe_files():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    wanted = {name: list(requirements[name]) for name in PROBED_ENVS}
    digest.update(json.dumps(wanted, sort_keys=True).encode())
    return digest.hexdigest()


def heavy_envs_from_noxfile(path: Path = NOXFILE) -> dict[str, list[str]]:
    """Read `HEAVY_ENVS = {...}` from noxfile.py without importing nox."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "HEAVY_ENVS" and node.value is not None:
            value = ast.literal_eval(node.value)
            return {str(k): [str(r) for r in v] for k, v in value.items()}
    raise LookupError(f"HEAVY_ENVS not found in {path}")
