"""Run the GGUF engine probe in every vLLM environment and compare with the committed data file.

    python -m tools.engine_probe --envs '{"vllm-0.23.0": "<python>", ..., "vllm-0.34.0": "<python>"}' [--update]

Writes the tiny GGUF files once (tools/engine_probe/fixtures.py), runs tools/engine_probe/engine.py
in each environment (in parallel: each is one CPU-bound process), and assembles
src/modelformats/engines/data/vllm_gguf_probe.json. Without --write it exits 1 when the result
differs from the committed file (the new one is left in .cache/engine_probe/ for review).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.engine_probe.fixtures import write_all
from tools.engine_probe.inputs import LISTINGS_DIR, PROBED_ENVS, ROOT, SCHEMA, lock_file, locked_versions
from tools.engine_probe.layouts import LAYOUTS, layout_tensors
from tools.evidence import BY_NAME, finish

WORK = ROOT / ".cache" / "engine_probe"


def _engine_env(python: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VLLM_TARGET_DEVICE="cpu",
        HF_HUB_OFFLINE="1",
        VLLM_LOGGING_LEVEL="ERROR",
        # Only vllm-gguf-plugin: the probe describes stock vLLM (+ the plugin), not modelformats' own plugin.
        VLLM_PLUGINS="gguf",
        # vLLM inspects each model class in a subprocess (an import of vLLM each) and caches what it finds
        # under VLLM_CACHE_ROOT/modelinfos, keyed by class name and checked against the module's hash. One
        # cache per locked venv, inside it (rebuilt with it when the lock changes): shared by the versions,
        # each would overwrite the others' entries and every run would inspect again.
        VLLM_CACHE_ROOT=str(Path(python).parent.parent / "vllm-cache"),
        PYTHONPATH=str(ROOT),
    )
    return env


def run_engines(envs: dict[str, str], root: Path, fixtures_json: Path) -> dict[str, Any]:
    procs = {}
    for name in PROBED_ENVS:
        out = WORK / f"{name}.json"
        log = (WORK / f"{name}.log").open("w")
        cmd = [
            envs[name],
            "-m",
            "tools.engine_probe.engine",
            "--fixtures",
            str(fixtures_json),
            "--listings",
            str(LISTINGS_DIR),
            "--root",
            str(root),
            "--output",
            str(out),
        ]
        procs[name] = (
            subprocess.Popen(cmd, cwd=ROOT, env=_engine_env(envs[name]), stdout=log, stderr=subprocess.STDOUT),
            out,
            log,
        )
    results: dict[str, Any] = {}
    for name, (proc, out, log) in procs.items():
        code = proc.wait()
        log.close()
        if code != 0:
            tail = (WORK / f"{name}.log").read_text()[-4000:]
            raise SystemExit(f"engine probe failed in {name} (exit {code}); log tail:\n{tail}")
        result = json.loads(out.read_text())
        _check_versions(name, result["versions"])
        results[name] = result | {"lock": lock_file(name).relative_to(ROOT).as_posix()}
    return results


def _check_versions(name: str, versions: dict[str, str | None]) -> None:
    """The environment that ran must be the locked one: a drifted venv proves nothing."""
    locked = locked_versions(name)
    drift = {k: (v, versions.get(k)) for k, v in locked.items() if versions.get(k) != v}
    if drift:
        raise SystemExit(
            f"engine probe: {name} does not match {lock_file(name).name}: "
            + ", ".join(f"{k} locked {a}, installed {b}" for k, (a, b) in drift.items())
            + ". Rebuild it with `nox -s heavy_envs`."
        )


def assemble(engines: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "generated_by": "nox -s engine_probe -- --update (tools/engine_probe)",
        "depth": (
            "Per case: EngineArgs(...).create_engine_config() (the HF config vLLM ends with), the GGUF -> HF "
            "name map, then the loader's whole load_model on the CPU device (initialize_model with the GGUF "
            "quant config, the model's own load_weights, process_weights_after_loading). It stops before a "
            "forward pass: GGUF matmuls need vLLM's CUDA (or the plugin's Triton) kernels."
        ),
        "layouts": {
            layout.name: {
                "description": layout.description,
                "gguf_architecture": layout.arch,
                "hf_model_type": layout.hf_config["model_type"],
                "experts": "expert_count" in layout.metadata,
                "gguf_tensors": sorted(
                    {n.split(".", 2)[-1] if n.startswith("blk.") else n for n in layout_tensors(layout)}
                ),
            }
            for layout in LAYOUTS
        },
        "engines": engines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", required=True, help="JSON {env: python of its locked venv}")
    parser.add_argument("--update", "--write", action="store_true", help="update the committed data file")
    args = parser.parse_args(argv)
    envs = json.loads(args.envs)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="engine-probe-") as tmp:
        root = Path(tmp)
        fixtures_json = root / "fixtures.json"
        fixtures_json.write_text(json.dumps(write_all(root)))
        engines = run_engines(envs, root, fixtures_json)
    print(f"engine probe: {len(PROBED_ENVS)} environments in {time.monotonic() - started:.0f} s")
    code = finish(BY_NAME["vllm_gguf_probe"], assemble(engines), update=args.update)
    if args.update:
        # The docs tables are regenerated from the same data (the default tests check they match).
        from tools.engine_probe import table

        table.write_doc(table.render(json.loads(table.DATA.read_text())))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
