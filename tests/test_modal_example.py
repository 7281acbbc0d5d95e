"""The Modal example, imported offline (no token, no network): its functions are what the plan says.

`modal` builds images, volumes, secrets and decorators lazily, and `Function.info()` is filled
locally (docs/modal.md), so these tests check the real Modal objects the example declares.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modelformats.planner import PlanOptions
from modelformats.planner import plan as make_plan

modal = pytest.importorskip("modal")

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "modal_vllm" / "app.py"
MIDDLEWARE = ("--middleware", "modelformats_serve_auth.BearerAuth")


def _write_plan(directory: Path, name: str, **options: str) -> Path:
    """A plan from the real planner (the offline default, the target), as `modelformats plan --json` writes it."""
    path = directory / name
    path.write_text(json.dumps(make_plan(None, options=PlanOptions(**options)).to_dict()))
    return path


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    d = tmp_path_factory.mktemp("plans")
    return {
        "vllm": _write_plan(d, "target-native-vllm.json"),
        "llamacpp": _write_plan(d, "target-gguf-llamacpp.json", format="gguf"),
        "plugin": _write_plan(d, "target-gguf-vllm-plugin.json", format="gguf", engine="vllm"),
    }


@pytest.fixture
def offline(monkeypatch):
    """No Modal token and no network: any connection attempt fails the test."""
    for name in (
        "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODELFORMATS_PLAN_JSON", "MODELFORMATS_HF_SECRET",
        "MODELFORMATS_AUTH", "MODELFORMATS_API_KEY_SECRET", "MODELFORMATS_API_KEY",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"the example touched the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return monkeypatch


_counter = iter(range(10**6))


def import_app(monkeypatch, plan_path: Path | None):
    if plan_path is None:
        monkeypatch.delenv("MODELFORMATS_PLAN", raising=False)
    else:
        monkeypatch.setenv("MODELFORMATS_PLAN", str(plan_path))
    spec = importlib.util.spec_from_file_location(f"modal_example_{next(_counter)}", APP)
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules, as for any imported module.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def webhook(function):
    # Port and web startup timeout are not in FunctionInfo (modal 1.6.4); they live on the
    # function's webhook config, reachable through modal's synchronizer.
    return modal._utils.async_utils.synchronizer._translate_in(function)._webhook_config


def volume_names(info) -> dict[str, str]:
    return {path: mount.name for path, mount in info.volumes.items()}


def test_vllm_plan_becomes_the_serve_function(offline, plans):
    plan = json.loads(plans["vllm"].read_text())
    app = import_app(offline, plans["vllm"])
    assert tuple(plan["engine"]["argv"]) == app.SERVE_ARGV
    info = app.serve.info()
    assert info.gpus == [("H100", 1)]
    assert volume_names(info) == {
        "/models": "modelformats-models",
        "/root/.cache/huggingface": "huggingface-cache",
        "/root/.cache/vllm": "vllm-cache",
    }
    # 36.8 GB: download 600 s + 36.8e9 / 50 MB/s = 1336 s; engine start 600 s + 36.8e9 / 200 MB/s = 784 s.
    assert (app.SPEC.download_timeout, app.SPEC.web_startup_timeout) == (1336, 784)
    assert info.timeout == 784 + 600
    # The MoE rule's max_num_seqs: as many inputs as the engine runs at once.
    assert (info.concurrency_info.max_inputs, info.concurrency_info.target_inputs) == (4, None)
    assert info.web_info.unauthenticated is True
    hook = webhook(app.serve)
    assert (hook.web_server_port, hook.web_server_startup_timeout) == (plan["port"], 784)
    # Auth is on by default: the engine's key comes from a Modal Secret. Function env shows up as an
    # anonymous secret holding these names.
    assert info.secrets == [
        "modal.Secret.from_name('modelformats-api-key')",
        "Secret.from_dict([MODELFORMATS_PLAN_JSON, MODELFORMATS_HF_SECRET, MODELFORMATS_AUTH, "
        "MODELFORMATS_API_KEY_SECRET, HF_HUB_OFFLINE])",
    ]
    assert (app.SPEC.nodes, app.SPEC.auth, app.SPEC.head_args, app.SPEC.worker_args) == (1, "api-key", (), ())
    assert info.cluster_info is None  # one node: a plain web function, not a Modal cluster
    assert app.SPEC.base_image == "nvidia/cuda:12.9.0-devel-ubuntu22.04"
    assert app.SPEC.requirements == ("vllm==0.33.0", "torch==2.14.0", "transformers==5.20.2", "huggingface_hub==2.4.0")
    env = {"HF_XET_HIGH_PERFORMANCE": "1", **plan["engine"]["env"], "PYTHONPATH": "/opt/modelformats_serve"}
    assert app.SPEC.image_env == env
    assert app.SPEC.project_requirements == ()
    assert app.SPEC.health_timeout == 784 + 300


def test_download_function_mounts_the_plan_root_and_has_no_gpu(offline, plans):
    app = import_app(offline, plans["vllm"])
    info = app.download_weights.info()
    assert info.gpus == []
    assert (info.cpu, info.memory_mib) == (4.0, 16384)
    assert volume_names(info) == {
        "/models": "modelformats-models",
        "/root/.cache/huggingface": "huggingface-cache",
    }
    assert info.timeout == 1336
    assert info.web_info is None
    # The serving env turns the Hub off; the download env must not. The endpoint's key is not its business.
    assert info.secrets == [
        "Secret.from_dict([MODELFORMATS_PLAN_JSON, MODELFORMATS_HF_SECRET, MODELFORMATS_AUTH, "
        "MODELFORMATS_API_KEY_SECRET])"
    ]


def test_llamacpp_plan_serves_llama_server_from_its_image(offline, plans):
    plan = json.loads(plans["llamacpp"].read_text())
    app = import_app(offline, plans["llamacpp"])
    assert app.SERVE_ARGV[0] == "/app/llama-server"
    assert tuple(plan["engine"]["argv"]) == app.SERVE_ARGV
    info = app.serve.info()
    assert info.gpus == [("H100", 1)]  # the user's MoE rule
    # 19.55 GB: engine start 600 + 97.75 -> 697 s; download 600 + 391 -> 991 s.
    assert (app.SPEC.web_startup_timeout, app.SPEC.download_timeout) == (697, 991)
    assert info.timeout == 697 + 600
    assert info.concurrency_info.max_inputs == 4
    assert webhook(app.serve).web_server_port == 8000
    assert app.SPEC.base_image == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11312"
    assert app.SPEC.requirements == ()
    assert app.SPEC.image_env == {
        "HF_XET_HIGH_PERFORMANCE": "1",
        "PATH": "/app:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": "/app:/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
    }


def test_the_containers_get_the_same_plan_inline(offline, plans):
    app = import_app(offline, plans["llamacpp"])
    inline = app._FUNCTION_ENV["MODELFORMATS_PLAN_JSON"]
    offline.setenv("MODELFORMATS_PLAN_JSON", inline)
    offline.setenv("MODELFORMATS_PLAN", "/nonexistent/plan.json")
    again = import_app(offline, Path("/nonexistent/plan.json"))
    assert again.PLAN == app.PLAN
    assert dataclasses.asdict(again.SPEC) == dataclasses.asdict(app.SPEC)


def test_an_optional_huggingface_secret(offline, plans):
    offline.setenv("MODELFORMATS_HF_SECRET", "huggingface-secret")
    app = import_app(offline, plans["vllm"])
    assert "modal.Secret.from_name('huggingface-secret')" in app.serve.info().secrets
    assert "modal.Secret.from_name('huggingface-secret')" in app.download_weights.info().secrets


def test_the_documented_entrypoint_exists(offline, plans):
    app = import_app(offline, plans["vllm"])
    assert isinstance(app.test_gguf_model, modal.app.LocalEntrypoint)
    assert isinstance(app.app, modal.App) and app.app.name == "modelformats-serve"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"gpu": None},
            "The plan for 'owner/name' has no GPU (nothing in the catalogue fits its memory estimate). "
            "Re-plan with --gpu TYPE:N or a smaller --quant.",
        ),
        (
            {"gpu": {"name": "H100", "count": 8, "nodes": 2}, "launch": None},
            "The plan needs 2 nodes but carries no multi-node launch facts ('launch'); only vLLM plans run on "
            "several nodes. Re-plan with vLLM, a larger --gpu TYPE:N or a smaller quant (docs/modal.md).",
        ),
        (
            {"engine": {"name": "vllm", "argv": []}},
            "The plan for 'owner/name' has no engine command (engine.argv is empty): no engine can load it. "
            "Read its 'explanation' and pick one of its 'alternatives' with --engine/--format.",
        ),
    ],
)
def test_plans_the_example_cannot_serve_are_refused_with_the_fix(offline, plans, tmp_path, change, message):
    plan = {**json.loads(plans["vllm"].read_text()), "repo_id": "owner/name", **change}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(ValueError) as info:
        import_app(offline, path)
    assert str(info.value) == message


def test_unknown_download_size_gets_generous_bounded_timeouts(offline, plans, tmp_path):
    plan = {**json.loads(plans["vllm"].read_text()), "download_bytes": None}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    app = import_app(offline, path)
    assert (app.SPEC.download_timeout, app.SPEC.web_startup_timeout) == (7200, 7200)


def test_parse_nvidia_smi_csv(offline, plans):
    app = import_app(offline, plans["vllm"])
    # The output of `nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits`.
    assert app.parse_nvidia_smi("61234, 81559\n512, 81559\n") == [(61234.0, 81559.0), (512.0, 81559.0)]


def test_the_default_is_the_planners_offline_plan(offline):
    expected = make_plan(None).to_dict()
    app = import_app(offline, None)
    assert json.loads(json.dumps(expected)) == app.PLAN
    assert tuple(expected["engine"]["argv"]) == app.SERVE_ARGV
    gpu = expected["gpu"]
    assert app.serve.info().gpus == [(gpu["name"], gpu["count"])]


def test_the_plugin_route_installs_modelformats_from_this_checkout(offline, plans):
    # modelformats is not on PyPI: its vLLM plugin (an entry point) is installed from the project itself.
    plan = json.loads(plans["plugin"].read_text())
    assert "modelformats[vllm-plugin]==0.1.0" in plan["engine"]["requirements"]
    app = import_app(offline, plans["plugin"])
    assert app.SPEC.project_requirements == ("modelformats[vllm-plugin]==0.1.0",)
    assert "modelformats[vllm-plugin]==0.1.0" not in app.SPEC.requirements
    assert "vllm-gguf-plugin==0.0.5" in app.SPEC.requirements
    assert app._project_install_command("modelformats[vllm-plugin]==0.1.0") == (
        "python -m pip install --no-deps '/opt/modelformats[vllm-plugin]'"
    )
    assert app.SPEC.image_env["VLLM_PLUGINS"] == "gguf,modelformats"
    assert app.PROJECT_ROOT == ROOT and (ROOT / "pyproject.toml").is_file()


def test_format_and_engine_of_the_default_plan_come_from_the_environment(offline):
    offline.setenv("MODELFORMATS_FORMAT", "gguf")
    app = import_app(offline, None)
    assert app.PLAN["format"] == "gguf" and app.PLAN["engine"]["name"] == "llamacpp"


def test_the_gpu_modifier_reaches_modal(offline, tmp_path):
    # `--gpu 'H100!'` asks Modal not to upgrade to an H200; the plan's Modal string must survive.
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(make_plan(None, options=PlanOptions(gpu="H100!")).to_dict()))
    app = import_app(offline, path)
    assert app.SPEC.gpu == "H100!"


def test_download_requirements_are_the_projects_own_dependencies(offline, plans):
    import tomllib

    from packaging.requirements import Requirement

    app = import_app(offline, plans["vllm"])
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {Requirement(r).name.replace("_", "-") for r in app.DOWNLOAD_REQUIREMENTS} == {
        Requirement(r).name.replace("_", "-") for r in declared
    }


# --- authentication and multi-node (issue 17) -----------------------------------------------------------

SYNTHETIC = ROOT / "tests" / "data" / "synthetic"
HUGE = "example/Huge-MoE-2.5T"  # synthetic: 2.56 TB of bf16 weights, more than one Modal node holds


@pytest.fixture(scope="module")
def two_node_plan(tmp_path_factory):
    from modelformats.sources.recorded import RecordedSource

    plan = make_plan(HUGE, source=RecordedSource.from_paths([SYNTHETIC]))
    assert plan.gpu is not None and plan.gpu.nodes == 2 and plan.launch is not None
    path = tmp_path_factory.mktemp("plans") / "two-node.json"
    path.write_text(json.dumps(plan.to_dict()))
    return path


def test_the_one_node_plan_demands_the_key_on_rank_0(offline, plans):
    app = import_app(offline, plans["vllm"])
    # The key travels in the environment (argv is world-readable in /proc/*/cmdline); vLLM gets the
    # middleware that guards every path but /health, from the file copied onto the image's PYTHONPATH.
    argv = app.node_argv(app.SPEC)
    assert argv == (*app.SERVE_ARGV, *MIDDLEWARE)
    assert "sekret" not in argv and "--api-key" not in argv
    assert app.engine_env(app.SPEC, api_key="sekret") == {"VLLM_API_KEY": "sekret"}
    assert app.SPEC.image_env["PYTHONPATH"] == app.AUTH_DIR_IN_IMAGE
    assert app.AUTH_MODULE.is_file() and app.AUTH_MODULE.stem == "modelformats_serve_auth"
    with pytest.raises(ValueError, match=r"MODELFORMATS_API_KEY is empty.*modal secret create modelformats-api-key"):
        app.engine_env(app.SPEC, api_key=None)
    assert not hasattr(app, "ClusterServer")


def test_auth_off_only_when_asked(offline, plans):
    offline.setenv("MODELFORMATS_AUTH", "none")
    app = import_app(offline, plans["vllm"])
    assert (app.SPEC.auth, app.SPEC.api_key_secret) == ("none", None)
    assert not any("from_name" in s for s in app.serve.info().secrets)
    assert app.node_argv(app.SPEC) == app.SERVE_ARGV
    assert app.engine_env(app.SPEC, api_key="ignored") == {}
    assert "PYTHONPATH" not in app.SPEC.image_env


def test_a_misspelt_auth_mode_is_refused(offline, plans):
    offline.setenv("MODELFORMATS_AUTH", "off")
    with pytest.raises(ValueError, match="MODELFORMATS_AUTH='off' is not one of api-key, none"):
        import_app(offline, plans["vllm"])


def test_a_named_api_key_secret(offline, plans):
    offline.setenv("MODELFORMATS_API_KEY_SECRET", "team-llm-key")
    app = import_app(offline, plans["llamacpp"])
    assert "modal.Secret.from_name('team-llm-key')" in app.serve.info().secrets
    # llama-server reads LLAMA_API_KEY and guards every path but /health itself: no extra arguments.
    assert app.node_argv(app.SPEC) == app.SERVE_ARGV
    assert app.engine_env(app.SPEC, api_key="k") == {"LLAMA_API_KEY": "k"}


def test_a_plan_from_a_local_directory_is_refused(offline, plans, tmp_path):
    plan = json.loads(plans["vllm"].read_text())
    plan["download"]["items"][0]["source_dir"] = "/home/me/models/target"
    path = tmp_path / "local.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(ValueError, match=r"local directory \('/home/me/models/target'\).*Re-plan from the Hub repo"):
        import_app(offline, path)


def test_two_node_plan_becomes_a_clustered_server(offline, two_node_plan):
    plan = json.loads(two_node_plan.read_text())
    app = import_app(offline, two_node_plan)
    assert not hasattr(app, "serve")
    info = app.ClusterServer.info()
    # modal.clustered(size=2, rdma=True): two containers of 8 x B300 each, InfiniBand between them.
    assert (info.cluster_info.size, info.cluster_info.rdma) == (2, True)
    assert info.gpus == [("B300", 8)]
    assert app.SPEC.apt_packages == ("libibverbs1",)
    assert info.port == plan["port"] and info.unauthenticated is True  # the engine checks the key itself
    assert info.secrets[0] == "modal.Secret.from_name('modelformats-api-key')"
    # 2.56 TB: engine start 600 s + 2.56e12 / 200 MB/s, capped at 2 h, plus 10 min for the ranks to meet.
    assert (app.SPEC.web_startup_timeout, info.startup_timeout) == (7200 + 600, 7200 + 600)
    assert app.SPEC.download_timeout == 600 + 51_200  # 2.56e12 B / 50 MB/s from the Hub, within 24 h
    assert app.SPEC.health_timeout == 7800 + 300
    assert volume_names(info)["/models"] == "modelformats-models"


def test_two_node_argv_per_rank(offline, two_node_plan):
    app = import_app(offline, two_node_plan)
    head = app.node_argv(app.SPEC, rank=0, master_addr="10.0.0.1")
    worker = app.node_argv(app.SPEC, rank=1, master_addr="10.0.0.1")
    argv = app.SERVE_ARGV
    assert argv[argv.index("--nnodes") + 1] == "2" and argv.count("--nnodes") == 1
    assert head == (*argv, "--node-rank", "0", "--master-addr", "10.0.0.1", *MIDDLEWARE)
    assert app.engine_env(app.SPEC, rank=0, api_key="k") == {"VLLM_API_KEY": "k"}
    assert app.engine_env(app.SPEC, rank=1, api_key="k") == {}
    # Only rank 0 serves HTTP: the worker joins headless and never holds the key.
    assert worker == (*argv, "--node-rank", "1", "--master-addr", "10.0.0.1", "--headless")
    with pytest.raises(ValueError, match="rank 2 is outside the plan's 2 node"):
        app.node_argv(app.SPEC, rank=2, master_addr="10.0.0.1")


def test_a_plan_with_install_overrides_writes_them_before_the_install(offline, tmp_path):
    # vLLM 0.34.0 pins a flashinfer-python that PyPI does not have: its plans carry engine.overrides,
    # and the image must pass them to `uv pip install --override`, or the image does not build.
    path = _write_plan(tmp_path, "target-vllm-0.34.json", vllm_version="0.34.0")
    plan = json.loads(path.read_text())
    assert plan["engine"]["overrides"] == ["flashinfer-python==0.7.4"]
    calls = []
    real = modal.Image.uv_pip_install

    def recording(self, *packages, **kwargs):
        calls.append((packages, kwargs))
        return real(self, *packages, **kwargs)

    offline.setattr(modal.Image, "uv_pip_install", recording)
    app = import_app(offline, path)
    assert app.SPEC.overrides == ("flashinfer-python==0.7.4",)
    serve_install = next(kwargs for packages, kwargs in calls if "vllm==0.34.0" in packages)
    assert serve_install["extra_options"] == f"--override {app.OVERRIDES_IN_IMAGE}"
    # The command that writes the file, run here against a temporary path, writes exactly the lines.
    target = tmp_path / "o" / "overrides.txt"
    command = app.overrides_file_command(("a==1", "b<2; python_version>'3'"), str(target))
    subprocess.run(["sh", "-c", command], check=True)
    assert target.read_text().splitlines() == ["a==1", "b<2; python_version>'3'"]


def test_a_plan_without_overrides_installs_plainly(offline, plans):
    app = import_app(offline, plans["vllm"])
    assert app.SPEC.overrides == () and app.requirements_install_options(app.SPEC) == ""


# --- the GGUF converted after download (issue 18) ------------------------------------------------------------


def test_a_converted_plan_converts_in_the_download_function_and_serves_the_directory(offline, tmp_path):
    from modelformats.sources.recorded import RecordedSource

    made = make_plan(
        "example/Llama-3.1-8B-Instruct-GGUF",
        source=RecordedSource.from_paths([SYNTHETIC]),
        options=PlanOptions(format="native"),
    )
    (step,) = made.converts
    path = tmp_path / "converted.json"
    path.write_text(json.dumps(made.to_dict()))
    app = import_app(offline, path)
    assert app.SERVE_ARGV[:3] == ("vllm", "serve", step.output)
    assert app.SPEC.download_requirements == (*app.DOWNLOAD_REQUIREMENTS, *app.CONVERT_REQUIREMENTS)
    # 8.54 GB: 600 s + 8.54e9 / 50 MB/s = 770 s to fetch, then 2 x the plan's 49 s conversion estimate.
    assert step.estimated_seconds == 49
    assert app.SPEC.download_timeout == 770 + 98 == app.download_weights.info().timeout
    # The converted directory lands in the weights Volume the serving container mounts.
    assert step.output.startswith(app.SPEC.download_root + "/")
    assert volume_names(app.download_weights.info())[app.SPEC.download_root] == "modelformats-models"


def test_a_plan_without_conversion_installs_only_the_download_requirements(offline, plans):
    app = import_app(offline, plans["vllm"])
    assert app.SPEC.download_requirements == app.DOWNLOAD_REQUIREMENTS


def test_the_convert_requirements_are_the_versions_the_convert_proof_ran(offline, plans):
    from packaging.requirements import Requirement

    app = import_app(offline, plans["vllm"])
    lock = (ROOT / "locks" / "vllm-0.33.0.txt").read_text()
    for requirement in app.CONVERT_REQUIREMENTS:
        req = Requirement(requirement)
        assert f"\n{req.name}=={next(iter(req.specifier)).version} \\" in "\n" + lock, requirement
