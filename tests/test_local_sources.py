"""Local model directories as sources: `plan DIR`, `download DIR`, `inspect DIR`; links that leave the
directory, FIFOs and devices refused without opening them (never a hang); control characters in names
shown escaped in human output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from modelformats.cli import main
from modelformats.errors import GGUFHeaderError, InvalidListingError
from modelformats.gguf.header import read_header
from modelformats.sources.local import LocalDirSource


def _gguf(path: Path) -> None:
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(2048)
    w.add_tensor("token_embd.weight", np.ones((50, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    _gguf(folder / "tiny-Q8_0.gguf")
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_a_local_directory(capsys, model_dir):
    code, out, err = run(capsys, "plan", str(model_dir))
    assert code == 0, err
    assert out.startswith("local/tiny (0.0B)\nserve   gguf Q8_0 weights of this repo\nfiles   1 file(s)")


def test_a_missing_local_directory_is_named(capsys, tmp_path):
    code, _, err = run(capsys, "plan", f"{tmp_path}/nope")
    assert (code, err) == (
        2,
        f"error: '{tmp_path}/nope' does not exist. Name a model directory (a local snapshot of a repo), or a Hub "
        "repo as 'owner/name'.\n",
    )


def test_download_a_local_directory_copies_the_planned_files(capsys, model_dir, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "download", str(model_dir), "--dir", str(out_dir))
    assert code == 0, err
    copied = out_dir / "local" / "tiny" / "tiny-Q8_0.gguf"
    assert copied.read_bytes() == (model_dir / "tiny-Q8_0.gguf").read_bytes()
    assert "copied: 1 file(s) from the local model directory" in out


def test_a_plan_made_from_a_directory_downloads_from_that_directory(capsys, model_dir, tmp_path, monkeypatch):
    """`plan DIR --json` then `download --plan`: the files come from DIR, the Hub is never asked."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a Hub request would fail
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "plan", str(model_dir), "--download-root", str(out_dir), "--json")
    assert code == 0, err
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(out)
    assert [item.get("source_dir") for item in json.loads(out)["download"]["items"]] == [str(model_dir.resolve())]
    code, out, err = run(capsys, "download", "--plan", str(plan_file))
    assert code == 0, err
    copied = out_dir / "local" / "tiny" / "tiny-Q8_0.gguf"
    assert copied.read_bytes() == (model_dir / "tiny-Q8_0.gguf").read_bytes()
    assert "copied: 1 file(s) from the local model directory" in out


def test_a_plan_whose_directory_is_gone_is_refused_naming_it(capsys, model_dir, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "plan", str(model_dir), "--download-root", str(out_dir), "--json")
    assert code == 0, err
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(out)
    moved = model_dir.rename(tmp_path / "moved")
    code, out, err = run(capsys, "download", "--plan", str(plan_file))
    assert code == 2, (out, err)
    assert f"from the local directory '{model_dir.resolve()}', which is not a directory any more" in err
    assert "re-plan from where the model is now" in err
    assert not out_dir.exists() and moved.is_dir()


def test_a_hub_plan_has_no_source_dir(capsys):
    code, out, err = run(capsys, "plan", "--json")
    assert code == 0, err
    assert all("source_dir" not in item for item in json.loads(out)["download"]["items"])


def test_inspect_a_directory_reads_its_gguf(capsys, model_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = run(capsys, "inspect", str(model_dir))
    assert code == 0
    assert f"source             {model_dir / 'tiny-Q8_0.gguf'}" in out


def test_a_symlink_leaving_the_directory_is_refused(model_dir, tmp_path):
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"not yours")
    (model_dir / "model.safetensors").symlink_to(secret)
    with pytest.raises(InvalidListingError) as err:
        LocalDirSource(model_dir, repo_id="local/tiny").fetch("local/tiny")
    assert str(err.value) == (
        f"Refusing 'model.safetensors' in {model_dir}: it is a symlink to {secret}, outside the model directory. "
        "A model directory may link only to files inside it (or, for a huggingface_hub cache snapshot, to that "
        "repo's blobs/). Copy the file in, or remove the link."
    )


def test_a_symlinked_folder_leaving_the_directory_is_refused(model_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (model_dir / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidListingError, match=r"it is a symlink to .*elsewhere, outside the model directory"):
        LocalDirSource(model_dir, repo_id="local/tiny").fetch("local/tiny")


def test_links_inside_the_directory_and_into_a_cache_snapshots_blobs_are_fine(tmp_path):
    repo = tmp_path / "models--me--tiny"
    blobs, snap = repo / "blobs", repo / "snapshots" / ("a" * 40)
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    _gguf(blobs / "0123abcd")
    (snap / "tiny-Q8_0.gguf").symlink_to(Path("../../blobs/0123abcd"))
    (snap / "copy.gguf").symlink_to(snap / "tiny-Q8_0.gguf")
    listing = LocalDirSource(snap, repo_id="local/tiny").fetch("local/tiny")
    assert listing.paths == ("copy.gguf", "tiny-Q8_0.gguf")


def test_a_fifo_is_refused_without_opening_it(model_dir):
    os.mkfifo(model_dir / "x.gguf")
    with pytest.raises(InvalidListingError) as err:
        LocalDirSource(model_dir, repo_id="local/tiny").fetch("local/tiny")
    assert str(err.value) == (
        f"Refusing 'x.gguf' in {model_dir}: it is a FIFO (named pipe), not a regular file, so reading it could "
        "block or read a device. Remove it from the model directory."
    )
    with pytest.raises(GGUFHeaderError) as header_err:
        read_header(model_dir / "x.gguf")
    assert header_err.value.problem == "it is a FIFO, device or socket, not a regular file; name a .gguf file"


def test_the_cli_never_hangs_on_a_fifo(model_dir):
    os.mkfifo(model_dir / "x.gguf")
    for argv in (["inspect", str(model_dir / "x.gguf")], ["plan", str(model_dir)]):
        proc = subprocess.run(
            [sys.executable, "-m", "modelformats", *argv], capture_output=True, text=True, timeout=30, check=False
        )
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_a_device_is_refused(tmp_path):
    with pytest.raises(GGUFHeaderError, match="not a regular file"):
        read_header("/dev/zero")


def test_control_characters_in_names_are_escaped_in_human_output(capsys, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    _gguf(folder / "ti\nny\x1b[2J-Q8_0.gguf")
    code, out, err = run(capsys, "plan", str(folder))
    assert code == 0, err
    assert "\x1b" not in out
    assert "ti\\nny\\x1b[2J-Q8_0.gguf" in out
    # No output line was forged by the newline in the name.
    assert not any(line.startswith("ny") for line in out.splitlines())
    code, out, _ = run(capsys, "inspect", str(folder))
    assert code == 0 and "\x1b" not in out


def test_control_characters_in_error_messages_are_escaped(capsys, tmp_path):
    code, _, err = run(capsys, "plan", f"{tmp_path}/a\x1b[2Jb")
    assert code == 2 and "\x1b" not in err and "\\x1b[2J" in err
