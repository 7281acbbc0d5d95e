"""Output for people: every plan of every recorded listing fits the width, stays short, and its command
block pastes into a shell as the plan's argv; --explain keeps everything; colour only on a TTY.

A golden snapshot pins the default view of the offline target (`tests/data/golden/`); rewrite it with
`MODELFORMATS_UPDATE_GOLDEN=1 pytest tests/test_render.py` after a deliberate change.
"""

from __future__ import annotations

import io
import os
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from modelformats.cli import main
from modelformats.deployment import DeploymentPlan
from modelformats.errors import ModelFormatsError
from modelformats.planner import PlanOptions, plan
from modelformats.render import Style, command_block, render_gpus, render_plan, use_colour
from modelformats.sources import RecordedSource

HERE = Path(__file__).parent
GOLDEN = HERE / "data" / "golden"
# The project's recordings, and the shared fixture set when this machine has it (the same repos today).
LISTING_DIRS = [HERE / "data" / "listings", Path("/work/shared/fixtures/listings")]
# "At most ~30 lines": the longest default view of all recordings is 31 lines at 80 columns.
# 33: the target's plan lists five routes since issue 18's online-FP8 alternative.
MAX_LINES = 33
ANSI = re.compile(r"\033\[[0-9;]*m")


@cache
def _plans() -> dict[str, DeploymentPlan]:
    plans: dict[str, DeploymentPlan] = {}
    for folder in LISTING_DIRS:
        if not folder.is_dir():
            continue
        source = RecordedSource.from_paths([str(folder)])
        for repo in source.repo_ids:
            for fmt in ("auto", "gguf", "native"):
                try:
                    result = plan(repo, source=source, options=PlanOptions(format=fmt))  # type: ignore[arg-type]
                except ModelFormatsError:
                    continue  # an unservable format, or no route of that kind: nothing to render
                plans[f"{folder.parent.name}/{folder.name}:{repo}:{fmt}"] = result
    return plans


def _cases() -> list[str]:
    return sorted(_plans())


def _unwrapped(argv_block: list[str]) -> list[str]:
    """What a POSIX shell makes of the pasted block: backslash-newline removed, then split into words."""
    return shlex.split("\n".join(argv_block).replace("\\\n", ""))


def _squash(text: str) -> str:
    return "".join(text.split())


def test_there_are_plans_to_check():
    assert len(_cases()) >= 20


@pytest.mark.parametrize("case", _cases())
@pytest.mark.parametrize("width", [60, 80, 120])
def test_every_line_fits_and_the_default_view_is_short(case, width):
    p = _plans()[case]
    text = render_plan(p, width=width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    if width >= 80:
        assert len(lines) <= MAX_LINES, text
    explained = render_plan(p, width=width, explain=True)
    assert max(len(line) for line in explained.splitlines()) <= width


@pytest.mark.parametrize("case", _cases())
def test_the_command_block_pastes_back_to_the_argv(case):
    p = _plans()[case]
    lines = render_plan(p, width=80).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("command"))
    block = []
    for line in lines[start + 1 :]:
        block.append(line)
        if not line.endswith("\\"):
            break
    assert _unwrapped(block) == list(p.engine.argv)
    # One flag per line, never cut: each flag starts a line (after the indent) and is whole there.
    flags = [a for a in p.engine.argv if a.startswith("--")]
    starts = [line.split()[0] for line in block if line.startswith("    --")]
    assert starts == flags


@pytest.mark.parametrize("case", _cases())
def test_explain_shows_everything_the_old_view_showed(case):
    p = _plans()[case]
    text = _squash(render_plan(p, width=80, explain=True))
    facts = [
        p.repo_id,
        p.engine.name,
        p.engine.version,
        p.engine.verdict.level.description if p.engine.verdict else "",
        *p.engine.requirements,
        *p.explanation,
        *p.warnings,
        *(f for item in p.downloads for f in item.files),
        *(item.repo_id for item in p.downloads),
        *(t.basis for t in (p.memory.terms if p.memory is not None else ())),
        *(alt.reason for alt in p.alternatives),
        *(alt.label for alt in p.alternatives),
        f"max_num_seqs{p.runtime.max_num_seqs}",
    ]
    missing = [f for f in facts if _squash(f) not in text]
    assert missing == []


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MODELFORMATS_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("argv", "golden"), [([], "plan_default.txt"), (["--format", "gguf"], "plan_gguf.txt")])
def test_golden_default_view(argv, golden, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["plan", *argv]) == 0
    out = capsys.readouterr().out
    _golden(golden, out)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80 and len(lines) <= MAX_LINES
    assert "\033" not in out  # not a TTY: no colour


def test_seed_rule_and_cost_policy_are_explained_plainly(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "kept H100 by rule moe-18b-h100; --policy cost picks A100-80GB for $1.45/h less" in out
    assert main(["plan", "--policy", "cost"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "A100-80GB is the cheapest that fits; --policy seed picks H100 for $1.45/h more" in out


def test_a_forced_gpu_larger_than_needed_is_noted(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["plan", "--gpu", "H100:2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "--gpu H100:2 is larger than needed: each GPU is 41 % full; one H100 is enough ($3.95/h less)" in out
    assert main(["plan", "--gpu", "H100"]) == 0
    assert "larger than needed" not in capsys.readouterr().out


def test_command_block_cuts_only_inside_overlong_words():
    argv = ["llama-server", "--model", "/m/" + "x" * 150 + ".gguf", "--chat-template", "a b", "--port", "8000"]
    block = command_block(argv, 60)
    assert max(len(line) for line in block) <= 60
    assert _unwrapped(block) == argv
    assert "    --chat-template 'a b' \\" in block
    assert block[-1] == "    --port 8000"


def test_a_path_that_fits_only_without_the_continuation_is_cut_not_repeated():
    # `vllm serve PATH \`: a 66-character path fits the 80 columns after `  vllm serve `, but not with ` \`.
    path = "/models/example/Llama-3.1-8B-Instruct-GGUF/converted-Q8_0-bfloat16"
    argv = ["vllm", "serve", path, "--port", "8000"]
    block = command_block(argv, 80)
    assert max(len(line) for line in block) <= 80
    assert _unwrapped(block) == argv


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert use_colour(Tty()) is True
    assert use_colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(Tty()) is False
    p = next(iter(_plans().values()))
    coloured = render_plan(p, width=80, style=Style(colour=True))
    assert "\033[1m" in coloured
    # Escape codes take no columns: without them the view is the plain one.
    assert ANSI.sub("", coloured) == render_plan(p, width=80)


def test_gpus_fit_80_columns_and_explain_keeps_the_sources():
    text = render_gpus(width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.splitlines()[0].split() == ["GPU", "memory", "CC", "arch", "max", "NVLink", "$/h"]
    explained = render_gpus(width=80, explain=True)
    assert "techbytes.app" in explained and "A10G" in explained
    assert max(len(line) for line in explained.splitlines()) <= 80


def test_download_dry_run_lists_only_real_files_unless_explained(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["download", "--dry-run", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "if present" not in out and "vocab.txt" not in out
    assert "+ 14 standard tokenizer/config name(s) fetched only if the repo has them" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert main(["download", "--dry-run", "--dir", str(tmp_path), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "spiece.model" in out and "if present" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_inspect_prints_a_table_not_reprs(tmp_path, capsys, monkeypatch):
    import gguf
    import numpy as np

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(128)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "[" not in out
    assert out.splitlines()[0].split() == ["architecture", "llama"]
    assert re.search(r"^tensor_types +F32 1$", out, re.M)
