"""`modelformats download --plan` of a converted route: fetch the GGUF (and the base config/tokenizer) from a
local HTTP server standing in for the Hub, then convert it into the directory the plan's vLLM command serves.

The plan is made by the planner itself (HubSource against the same server: it reads the GGUF's header there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hubserver import FakeRepo, HubServer, serve_hub
from modelformats.cli import main
from modelformats.download import download
from modelformats.errors import ConversionError, UnsafePathError
from modelformats.planner import PlanOptions, plan
from modelformats.sources.hub import HubSource
from test_convert import EXPERTS, HIDDEN, KV_HEADS, LAYERS, VOCAB, _base, _hf_tensors, _load_dir, _write_gguf

GGUF_REPO, BASE_REPO = "me/Tiny-GGUF", "me/Tiny"


pytestmark = pytest.mark.usefixtures("hub_home")


def _repos(tmp: Path, *, experts: int = 0, base: bool = True) -> tuple[list[FakeRepo], dict[str, np.ndarray]]:
    hf = _hf_tensors(experts, np.random.default_rng(0))
    gguf_file = tmp / "tiny.gguf"
    _write_gguf(gguf_file, hf, experts=experts)
    folder = _base(tmp, experts=experts)
    config = json.loads((folder / "config.json").read_text()) | {"torch_dtype": "float32"}
    repos = [
        FakeRepo(
            repo_id=GGUF_REPO,
            files={"tiny-F32.gguf": gguf_file.read_bytes(), "README.md": b"# tiny"},
            card_data={"base_model": BASE_REPO} if base else None,
        )
    ]
    if base:
        # The base repo holds config and tokenizer but no weights: no native route, so the GGUF is converted.
        files = {"config.json": json.dumps(config).encode(), "tokenizer.json": b"{}"}
        repos.append(FakeRepo(repo_id=BASE_REPO, files=files))
    return repos, hf


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with serve_hub() as server:
        yield server


def _plan(hub: HubServer, root: Path):
    options = PlanOptions(format="native", download_root=str(root))
    return plan(GGUF_REPO, source=HubSource(endpoint=hub.url), options=options)


@pytest.mark.parametrize("experts", [0, EXPERTS])
def test_download_fetches_then_converts_into_the_directory_vllm_serves(tmp_path, hub, experts):
    repos, hf = _repos(tmp_path, experts=experts)
    for repo in repos:
        hub.repos[repo.repo_id] = repo
    root = tmp_path / "models"
    p = _plan(hub, root)
    (step,) = p.converts
    assert p.engine.argv[:3] == ("vllm", "serve", step.output)
    assert step.base == f"{root}/{BASE_REPO}"
    lines: list[str] = []
    report = download(p.to_dict(), endpoint=hub.url, progress=lines.append)
    assert report.converts == report.converted == (step.output,)
    out = Path(step.output)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["MixtralForCausalLM" if experts else "LlamaForCausalLM"]
    assert config["hidden_size"] == HIDDEN and config["num_key_value_heads"] == KV_HEADS
    assert (out / "tokenizer.json").read_text() == "{}"  # the base's tokenizer, as the plan said
    converted = _load_dir(out)
    assert set(converted) == set(hf)
    # bfloat16 keeps 8 significant bits: every value within its rounding of the original (Q/K un-permuted).
    assert all(np.allclose(converted[name], hf[name], rtol=2**-8, atol=0) for name in hf)
    assert any(line.startswith(f"converting {root}/{GGUF_REPO}/tiny-F32.gguf -> {out}") for line in lines)
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    assert (root / GGUF_REPO / "plan.json").is_file()
    # A second run keeps the converted directory (written whole, then renamed) and converts nothing.
    again = download(p.to_dict(), endpoint=hub.url)
    assert again.converted == ()
    assert "already converted GGUF -> " in again.render()


def test_without_base_files_the_step_falls_back_to_the_gguf_and_names_its_needs(tmp_path, hub):
    repos, _ = _repos(tmp_path, base=False)
    hub.repos[GGUF_REPO] = repos[0]
    root = tmp_path / "models"
    p = _plan(hub, root)
    (step,) = p.converts
    assert step.base is None
    assert any(w.startswith("The conversion has no base model's config.json") for w in p.warnings)


def test_dry_run_names_the_conversion(tmp_path, hub, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the pytest path is long; here the content matters, not the width
    repos, _ = _repos(tmp_path)
    for repo in repos:
        hub.repos[repo.repo_id] = repo
    root = tmp_path / "models"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(_plan(hub, root).to_dict()))
    assert main(["download", "--plan", str(plan_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"convert GGUF -> {root}/{GGUF_REPO}/converted-F32-bfloat16" in out


def _hand_plan(root: Path, gguf: Path, output: Path) -> dict:
    return {
        "schema": "modelformats-plan/1",
        "repo_id": GGUF_REPO,
        "download": {
            "root": str(root),
            "items": [],
            "converts": [{"gguf": str(gguf), "output": str(output), "dtype": "bfloat16", "base": None}],
        },
    }


def test_an_architecture_convert_refuses_is_a_clear_error(tmp_path):
    import gguf

    root = tmp_path / "models"
    root.mkdir()
    path = root / "other.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_block_count(LAYERS)
    writer.add_tensor("token_embd.weight", np.zeros((VOCAB, HIDDEN), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConversionError) as exc:
        download(_hand_plan(root, path, root / "out"), endpoint="http://127.0.0.1:9")
    assert str(exc.value).startswith(f"Cannot convert {path}: GGUF architecture 'gemma3' has no conversion layout")
    assert "Fix: serve this GGUF with llama.cpp" in str(exc.value)
    assert not (root / "out").exists()


def test_a_conversion_outside_the_root_is_refused(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    with pytest.raises(UnsafePathError):
        download(_hand_plan(root, root / "x.gguf", tmp_path / "elsewhere"), dry_run=True)
