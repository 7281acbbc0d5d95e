""".ci/heavy, the half of CI that runs every heavy session: run for real, with a stand-in for nox.

The stand-in (`NOX`) acts on the session's name: `ok*` sleeps two seconds and passes, `fail*` exits 3,
`hang*` sleeps past its timeout. What is checked is CI's own logic: a skipped, stopped or failed
session fails CI and is named; lanes of one stage run side by side; stages run in order.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ROOT / ".ci" / "heavy"

FAKE_NOX = """#!/usr/bin/env bash
name=$2
echo "$name start $(date +%s.%N)" >>"$FAKE_NOX_LOG"
case $name in
  ok*) sleep 2; echo "output of $name" ;;
  fail*) echo "output of $name"; exit 3 ;;
  hang*) sleep 30 ;;
esac
echo "$name end $(date +%s.%N)" >>"$FAKE_NOX_LOG"
"""


def _run(tmp_path: Path, heavy: str, budget: int = 5100) -> tuple[int, str, dict[str, tuple[float, float]]]:
    nox = tmp_path / "nox"
    nox.write_text(FAKE_NOX)
    nox.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "NOX": str(nox),
        "FAKE_NOX_LOG": str(log),
        "MODELFORMATS_CI_HEAVY": heavy,
        "MODELFORMATS_CI_BUDGET_S": str(budget),
        "MODELFORMATS_CI_STATUS": str(tmp_path / "status"),
    }
    env.pop("MODELFORMATS_CI_START", None)
    done = subprocess.run(["bash", str(HEAVY)], check=False, env=env, capture_output=True, text=True, timeout=120)
    times: dict[str, list[float]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        name, _, stamp = line.split()
        times.setdefault(name, []).append(float(stamp))
    return done.returncode, done.stdout + done.stderr, {k: (v[0], v[-1]) for k, v in times.items()}


def test_all_sessions_pass_and_lanes_run_side_by_side(tmp_path):
    rc, out, times = _run(tmp_path, "ok_first:60 ; ok_a1:60 ok_a2:60 | ok_b1:60 ok_b2:60")
    assert rc == 0, out
    assert out.splitlines()[-1].startswith("heavy sessions: 5 ran, 0 skipped, 0 stopped, 0 failed")
    # The second stage starts after the first ends; its two lanes overlap; each lane keeps its order.
    assert min(times[n][0] for n in ("ok_a1", "ok_b1")) >= times["ok_first"][1]
    assert times["ok_a1"][0] < times["ok_b1"][1] and times["ok_b1"][0] < times["ok_a1"][1]
    assert times["ok_a2"][0] >= times["ok_a1"][1] and times["ok_b2"][0] >= times["ok_b1"][1]
    # Each session's output is printed whole, with its verdict.
    assert "output of ok_b2" in out and "== nox -s ok_b2 passed" in out


def test_a_failed_or_stopped_session_fails_ci_and_is_named(tmp_path):
    start = time.monotonic()
    rc, out, _ = _run(tmp_path, "ok_a:60 fail_b:60 | hang_c:2 ok_d:60")
    assert rc != 0
    assert time.monotonic() - start < 40  # the hung session was stopped at its own timeout
    assert "::error:: nox -s fail_b failed (exit 3)" in out and "output of fail_b" in out
    assert "::error:: stopped nox -s hang_c" in out
    assert out.splitlines()[-1] == (
        "heavy sessions: 2 ran, 0 skipped, 1 stopped, 1 failed (skipped: none; stopped: hang_c; failed: fail_b)"
    )


def test_no_budget_skips_every_session_and_fails_naming_them(tmp_path):
    rc, out, times = _run(tmp_path, "ok_a:60 | ok_b:60 ; ok_c:60", budget=1)
    assert rc != 0 and times == {}
    for name in ("ok_a", "ok_b", "ok_c"):
        assert f"::error:: skipped nox -s {name}" in out
    assert out.splitlines()[-1].startswith("heavy sessions: 0 ran, 3 skipped, 0 stopped, 0 failed (skipped: ")


def test_the_default_list_names_every_heavy_session_once_and_each_exists():
    text = HEAVY.read_text()
    specs = re.findall(r"\b([a-z_0-9]+):(\d+)\b", " ".join(re.findall(r'^STAGE\d\+?="([^"]*)"', text, re.M)))
    names = [name for name, _ in specs]
    assert len(names) == len(set(names)) >= 11
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any("nox.session" in ast.unparse(d) for d in node.decorator_list)
    }
    assert set(names) <= sessions, set(names) - sessions
    # The default CI never leaves a proof out: every session that records or checks evidence is listed.
    proofs = {"engine_probe", "gguf_plugin_proof", "gguf_convert_proof", "vllm_cpu_generation", "llamacpp_e2e"}
    assert proofs <= set(names)
