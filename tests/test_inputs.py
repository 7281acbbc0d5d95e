"""Bad input never ends in a traceback, a hang or a silently ignored flag: every case of issue 15's
"Flags and plans" list exits 2 with one message naming the value and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubserver import FakeRepo, serve_hub
from modelformats.cli import main
from modelformats.download import download
from modelformats.errors import LocalFileError
from modelformats.planner import PlanOptions, plan

TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"
QUANTS = "Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, IQ4_XS, Q3_K_S, Q2_K"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--quant", "NOPE"],
            "error: --quant 'NOPE' is not a GGUF quant name: not in gguf 0.19.0's GGMLQuantizationType / "
            "LlamaFileType (with an optional UD-/i1- prefix or _L/_XL suffix). Use a name such as Q8_0, Q4_K_M, "
            "IQ4_XS or UD-Q4_K_XL.\n",
        ),
        (
            ["--quant", "Q3_K_M"],
            f"error: No GGUF file matches quant Q3_K_M in {TARGET!r} (exact match on the quant name, "
            f"case-insensitive); available: {QUANTS}. Pass --quant or --quant-order.\n",
        ),
        (
            ["--quant", "Q3_K_M", "--engine", "vllm"],
            f"error: No GGUF file matches quant Q3_K_M in {TARGET!r} (exact match on the quant name, "
            f"case-insensitive); available: {QUANTS}. Pass --quant or --quant-order.\n",
        ),
        (
            ["--quant", "Q3_K_M", "--format", "native"],
            "error: --quant Q3_K_M picks a GGUF file, but --format native serves the base model's own weights. "
            "Drop --quant, or use --format gguf (or auto).\n",
        ),
        (["--gpu", "H100:0"], "error: GPU count '0' in 'H100:0' must be a positive integer; write e.g. 'H100:2'.\n"),
        (["--gpu", "H100:-1"], "error: GPU count '-1' in 'H100:-1' must be a positive integer; write e.g. 'H100:2'.\n"),
        (
            ["--gpu", "H100:2:3"],
            "error: GPU 'H100:2:3' is not of the form TYPE or TYPE:COUNT (Modal's gpu= syntax), e.g. 'H100:2'.\n",
        ),
        (
            ["--gpu", "H100:999"],
            "error: GPU 'H100:999' asks for 999 x H100; one Modal container takes at most 8. Use 'H100:8' or a "
            "larger GPU type.\n",
        ),
        (
            ["--gpu", "H100:0", "--quant", "NOPE"],
            "error: Invalid options:\n"
            "  - GPU count '0' in 'H100:0' must be a positive integer; write e.g. 'H100:2'.\n"
            "  - --quant 'NOPE' is not a GGUF quant name: not in gguf 0.19.0's GGMLQuantizationType / "
            "LlamaFileType (with an optional UD-/i1- prefix or _L/_XL suffix). Use a name such as Q8_0, Q4_K_M, "
            "IQ4_XS or UD-Q4_K_XL.\n",
        ),
    ],
)
def test_argument_errors_are_said_once_before_any_route(capsys, argv, message):
    code, out, err = run(capsys, "plan", *argv)
    assert (code, out, err) == (2, "", message)


def test_an_explicit_quant_that_exists_is_what_the_plan_serves():
    """Before: --quant Q4_K_M silently planned the base model's safetensors; now the route serving it wins."""
    result = plan(None, options=PlanOptions(quant="q4_k_m"))
    assert (result.format, result.quant) == ("gguf", "Q4_K_M")


def test_a_quant_on_a_repo_without_gguf_files_is_an_error(capsys):
    code, _, err = run(
        capsys, "plan", "--listing", "tests/data/listings/lmsys__vicuna-7b-v1.5.json", "--quant", "Q4_K_M"
    )
    assert (code, err) == (
        2,
        "error: --quant Q4_K_M picks a GGUF file, and 'lmsys/vicuna-7b-v1.5' has none. Drop --quant, or plan a "
        "GGUF repo.\n",
    )


def test_no_useless_advice_when_the_options_are_already_auto():
    from modelformats.errors import EngineCannotLoadError

    with pytest.raises(EngineCannotLoadError) as err:
        plan(None, options=PlanOptions(gpu="T4"))
    assert str(err.value).endswith("\nNo engine and format combination loads it.")
    assert "Try --engine auto --format auto." not in str(err.value)
    with pytest.raises(EngineCannotLoadError) as err:
        plan(None, options=PlanOptions(gpu="T4", engine="vllm"))
    assert str(err.value).endswith("\nTry --engine auto --format auto.")


def _whole_plan(tmp_path: Path) -> dict[str, object]:
    return plan(None, options=PlanOptions(download_root=str(tmp_path / "models"))).to_dict()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: [], "holds a JSON array, not a modelformats plan (a JSON object)"),
        (lambda d: "x", "holds a JSON string, not a modelformats plan (a JSON object)"),
        (lambda d: {**d, "gpu": "H100"}, ": 'gpu' must be an object or null, got 'H100'"),
        (lambda d: {**d, "engine": None}, ": 'engine' must be an object, got None"),
        (lambda d: {**d, "download": "x"}, ": 'download' must be an object or null, got 'x'"),
    ],
)
def test_bad_plan_files_are_refused_with_a_message(capsys, tmp_path, edit, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(edit(_whole_plan(tmp_path))))
    code, _, err = run(capsys, "download", "--plan", str(path), "--dry-run")
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert "write a plan with `modelformats plan ... --json > plan.json`" in err


def test_a_plan_item_with_a_path_like_repo_id_is_refused(capsys, tmp_path):
    whole = _whole_plan(tmp_path)
    whole["download"]["items"][0]["repo_id"] = "../../x"  # type: ignore[index]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(whole))
    code, _, err = run(capsys, "download", "--plan", str(path), "--dry-run")
    assert (code, err) == (
        2,
        "error: The plan's download.items[0].repo_id: Invalid repo id '../../x': a model repo id has exactly one "
        "'/' (owner/name). Use the form 'owner/name', e.g. 'Qwen/Qwen2.5-7B'.\n",
    )


def test_record_into_a_missing_directory_fails_before_asking_the_hub(capsys):
    code, _, err = run(capsys, "record", "me/x", "-o", "/nonexistent/x.json", "--endpoint", "http://127.0.0.1:9")
    assert (code, err) == (
        2,
        "error: Could not write the listing to /nonexistent/x.json: No such file or directory; a directory on the "
        "way does not exist. Create it, or fix the path.\n",
    )


@pytest.mark.parametrize("argv", [["plan", "--json"], ["plan"], ["gpus"], ["gpus", "--json"]])
def test_a_full_disk_on_stdout_is_a_message_not_a_traceback(argv):
    with Path("/dev/full").open("w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "modelformats", *argv], stdout=full, stderr=subprocess.PIPE, text=True, check=False
        )
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: Could not write the output to standard output: No space left on device; the disk (or your quota) "
        "is full. Free space on that file system, or choose another directory.\n"
    )


def test_a_file_name_too_long_for_the_file_system_is_not_a_full_disk(tmp_path):
    name = "x" * 300 + ".json"
    repo = FakeRepo(repo_id="me/Long", files={name: b"{}"})
    with serve_hub(repo) as hub:
        root = tmp_path / "models"
        item = {
            "repo_id": "me/Long",
            "revision": None,
            "files": [name],
            "allow_patterns": [name],
            "local_dir": str(root / "me" / "Long"),
            "bytes": 2,
            "bytes_estimated": False,
        }
        with pytest.raises(LocalFileError) as err:
            download({"repo_id": "me/Long", "download": {"root": str(root), "items": [item]}}, endpoint=hub.url)
    text = str(err.value)
    assert "File name too long; a name is too long for this file system (305 bytes in 'xxxx" in text
    assert "most file systems allow 255" in text
    assert "free" not in text.lower()


def _gguf(path: Path, *, file_type: int | None = None) -> None:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(2048)
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_tensor("token_embd.weight", np.ones((50, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_a_gguf_whose_header_contradicts_its_name_plans_with_the_headers_quant(tmp_path):
    import gguf

    from modelformats.sources.local import LocalDirSource

    folder = tmp_path / "repo"
    folder.mkdir()
    _gguf(folder / "tiny-Q8_0.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    source = LocalDirSource(folder, repo_id="me/Tiny-GGUF")
    result = plan("me/Tiny-GGUF", source=source, options=PlanOptions(engine="llamacpp"))
    assert result.quant == "Q4_K_M"
    assert result.warnings[0] == (
        "tiny-Q8_0.gguf is named Q8_0, but its GGUF header says general.file_type = Q4_K_M; the plan uses the "
        "header's Q4_K_M. Report the mislabelled file to the repo."
    )
