"""Parse planned `vllm serve` argv with the installed vLLM's own parser; exit 1 on any mismatch.

    python -m tools.vllm_compat --cases cases.json        (inside a vLLM virtualenv, VLLM_TARGET_DEVICE=cpu)

Input (tools/vllm_compat/cases.py writes it): either a list of cases or
`{"vllm_version", "quantization_methods", "gguf_plugin_entry_point", "cases": [...]}`. A case is
`{"label", "argv": ["vllm", "serve", MODEL, ...], "expect": {model, tokenizer, hf_config_path,
quantization, dtype, max_model_len, max_num_seqs, gpu_memory_utilization}}` plus optional
`expect_extra` (more EngineArgs fields), `expect_args` (frontend args such as host/port), `env`
and `gguf` (the model must be a GGUF reference by vLLM's own test).

Each argv goes through what `vllm serve` does before it loads anything: the `serve` subcommand's
parser (`make_arg_parser` on a FlexibleArgumentParser), `validate_parsed_serve_args`, the
`model_tag` -> `model` rule, `AsyncEngineArgs.from_cli_args`, and vLLM's SchedulerConfig validation
of the batching flags. It also compares our quantization-method table with the installed
`QUANTIZATION_METHODS`, and checks that vllm-gguf-plugin's `vllm.general_plugins` entry point is
installed and registers "gguf" where the profile needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# The plugins vLLM may load while parsing: vllm-gguf-plugin and the quantization plugins the plans name
# (main() sets the list from the cases), as in the plans' VLLM_PLUGINS.
os.environ.setdefault("VLLM_PLUGINS", "gguf")
# The plans' local paths do not exist here. In offline mode EngineArgs.__post_init__ would resolve
# them as Hub repo ids (vllm 0.33 vllm/engine/arg_utils.py:933-939); parsing needs no network.
os.environ["HF_HUB_OFFLINE"] = "0"


def _cpu_platform() -> None:
    """As `vllm bench` does without a GPU (vllm 0.33 vllm/entrypoints/cli/main.py:72-83): the CUDA
    wheel reports an unspecified platform here, and the parser's DeviceConfig default needs one."""
    from vllm import platforms
    from vllm.platforms.cpu import CpuPlatform

    if platforms.current_platform.is_unspecified():
        platforms.current_platform = CpuPlatform()


def _serve_parser() -> tuple[Any, Any]:
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm", description="vllm (as parsed by tools/vllm_compat)")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    command = ServeSubcommand()
    command.subparser_init(subparsers)
    return parser, command


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) or isinstance(got, float):
        return got is not None and want is not None and math.isclose(float(got), float(want))
    return bool(got == want)


def _is_gguf_reference(model: str) -> bool:
    """vLLM's own test of whether `model` is a GGUF, as `vllm serve` will see the downloaded file."""
    try:
        from vllm_gguf_plugin.plugin import _is_gguf_reference
    except ImportError:
        from vllm.transformers_utils.gguf_utils import check_gguf_file, is_gguf

        # 0.23 checks an existing file by suffix, else by magic: an empty stand-in of the same name
        # leaves only the suffix test (vllm/transformers_utils/gguf_utils.py:22-38).
        with tempfile.TemporaryDirectory() as tmp:
            stub = Path(tmp) / Path(model).name
            stub.touch()
            check_gguf_file.cache_clear()
            return bool(is_gguf(str(stub)))
    return bool(_is_gguf_reference(model))


def _scheduler_problem(engine_args: Any) -> str | None:
    """Build vLLM's SchedulerConfig from the parsed batching flags; its validators raise on conflicts."""
    if engine_args.max_num_batched_tokens is None or engine_args.max_model_len is None:
        return None
    from vllm.config import SchedulerConfig

    kwargs = {
        "max_model_len": engine_args.max_model_len,
        "is_encoder_decoder": False,
        "max_num_batched_tokens": engine_args.max_num_batched_tokens,
    }
    if engine_args.max_num_seqs is not None:
        kwargs["max_num_seqs"] = engine_args.max_num_seqs
    if engine_args.enable_chunked_prefill is not None:
        kwargs["enable_chunked_prefill"] = engine_args.enable_chunked_prefill
    try:
        SchedulerConfig(**kwargs)
    except Exception as exc:
        return f"SchedulerConfig rejects the batching flags: {type(exc).__name__}: {exc}"
    return None


def check_case(case: dict[str, Any], unlocked: tuple[str, ...] = ()) -> list[str]:
    """Problems with one case (empty: vLLM accepts it and parses it to the plan's values)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    argv = case["argv"]
    if argv[:2] != ["vllm", "serve"] or len(argv) < 3:
        return [f"argv must start with ['vllm', 'serve', MODEL], got {argv[:3]}"]
    parser, command = _serve_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv[1:])
    except SystemExit:
        lines = [line for line in err.getvalue().splitlines() if "error:" in line] or [err.getvalue().strip()]
        return [f"vLLM's parser rejects the argv: {lines[-1]}"]
    try:
        command.validate(args)
    except Exception as exc:
        return [f"validate_parsed_serve_args rejects the argv: {type(exc).__name__}: {exc}"]
    if getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag  # what ServeSubcommand.cmd does first (vllm/entrypoints/cli/serve.py)
    try:
        engine_args = AsyncEngineArgs.from_cli_args(args)
    except Exception as exc:
        return [f"AsyncEngineArgs.from_cli_args fails: {type(exc).__name__}: {exc}"]
    problems = []
    for key, want in {**case["expect"], **case.get("expect_extra", {})}.items():
        got = getattr(engine_args, key)
        if not _same(got, want):
            problems.append(f"EngineArgs.{key} = {got!r}, the plan says {want!r}")
    for key, want in case.get("expect_args", {}).items():
        got = getattr(args, key)
        if not _same(got, want):
            problems.append(f"args.{key} = {got!r}, the plan says {want!r}")
    if (problem := _scheduler_problem(engine_args)) is not None:
        problems.append(problem)
    if case.get("gguf") and not _is_gguf_reference(engine_args.model):
        problems.append(f"vLLM does not take {engine_args.model!r} for a GGUF file")
    # Every plugin the plan's VLLM_PLUGINS names must be an installed vllm.general_plugins entry point
    # (vLLM skips unknown names silently: vllm/plugins/__init__.py).
    installed = {ep.name for ep in importlib.metadata.entry_points(group="vllm.general_plugins")}
    named = [n for n in (case.get("env") or {}).get("VLLM_PLUGINS", "").split(",") if n]
    missing = [n for n in named if n not in installed and n not in unlocked]
    if missing:
        problems.append(f"VLLM_PLUGINS names {missing}, not installed entry points {sorted(installed)}")
    problems += _auth_problems(args, case.get("auth_probe"))
    return problems


# Paths vLLM serves besides /v1 (SageMaker's /invocations runs chat/completions): all must demand the key.
_GUARDED_PATHS = ("/invocations", "/tokenize", "/pooling", "/score", "/rerank", "/metrics", "/v1/chat/completions")


def _auth_problems(args: Any, probe: dict[str, Any] | None) -> list[str]:
    """vLLM's own app (`build_app(args)`: its real routes, its --api-key/VLLM_API_KEY check and its loading
    of the parsed `--middleware`), with the key in the environment as the Modal example sets it: every
    guarded path answers 401 without the key and is routed (anything but 401) with it; GET /health is
    routed without it. No engine runs, so routed requests may answer 4xx/5xx. Nothing to check without
    a probe."""
    import os

    if probe is None:
        return []
    from starlette.testclient import TestClient
    from vllm.entrypoints.openai.api_server import build_app

    sys.path.insert(0, probe["path"])
    saved = {k: os.environ.get(k) for k in probe["env"]}
    os.environ.update(probe["env"])
    try:
        client = TestClient(build_app(args, ("generate",)), raise_server_exceptions=False)
        bearer = {"Authorization": f"Bearer {next(iter(probe['env'].values()))}"}
        problems = []
        for path in _GUARDED_PATHS:
            without = client.post(path, json={}).status_code
            with_key = client.post(path, json={}, headers=bearer).status_code
            if without != 401 or with_key == 401:
                problems.append(f"{path}: {without} without the key, {with_key} with it (want 401, not 401)")
        if client.get("/health").status_code == 401:
            problems.append("GET /health answers 401 without the key (want it open)")
        return problems
    finally:
        sys.path.remove(probe["path"])
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_tables(data: dict[str, Any], builtin: list[str]) -> list[str]:
    """Our quantization table vs QUANTIZATION_METHODS; the GGUF plugin's entry point and registration."""
    problems = []
    if "quantization_methods" in data and data["quantization_methods"] != builtin:
        ours, theirs = data["quantization_methods"], builtin
        problems.append(
            "quantization table differs from vLLM's QUANTIZATION_METHODS: "
            f"only ours {sorted(set(ours) - set(theirs))}, only vLLM's {sorted(set(theirs) - set(ours))}"
            + (", order differs" if set(ours) == set(theirs) else "")
        )
    if data.get("gguf_plugin_entry_point"):
        points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="vllm.general_plugins")}
        if points.get("gguf") != "vllm_gguf_plugin:register":
            problems.append(f"vllm.general_plugins has no 'gguf = vllm_gguf_plugin:register' entry point: {points}")
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
        from vllm.plugins import load_general_plugins

        load_general_plugins()
        if "gguf" not in QUANTIZATION_METHODS:
            problems.append("after load_general_plugins() 'gguf' is still not a quantization method")
    # Out-of-tree quantization plugins the plans name (vllm-bnb-plugin): installed, and registering their method.
    for name, method in data.get("quantization_plugins", {}).items():
        points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="vllm.general_plugins")}
        if name not in points:
            problems.append(f"vllm.general_plugins has no {name!r} entry point: {points}")
            continue
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
        from vllm.plugins import load_general_plugins

        load_general_plugins()
        if method not in QUANTIZATION_METHODS:
            problems.append(
                f"after load_general_plugins() with plugin {name!r}, {method!r} is not a quantization method"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, required=True)
    args = parser.parse_args(argv)
    raw = json.loads(args.cases.read_text())
    data: dict[str, Any] = raw if isinstance(raw, dict) else {"cases": raw}
    # vLLM loads its general plugins once per process, only those VLLM_PLUGINS names when it is set.
    os.environ["VLLM_PLUGINS"] = ",".join(["gguf", *data.get("quantization_plugins", {})])
    _cpu_platform()
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    builtin = list(QUANTIZATION_METHODS)  # before any plugin registers more
    installed = importlib.metadata.version("vllm")
    print(f"vllm_compat: vLLM {installed}, {len(data['cases'])} case(s) from {args.cases}")
    failures = 0
    if data.get("vllm_version") not in (None, installed):
        print(f"FAIL cases are for vLLM {data['vllm_version']}, this environment has {installed}")
        failures += 1
    for problem in check_tables(data, builtin):
        print(f"FAIL tables: {problem}")
        failures += 1
    unlocked = tuple(data.get("unlocked_plugins", ()))
    for name in unlocked:
        print(f"skip plugin {name!r}: not in this environment's lock (the plans say so); only argv are parsed")
    for case in data["cases"]:
        problems = check_case(case, unlocked)
        if problems:
            failures += 1
            print(f"FAIL {case['label']}\n  argv: {' '.join(case['argv'])}")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"ok   {case['label']}")
    for line in data.get("skipped", []):
        print(f"skip {line}")
    print(f"vllm_compat: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
