"""Issue 13's proof that strategies are pluggable for real: a format defined outside the package
(tests/thirdparty/mf_quark_format.py), registered only through the `modelformats.formats` entry
point of a real dist-info on sys.path, plans and serves with nothing inside src/modelformats
naming it. `nox -s vllm_compat` parses the same argv shape with vLLM's own parser
(tools/vllm_compat/cases.py, case `quark-plugin-format`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import modelformats
from modelformats import FormatRegistry, PlanOptions
from modelformats.engines.vllm import PROFILES
from modelformats.listing import load_listing
from modelformats.planner import plan
from modelformats.registry import builtin_formats
from modelformats.sources.recorded import RecordedSource

HERE = Path(__file__).parent
THIRDPARTY = HERE / "thirdparty"
LISTING = HERE / "data" / "thirdparty" / "example__Llama-3.1-8B-Instruct-Quark.json"
REPO = "example/Llama-3.1-8B-Instruct-Quark"
SRC = Path(modelformats.__file__).parent


def _install_dist_info(root: Path) -> Path:
    """What `pip install` of a package advertising the format leaves on sys.path: a dist-info."""
    dist = root / "mf_quark_format-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mf-quark-format\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelformats.formats]\nquark = mf_quark_format:QuarkFormat\n")
    return root


@pytest.fixture
def registry(tmp_path, monkeypatch) -> FormatRegistry:
    monkeypatch.syspath_prepend(str(THIRDPARTY))
    monkeypatch.syspath_prepend(str(_install_dist_info(tmp_path)))
    registry = FormatRegistry(builtin_formats())
    assert registry.load_entry_points() == ["quark"]
    yield registry
    sys.modules.pop("mf_quark_format", None)


def test_an_entry_point_format_gets_a_vllm_plan_with_its_quantization(registry):
    source = RecordedSource([load_listing(LISTING)])
    p = plan(REPO, source=source, registry=registry, options=PlanOptions(engine="vllm"))
    assert (p.format, p.quantization) == ("quark", "quark")
    assert p.detection.rule == "'quark' has the highest priority among ['quark', 'safetensors']"
    argv = p.engine.argv
    assert argv[:5] == ("vllm", "serve", f"/models/{REPO}", "--quantization", "quark")
    assert p.engine.verdict.level.value == "engine-native"
    evidence = p.engine.verdict.evidence
    assert "checkpoint quantization 'quark', named by --quantization, which vLLM checks against config.json" in evidence
    # The strategy's floor reaches the GPU policy (vLLM's QuarkConfig.get_min_capability() = 70).
    assert any(re.search(r"compute capability \d+\.\d >= 7\.0\.$", line) for line in p.explanation)


def test_the_same_repo_without_the_plugin_is_plain_safetensors():
    source = RecordedSource([load_listing(LISTING)])
    p = plan(REPO, source=source, registry=FormatRegistry(builtin_formats()), options=PlanOptions(engine="vllm"))
    assert (p.format, p.quantization) == ("safetensors", "quark")
    assert "--quantization" not in p.engine.argv


def test_the_cli_finds_the_format_through_the_installed_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_install_dist_info(tmp_path)), str(THIRDPARTY)])}
    out = subprocess.run(
        [sys.executable, "-m", "modelformats", "plan", "--listing", str(LISTING), REPO, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    data = json.loads(out)
    assert data["format"] == "quark"
    assert data["vllm"]["argv"][3:5] == ["--quantization", "quark"]


def test_the_format_passes_the_contract(registry):
    from contract import FormatContract

    fmt = registry.formats["quark"]
    quark = load_listing(LISTING)
    vicuna = load_listing(HERE / "data" / "listings" / "lmsys__vicuna-7b-v1.5.json")
    contract = type("QuarkContract", (FormatContract,), {"fmt": fmt, "claims": (quark,), "rejects": (vicuna,)})()
    contract.test_registers_in_a_fresh_registry()
    contract.test_protocol_members()
    contract.test_serving_facts()
    contract.test_claims()
    contract.test_rejects()
    contract.test_selection_is_exact_safe_and_pattern_matched()


def test_quark_is_a_method_of_every_verified_vllm():
    assert all("quark" in profile.quantization_methods for profile in PROFILES)


def test_no_file_inside_the_package_names_the_format():
    """The only mentions allowed are vLLM's own method lists: copied from the wheels into the profiles, and
    recorded by the engine probe (engines/data/)."""
    methods = {m for profile in PROFILES for m in profile.quantization_methods}
    offenders = []
    for path in sorted(SRC.rglob("*")):
        if not path.is_file() or path.suffix not in {".py", ".json", ".md", ".txt", ".toml"}:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if "quark" not in line.lower():
                continue
            words = re.findall(r"[\w-]+", line.replace('"""', " "))
            if path.name == "vllm_profiles.py" and words and set(words) <= methods | {"quantization_methods", "_words"}:
                continue
            if path.parent.name == "data" and line.strip() == '"quark",':
                continue
            offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []
