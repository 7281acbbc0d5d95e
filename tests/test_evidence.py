"""Evidence files are tied to the code and inputs they prove (tools/evidence.py).

A change to a proof script, to the project code a proof exercises (the vLLM plugin, the llama.cpp
argv builder) or to a lock file, without re-running the session that proves it, fails here - naming
the evidence file and the session. So does a verdict edited by hand.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from tools import evidence

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("item", evidence.EVIDENCE, ids=lambda e: e.name)
def test_committed_evidence_matches_its_sources_and_results(item):
    found = evidence.problems(item)
    assert not found, "\n".join(found)


def test_every_engine_data_file_is_registered_as_evidence():
    data = {p.relative_to(ROOT).as_posix() for p in (ROOT / evidence.DATA).glob("*.json")}
    assert data == {e.path for e in evidence.EVIDENCE}


def _copy_repo(tmp_path: Path) -> Path:
    """The files every evidence entry depends on, and the evidence files, copied under tmp_path."""
    root = tmp_path / "repo"
    for item in evidence.EVIDENCE:
        for path in [*item.source_files(), ROOT / item.path]:
            dest = root / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    return root


def _plugin_and_probe_files():
    plugin = sorted((ROOT / "src/modelformats/vllm_plugin").glob("*.py"))
    probe = [ROOT / "tools/engine_probe" / n for n in ("engine.py", "layouts.py", "fixtures.py")]
    return [p.relative_to(ROOT).as_posix() for p in [*plugin, *probe]]


@pytest.mark.parametrize("relative", _plugin_and_probe_files())
def test_a_comment_appended_to_proven_code_fails_naming_the_file_and_the_session(tmp_path, relative):
    root = _copy_repo(tmp_path)
    with (root / relative).open("a") as f:
        f.write("# an innocent-looking comment\n")
    found = evidence.check_all(root=root)
    assert found, f"appending to {relative} went unnoticed"
    text = "\n".join(found)
    assert relative in text
    sessions = {e.session for e in evidence.EVIDENCE if any(relative == p for p in evidence.source_hashes(e, root))}
    for session in sessions:
        assert f"nox -s {session} -- --update" in text


def test_deleting_the_qk_unpermute_fails(tmp_path):
    root = _copy_repo(tmp_path)
    adapter = root / "src/modelformats/vllm_plugin/_adapter.py"
    text = adapter.read_text()
    assert "self._unpermute(module, tensor)" in text
    adapter.write_text(text.replace("self._unpermute(module, tensor)", "tensor"))
    found = evidence.problems(evidence.BY_NAME["modelformats_plugin_proof"], root)
    assert any("_adapter.py (changed)" in p and "gguf_plugin_proof" in p for p in found), found


def test_a_verdict_edited_by_hand_fails(tmp_path):
    root = _copy_repo(tmp_path)
    path = root / evidence.BY_NAME["vllm_gguf_probe"].path
    data = json.loads(path.read_text())
    case = next(c for c in data["engines"]["vllm-0.33.0"]["cases"] if c.get("stopped_at") is not None)
    case["stopped_at"] = None  # "it loads now"
    path.write_text(json.dumps(data))
    found = evidence.problems(evidence.BY_NAME["vllm_gguf_probe"], root)
    assert any("edited after" in p and "nox -s engine_probe" in p for p in found), found


def test_a_lock_change_makes_the_probe_stale(tmp_path):
    root = _copy_repo(tmp_path)
    with (root / "locks/vllm-0.33.0.txt").open("a") as f:
        f.write("# recompiled\n")
    found = evidence.check_all(root=root)
    stale = {line.split(" ", 1)[0] for line in found if "locks/vllm-0.33.0.txt (changed)" in line}
    assert stale == {
        evidence.BY_NAME[name].path for name in ("vllm_gguf_probe", "modelformats_plugin_proof", "gguf_convert_proof")
    }


def test_finish_compares_and_only_update_writes(tmp_path, capsys):
    root = _copy_repo(tmp_path)
    item = evidence.BY_NAME["llamacpp_e2e"]
    committed = json.loads((root / item.path).read_text())
    fresh = evidence.results_of(committed)
    assert evidence.finish(item, fresh, update=False, root=root) == 0
    changed = json.loads(json.dumps(fresh))
    changed["cases"][0]["passed"] = not changed["cases"][0]["passed"]
    before = (root / item.path).read_text()
    assert evidence.finish(item, changed, update=False, root=root) == 1
    assert (root / item.path).read_text() == before, "a check run must never overwrite the committed file"
    assert ".cases[0].passed" in capsys.readouterr().err
    assert evidence.finish(item, changed, update=True, root=root) == 0
    assert evidence.problems(item, root) == []
    assert json.loads((root / item.path).read_text())["cases"][0]["passed"] == changed["cases"][0]["passed"]


def test_a_measured_value_is_masked_but_the_verdict_beside_it_is_compared(tmp_path, capsys):
    # llama.cpp's F32 logit difference varies between machines (3.6e-06 committed, 3.9e-06 in a CI run):
    # a run differing only there reproduces the file; the tolerance, argmax or pass/fail still compare.
    root = _copy_repo(tmp_path)
    item = evidence.BY_NAME["modelformats_plugin_proof"]
    committed = evidence.results_of(json.loads((root / item.path).read_text()))
    details = committed["results"][0]["details"]
    assert "max |dlogit| " in details and "(tolerance " in details

    def with_details(text):
        fresh = json.loads(json.dumps(committed))
        fresh["results"][0]["details"] = text
        return fresh

    noisy = re.sub(r"max \|dlogit\| \S+ = \S+ of", "max |dlogit| 9.9e-06 = 2.2e-06 of", details, count=1)
    assert noisy != details
    assert evidence.finish(item, with_details(noisy), update=False, root=root) == 0
    out = capsys.readouterr().out
    assert "reproduced by this run" in out and "9.9e-06 = 2.2e-06" in out
    for changed in (details.replace("(tolerance 0.0001)", "(tolerance 0.01)", 1), details.replace("24/24", "23/24", 1)):
        assert changed != details
        assert evidence.finish(item, with_details(changed), update=False, root=root) == 1
    assert (
        evidence.finish(item, with_details(details.replace("max |dlogit|", "max |dlogit", 1)), update=False, root=root)
        == 1
    )


def test_a_measured_key_is_masked_but_the_tokens_beside_it_compare(tmp_path, capsys):
    # vllm_cpu_generation's top-1 logprob differences vary with the CPU (3.7e-06 committed, 6.2e-06 in a CI run).
    root = _copy_repo(tmp_path)
    item = evidence.BY_NAME["vllm_cpu_generation"]
    committed = evidence.results_of(json.loads((root / item.path).read_text()))
    case = committed["results"][0]
    assert isinstance(case["vllm with modelformats"]["max_top1_logprob_diff"], float)
    noisy = json.loads(json.dumps(committed))
    noisy["results"][0]["vllm with modelformats"]["max_top1_logprob_diff"] = 9.9e-06
    assert evidence.finish(item, noisy, update=False, root=root) == 0
    assert "max_top1_logprob_diff: " in capsys.readouterr().out
    for path, value in (
        (("tokens",), [[0]]),
        (("passed",), False),
        (("vllm with modelformats", "max_top1_logprob_diff"), None),
    ):
        changed = json.loads(json.dumps(committed))
        target = changed["results"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert evidence.finish(item, changed, update=False, root=root) == 1, path
