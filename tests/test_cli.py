"""The `modelformats` command: the README's offline default, JSON shape, errors without tracebacks,
and `record` against a real local Hub server (huggingface_hub + our GGUF header reader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from hubserver import FakeRepo, serve_hub
from modelformats.cli import main
from modelformats.listing import load_listing

TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_offline_default_plan_prints_the_target(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "plan")
    assert code == 0, err
    assert out.startswith("DavidAU/Llama-3.2-8X3B-MOE-Da…nsored-abliterated-18.4B-GGUF (mixtral MoE, 18.4B)\n")
    assert "\ngpu     1 x H100 @ 0.75, $3.95/h; needs 46.7 of 63.7 GB (73 %)\n" in out
    assert f"--served-model-name {TARGET[:50]}\\\n{TARGET[50:]} \\\n" in out
    code, out, err = run(capsys, "plan", "--explain")
    assert code == 0, err
    assert out.startswith(f"{TARGET[:61]}\n{TARGET[61:]} (mixtral MoE, 18.4B)\n")
    assert "\nlimits  max_model_len 4096, max_num_seqs 4\n" in out


def test_json_has_the_documented_keys(capsys):
    code, out, _ = run(capsys, "plan", "--format", "gguf", "--json")
    assert code == 0
    plan = json.loads(out)
    assert {"repo_id", "format", "files", "tokenizer", "download_bytes", "vllm", "gpu", "explanation"} <= set(plan)
    assert plan["files"] == ["L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf"]
    assert plan["tokenizer"]["repo_id"] == TARGET.removesuffix("-GGUF")
    assert {"name", "count", "gpu_memory_utilization"} <= set(plan["gpu"])
    assert plan["vllm"] is None and plan["engine"]["name"] == "llamacpp"


def test_the_module_runs_as_a_program():
    done = subprocess.run(
        [sys.executable, "-m", "modelformats", "plan", "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["vllm"]["argv"][:2] == ["vllm", "serve"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "not-a-repo-id"], "error: Invalid repo id 'not-a-repo-id': a model repo id has exactly one '/'"),
        (["plan", "--listing", "/nonexistent/x.json"], "error: Listing file '/nonexistent/x.json' does not exist."),
        (["plan", "--quant", "Q3_K_XL", "--format", "gguf"], "error: No GGUF file matches quant Q3_K_XL in"),
        (["plan", "--gpu", "V100"], "error: Unknown GPU type 'V100'; Modal offers: T4, L4, A10, L40S"),
        (["plan", "--vllm-version", "0.11.0"], "error: vllm 0.11.0 has no verified profile; verified: 0.23.0, 0.33.0"),
        (["plan", "--download-root", "models"], "error: --download-root 'models' must be an absolute path"),
    ],
)
def test_user_errors_exit_2_without_traceback(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(message), err
    assert "Traceback" not in err


def test_malformed_listing_reports_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "x", "repo_id": 3, "files": "nope"}))
    code, _, err = run(capsys, "plan", "--listing", str(bad))
    assert code == 2
    assert err.splitlines()[0] == f"error: {bad}: 3 problems in listing:"
    assert f"  - {bad}: field 'files' must be a list of {{path, size, size_exact}} objects, got str" in err


def test_download_dry_run_lists_exactly_the_plan(tmp_path, capsys):
    code, out, err = run(capsys, "download", "--format", "gguf", "--dir", str(tmp_path), "--dry-run")
    assert code == 0, err
    assert "L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf" in out
    assert "Q6_k" not in out and "Q4_k_m" not in out
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_gpus_lists_the_catalogue(capsys):
    code, out, _ = run(capsys, "gpus")
    assert code == 0
    for name in ("T4", "L4", "A10", "L40S", "A100-40GB", "A100-80GB", "RTX-PRO-6000", "H100", "H200", "B200", "B300"):
        assert name in out


def _tiny_moe_gguf(path: Path) -> bytes:
    """A real GGUF in the target's layout: `llama` with 4 experts (2 used)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(2)
    w.add_context_length(8192)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_expert_count(4)
    w.add_expert_used_count(2)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}" for i in range(32)])
    w.add_tensor("token_embd.weight", np.zeros((32, 64), dtype=np.float32))
    for b in range(2):
        # 4 MiB per block, so the file is far larger than the header the reader fetches.
        w.add_tensor(f"blk.{b}.ffn_gate_exps.weight", np.zeros((4, 1024, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def test_record_reads_the_tree_and_one_gguf_header(tmp_path, capsys):
    data = _tiny_moe_gguf(tmp_path / "m.gguf")
    repo = FakeRepo(
        repo_id="me/Tiny-MoE-GGUF",
        files={"tiny-moe-F32.gguf": data, "README.md": b"# tiny"},
        card_data={"base_model": "me/Tiny-MoE"},
    )
    out_file = tmp_path / "rec.json"
    with serve_hub(repo) as hub:
        code, out, err = run(capsys, "record", "me/Tiny-MoE-GGUF", "-o", str(out_file), "--endpoint", hub.url)
    assert code == 0, err
    assert out == f"recorded me/Tiny-MoE-GGUF@{repo.sha} (2 files) to {out_file}\n"
    listing = load_listing(out_file)
    assert listing.base_models == ("me/Tiny-MoE",)
    header = listing.gguf_headers["tiny-moe-F32.gguf"]
    assert header["metadata"]["general.architecture"] == "llama"
    assert header["metadata"]["llama.expert_count"] == 4
    # Only the header was read: far fewer bytes than the file.
    assert 0 < hub.bytes_served("tiny-moe-F32.gguf") < len(data)


def test_download_a_written_plan_as_it_is(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the pytest path is long; here the content matters, not the width
    root = tmp_path / "models"
    code, out, _ = run(capsys, "plan", "--format", "gguf", "--download-root", str(root), "--json")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(out)
    code, out, err = run(capsys, "download", "--plan", str(plan_file), "--dry-run")
    assert code == 0, err
    assert f"would fetch 2 file(s), 19.56 GB (estimated), into {root}\n" in out
    assert "L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf" in out
    code, _, err = run(capsys, "download", "--plan", str(plan_file), "--dir", str(tmp_path / "other"), "--dry-run")
    assert code == 2
    assert err.startswith(f"error: --dir '{tmp_path / 'other'}' is not the plan's download root '{root}'")


def test_download_needs_a_directory(capsys):
    code, _, err = run(capsys, "download", "--dry-run")
    assert (code, err) == (2, "error: download needs --dir DIR (where the files go), or --plan FILE.\n")


def test_an_empty_listing_folder_is_named(tmp_path, capsys):
    code, _, err = run(capsys, "plan", "--listing", str(tmp_path))
    assert code == 2
    assert err == (
        f"error: --listing {tmp_path} holds no *.json listing; pass a listing file or a folder of them "
        "(e.g. tests/data/listings).\n"
    )
