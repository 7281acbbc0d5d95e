"""Resolve every distinct requirement set the plans emit with `uv pip compile`; exit 1 on a conflict.

    python -m tools.plan_requirements [--work DIR]       (nox -s plan_requirements; needs the package index)

Plans come from `modelformats plan --json` on every recorded listing (tests/data/listings), for each
verified vLLM version and format choice (`--format auto` and `gguf`, as tools/vllm_compat does), plus
llama.cpp, and from the engine commands tools/vllm_compat builds for every kind of plan (bitsandbytes
through vllm-bnb-plugin, GGUF with either plugin). A plan's `engine.requirements` must install together
with its `engine.overrides` as uv overrides, for CPython 3.11 on x86-64 manylinux_2_28 (where the locks
run). `modelformats[...]==V` is resolved from this checkout, whose version must be V.

Negative controls, which must fail to resolve or the session fails: vllm 0.34.0's requirements without
its override (flashinfer-python==0.7.3 is not on PyPI), and a transformers the vLLM pin excludes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LISTINGS = ROOT / "tests" / "data" / "listings"
PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")


@dataclass(frozen=True, slots=True)
class RequirementSet:
    """One distinct set a plan asks for, and the plans that ask for it."""

    requirements: tuple[str, ...]
    overrides: tuple[str, ...]


def local_requirement(line: str, version: str, root: Path = ROOT) -> str:
    """`modelformats[x]==V` -> a direct reference to this checkout (V must be its version); others as given."""
    req = Requirement(line)
    if req.name != "modelformats":
        return line
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        raise SystemExit(f"a plan asks for {line}, but this checkout is modelformats {version}")
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"modelformats{extras} @ {root.as_uri()}"


def distinct_sets(plans: Sequence[tuple[str, dict[str, object]]]) -> dict[RequirementSet, list[str]]:
    """Group `(label, engine section)` by the requirement set they ask for (order-insensitive)."""
    sets: dict[RequirementSet, list[str]] = {}
    for label, engine in plans:
        reqs = tuple(sorted(str(r) for r in engine.get("requirements") or ()))  # type: ignore[attr-defined]
        if not reqs:
            continue  # a container image (llama.cpp's server image) brings its own
        key = RequirementSet(reqs, tuple(sorted(str(o) for o in engine.get("overrides") or ())))  # type: ignore[attr-defined]
        sets.setdefault(key, []).append(label)
    return sets


def _plan(argv: list[str]) -> dict[str, object] | None:
    from modelformats.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return json.loads(out.getvalue()) if code == 0 else None


def engine_plans() -> Iterator[tuple[str, dict[str, object]]]:
    """The engine commands tools/vllm_compat builds for every kind of plan (bitsandbytes, GGUF, ...)."""
    from tools.vllm_compat.cases import _engines, specs

    from modelformats.engines.vllm import VERIFIED_VLLM_VERSIONS
    from modelformats.errors import EngineCannotLoadError

    for version in VERIFIED_VLLM_VERSIONS:
        for spec in specs():
            for engine in _engines(version):
                with contextlib.suppress(EngineCannotLoadError):
                    command = engine.command(spec.weights, spec.runtime, engine.check(spec.weights))
                    yield f"engine:{spec.label} ({engine.label})", command.to_dict()


def plans() -> Iterator[tuple[str, dict[str, object]]]:
    from modelformats.engines.vllm import VERIFIED_VLLM_VERSIONS

    yield from engine_plans()

    for path in sorted(LISTINGS.glob("*.json")):
        repo_id = json.loads(path.read_text())["repo_id"]
        base = ["plan", "--listing", str(LISTINGS), repo_id, "--json"]
        for version in VERIFIED_VLLM_VERSIONS:
            for fmt in ("auto", "gguf"):
                plan = _plan([*base, "--engine", "vllm", "--vllm-version", version, "--format", fmt])
                if plan is not None:
                    yield f"{repo_id} (vllm {version}, --format {fmt})", plan["engine"]  # type: ignore[misc]
        plan = _plan([*base, "--engine", "llamacpp"])
        if plan is not None:
            yield f"{repo_id} (llamacpp)", plan["engine"]  # type: ignore[misc]


def resolve(uv: str, reqs: Sequence[str], overrides: Sequence[str], work: Path) -> str | None:
    """None when the set resolves, else uv's explanation."""
    version = metadata.version("modelformats")
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        source, extra = Path(tmp) / "requirements.in", []
        source.write_text("".join(f"{local_requirement(r, version)}\n" for r in reqs))
        if overrides:
            (Path(tmp) / "overrides.txt").write_text("".join(f"{o}\n" for o in overrides))
            extra = ["--overrides", str(Path(tmp) / "overrides.txt")]
        done = subprocess.run(
            [uv, "pip", "compile", "--quiet", "--no-header", *PLATFORM, *extra, str(source), "-o", "/dev/null"],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode == 0:
        return None
    return done.stderr.strip() or f"uv exited {done.returncode}"


# Sets that must NOT resolve: proof that the check can fail, and the fact behind vllm 0.34.0's override.
NEGATIVE_CONTROLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vllm 0.34.0 without its override", ("vllm==0.34.0",)),
    ("a transformers vllm 0.34.0 excludes", ("vllm==0.34.0", "transformers==5.25.0")),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default="uv")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "plan_requirements")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    sets = distinct_sets(list(plans()))
    print(f"plan_requirements: {sum(map(len, sets.values()))} plan(s), {len(sets)} distinct requirement set(s)")
    failures = 0
    for key, labels in sets.items():
        problem = resolve(args.uv, key.requirements, key.overrides, args.work)
        shown = " ".join(key.requirements) + (f"  [overrides: {' '.join(key.overrides)}]" if key.overrides else "")
        if problem is None:
            print(f"ok   {shown}  ({len(labels)} plan(s))")
            continue
        failures += 1
        print(f"FAIL {shown}\n  plans: {'; '.join(labels)}\n  {problem}")
    for label, reqs in NEGATIVE_CONTROLS:
        if resolve(args.uv, reqs, (), args.work) is None:
            failures += 1
            print(f"FAIL negative control resolved: {label} ({' '.join(reqs)})")
        else:
            print(f"ok   negative control fails to resolve, as predicted: {label}")
    print(f"plan_requirements: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
