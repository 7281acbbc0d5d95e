"""Run ONE vLLM environment's own GGUF code on the probe's tiny files, on CPU; print JSON.

    python -m tools.engine_probe.engine --fixtures F.json --listings DIR --root ROOT --output OUT.json

Runs inside a vLLM virtualenv (imports vllm, torch, gguf). For every layout, with and without
`--hf-config-path`/`--tokenizer`, it goes as far as vLLM goes on CPU:

1. config  - `EngineArgs(...).create_engine_config()`: the HF config the engine ends with;
2. names   - the engine's GGUF->HF name map (0.23 in-tree `GGUFModelLoader._get_gguf_weights_map`,
             plugin `get_weights_adapter(...).prepare_loading`), and the GGUF tensors it leaves out;
3. load    - the engine's whole `load_model` on the CPU device: the vLLM model is built with the GGUF
             quant config and every tensor goes through the model's own `load_weights` and
             `process_weights_after_loading`. Parameters that received nothing are listed.

It stops there: a forward pass needs the GGUF CUDA (or Triton) kernels, which do not run on CPU.
It also records the engine's quant-type sets, its `repo:TAG` checks and file resolution run on
real repo listings, its `QUANTIZATION_METHODS` and its model registry.

The probe changes two things in vLLM, both recorded in the output: on 0.23 the platform is set to
`CpuPlatform` (the CUDA wheel reports an unspecified platform without a GPU), and `initialize_model`
is wrapped to keep the set of names `load_weights` returns.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import re
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tools.stable_text import sort_set_literals

# Tags checked with the engine's own `repo:TAG` code: llama.cpp's file types, the GGML tensor types,
# the target repo's mixed-case tags, and forms seen in the wild (UD- prefixes, ARM repacks, imatrix).
EXTRA_TAGS = (
    "Q4_K_M",
    "Q4_k_m",
    "q4_k_m",
    "Q5_k_s",
    "q5_k_m",
    "Q8_0",
    "q8_0",
    "Q2_k",
    "Q6_k",
    "IQ4_XS",
    "Q4_0_4_4",
    "Q4_0_4_8",
    "Q4_0_8_8",
    "UD-Q4_K_XL",
    "UD-IQ1_S",
    "IQ4_XS-imat",
    "Q8_0-00001-of-00002",
    "MXFP4",
    "TQ1_0",
    "BF16",
    "bf16",
    "f16",
    "F16",
)
REPO = "owner/name"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Normalizer:
    """Make messages independent of temp paths, memory addresses and whitespace."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, text: str, extra: dict[str, str] | None = None) -> str:
        for old, new in {self.root: "<fixtures>", **(extra or {})}.items():
            text = text.replace(old, new)
        text = sort_set_literals(re.sub(r"0x[0-9a-f]{6,}", "0x?", text))
        # pydantic appends the input repr and a docs link; the first clause is the message.
        text = text.split(" [type=")[0].split("For further information visit")[0]
        return re.sub(r"\s+", " ", text).strip()[:600]

    def exception(self, exc: BaseException, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"type": type(exc).__name__, "message": self(str(exc), extra)}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("vllm", "vllm-gguf-plugin", "transformers", "gguf", "torch", "huggingface-hub"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _force_cpu_platform() -> str:
    from vllm import platforms
    from vllm.platforms.cpu import CpuPlatform

    if platforms.current_platform.is_unspecified():
        platforms.current_platform = CpuPlatform()
        return "CpuPlatform (set by the probe: the CUDA wheel reports UnspecifiedPlatform without a GPU)"
    return type(platforms.current_platform).__name__


def _is_plugin_engine() -> bool:
    return importlib.util.find_spec("vllm_gguf_plugin") is not None


# --- facts that need no model -------------------------------------------------------------------


def _quant_type_facts() -> dict[str, Any]:
    import gguf

    if _is_plugin_engine():
        from vllm_gguf_plugin.quantization import utils as q

        source = "vllm_gguf_plugin/quantization/utils.py"
    else:
        from vllm.model_executor.layers.quantization import gguf as q  # type: ignore[no-redef]

        source = "vllm/model_executor/layers/quantization/gguf.py"
    loadable = {t.name for t in q.UNQUANTIZED_TYPES | q.DEQUANT_TYPES}
    every = [t.name for t in gguf.GGMLQuantizationType]
    return {
        "source": source,
        "loadable": sorted(loadable),
        "mmq": sorted(t.name for t in q.MMQ_QUANT_TYPES),
        "refused": sorted(name for name in every if name not in loadable),
    }


def _tag_facts(listings: Path, norm: Normalizer) -> dict[str, Any]:
    """The engine's own `repo:TAG` recognition, and which file it resolves TAG to in real listings."""
    import gguf

    tags = sorted(
        {t.name.removeprefix("MOSTLY_").removeprefix("ALL_") for t in gguf.LlamaFileType if t.name != "GUESSED"}
        | {t.name for t in gguf.GGMLQuantizationType}
        | set(EXTRA_TAGS)
    )
    if _is_plugin_engine():
        from vllm_gguf_plugin import gguf_utils, weight_utils

        source = "vllm_gguf_plugin/gguf_utils.py:is_remote_gguf, weight_utils.py:download_gguf"
        download_module: Any = weight_utils
        hook = "snapshot_download"
    else:
        from vllm.model_executor.model_loader import weight_utils as v_weight_utils
        from vllm.transformers_utils import gguf_utils  # type: ignore[no-redef]

        source = "vllm/transformers_utils/gguf_utils.py:is_remote_gguf, weight_utils.py:download_gguf"
        download_module = v_weight_utils
        hook = "download_weights_from_hf"
    recognised = {tag: bool(gguf_utils.is_remote_gguf(f"{REPO}:{tag}")) for tag in tags}

    resolution: dict[str, dict[str, Any]] = {}
    for listing_path in sorted(listings.glob("*.json")):
        listing = json.loads(listing_path.read_text())
        names = [f["path"] for f in listing["files"] if f["path"].endswith(".gguf")]
        if not names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            # The Hub snapshot, as empty files: the engine globs the folder it gets back.
            for name in names:
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).touch()
            original = getattr(download_module, hook)
            setattr(download_module, hook, lambda *a, _tmp=tmp, **k: _tmp)
            try:
                per_tag: dict[str, Any] = {}
                for tag in _listing_tags(names):
                    ref = f"{listing['repo_id']}:{tag}"
                    entry: dict[str, Any] = {"recognised": bool(gguf_utils.is_remote_gguf(ref))}
                    if not entry["recognised"]:
                        # vLLM then treats `repo:TAG` as a plain model id: no GGUF download happens.
                        per_tag[tag] = entry
                        continue
                    try:
                        picked = download_module.download_gguf(listing["repo_id"], tag)
                        entry["file"] = str(Path(picked).relative_to(tmp))
                    except Exception as exc:
                        entry["error"] = norm.exception(exc, {tmp: "<snapshot>"})
                    per_tag[tag] = entry
            finally:
                setattr(download_module, hook, original)
        resolution[listing["repo_id"]] = per_tag
    return {"source": source, "recognised": recognised, "resolution": resolution}


def _listing_tags(names: list[str]) -> list[str]:
    """The tag a user would type for each file: the text after the last '-' or '.' before .gguf."""
    tags = set()
    for name in names:
        stem = Path(name).name.removesuffix(".gguf")
        stem = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
        tags.add(re.split(r"[-.]", stem)[-1])
    return sorted(tags)


def _registry_archs() -> list[str]:
    from vllm.model_executor.models import ModelRegistry

    return sorted(ModelRegistry.get_supported_archs())


def _quantization_methods() -> list[str]:
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    return list(QUANTIZATION_METHODS)


# The checkpoint quantization methods modelformats plans for; their configs report a minimum GPU.
PLANNED_METHODS = ("awq", "gptq", "fp8", "compressed-tensors", "bitsandbytes", "gguf")


def _min_capabilities() -> dict[str, int]:
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS, get_quantization_config

    return {
        method: int(get_quantization_config(method).get_min_capability())
        for method in PLANNED_METHODS
        if method in QUANTIZATION_METHODS
    }


# --- the per-layout cases -------------------------------------------------------------------------

# Load-stage failures that come from running a CUDA wheel on CPU, not from the GGUF: the model's
# layers look up vLLM's compiled `_C` CPU ops at construction time.
CPU_LIMIT_PATTERNS = (re.compile(r"'_C' object has no attribute"),)

EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
CONFIG_FIELDS = ("num_hidden_layers", "hidden_size", "vocab_size", "tie_word_embeddings")


def _config_facts(hf_config: Any, expected: dict[str, Any]) -> dict[str, Any]:
    text = hf_config.get_text_config()
    out: dict[str, Any] = {
        "model_type": hf_config.model_type,
        "architectures": list(hf_config.architectures or []),
    }
    experts = None
    for key in EXPERT_KEYS:
        # Some configs alias these keys (attribute_map); the first one set wins, as in vLLM.
        if getattr(text, key, None):
            experts = {"key": key, "value": getattr(text, key)}
            break
    out["experts"] = experts
    for key in CONFIG_FIELDS:
        out[key] = getattr(text, key, None)
    # Where the engine's config disagrees with the model the GGUF holds.
    mismatches = []
    for key in ("num_hidden_layers", "hidden_size", "vocab_size"):
        if expected.get(key) is not None and out[key] != expected[key]:
            mismatches.append(f"{key}: {out[key]} (the GGUF holds {expected[key]})")
    want_experts = next((expected[k] for k in EXPERT_KEYS if expected.get(k)), None)
    got_experts = experts["value"] if experts else None
    if want_experts != got_experts:
        mismatches.append(f"experts: {got_experts} (the GGUF holds {want_experts})")
    out["mismatches"] = mismatches
    return out


def _gguf_tensor_names(paths: list[str]) -> list[str]:
    import gguf

    names: list[str] = []
    for path in paths:
        names.extend(t.name for t in gguf.GGUFReader(path).tensors)
    return names


def _name_map(model_config: Any, gguf_path: str, in_file: list[str]) -> tuple[dict[str, str], str]:
    """The engine's GGUF -> HF name map for the file, and which mechanism made it."""
    if _is_plugin_engine():
        from vllm_gguf_plugin.weights_adapter import get_weights_adapter

        adapter = get_weights_adapter(model_config.hf_config)
        adapter.prepare_loading(gguf_path, model_config)
        kind = type(adapter).__name__
        if adapter.load_spec.gguf_to_hf_name_map is not None:
            return dict(adapter.load_spec.gguf_to_hf_name_map), f"{kind}.build_name_map"
        # Gemma3GGUFAdapter renames by prefix (a vLLM WeightsMapper) instead of a name map.
        mapped = {name: adapter.mapper.map_name(name) for name in in_file}
        return {k: v for k, v in mapped.items() if v is not None}, f"{kind}.mapper"
    from vllm.config.load import LoadConfig
    from vllm.model_executor.model_loader.gguf_loader import GGUFModelLoader

    loader = GGUFModelLoader(LoadConfig(load_format="gguf"))
    return dict(loader._get_gguf_weights_map(model_config)), "GGUFModelLoader._get_gguf_weights_map"


@contextlib.contextmanager
def _record_loaded(loader: Any, record: dict[str, Any]) -> Iterator[None]:
    """Wrap the loader module's `initialize_model` so the names `load_weights` returns are kept."""
    module = sys.modules[type(loader).__module__]
    original: Callable[..., Any] = module.initialize_model

    def initialize_model(*args: Any, **kwargs: Any) -> Any:
        model = original(*args, **kwargs)
        load_weights = model.load_weights

        def recording_load_weights(weights: Any) -> Any:
            loaded = load_weights(weights)
            record["loaded"] = set(loaded or ())
            return loaded

        model.load_weights = recording_load_weights
        return model

    module.initialize_model = initialize_model
    try:
        yield
    finally:
        module.initialize_model = original


def _load(vllm_config: Any) -> dict[str, Any]:
    import torch
    from vllm.model_executor.model_loader import get_model_loader

    loader = get_model_loader(vllm_config.load_config)
    record: dict[str, Any] = {}
    with _record_loaded(loader, record):
        model = loader.load_model(vllm_config=vllm_config, model_config=vllm_config.model_config)
    params = dict(model.named_parameters())
    loaded = record.get("loaded", set())
    return {
        "loader": f"{type(loader).__module__}.{type(loader).__name__}",
        "model_class": type(model).__name__,
        "parameters": len(params),
        "loaded": len(loaded & set(params)),
        "unloaded": sorted(set(params) - loaded),
        "uninitialized": sorted(
            n for n, p in params.items() if isinstance(p, torch.nn.parameter.UninitializedParameter)
        ),
    }


def _init_distributed() -> None:
    """A world of one (gloo on CPU), as a vLLM worker sets it up for the current config.

    The process group is made once; the model-parallel groups are rebuilt per case because vLLM
    creates the expert-parallel group only when the config is a MoE (parallel_state.py).
    """
    from vllm.distributed import ensure_model_parallel_initialized, init_distributed_environment
    from vllm.distributed.parallel_state import destroy_model_parallel, model_parallel_is_initialized

    if model_parallel_is_initialized():
        destroy_model_parallel()
    else:
        init_distributed_environment(
            world_size=1,
            rank=0,
            local_rank=0,
            distributed_init_method=f"tcp://127.0.0.1:{_port()}",
            backend="gloo",
        )
    ensure_model_parallel_initialized(1, 1)


class BrokenEnvironmentError(RuntimeError):
    """The probe's environment cannot import what vLLM needs: not a verdict about any GGUF."""


def _raised_while_importing(exc: BaseException) -> bool:
    """True when `exc` (or what it chains from) came out of an import, not out of vLLM's logic."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ImportError):  # ModuleNotFoundError included
            return True
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith("<frozen importlib"):
                return True
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return False


def _guard(exc: BaseException, stage: str, layout: str) -> None:
    """Environment errors (a module that does not import, a CUDA-bindings clash) stop the probe."""
    if _raised_while_importing(exc):
        raise BrokenEnvironmentError(
            f"the probe environment is broken, not the GGUF: {type(exc).__name__}: {exc} "
            f"(raised while importing, at stage {stage!r} of layout {layout!r}). Rebuild the locked venv "
            "(`nox -s heavy_envs`, locks/*.txt) and re-run; no verdict was recorded."
        ) from exc


def run_case(
    *, layout: str, gguf_paths: list[str], hf_dir: str | None, expected: dict[str, Any], norm: Normalizer
) -> dict[str, Any]:
    from vllm.config import set_current_vllm_config
    from vllm.engine.arg_utils import EngineArgs

    case: dict[str, Any] = {
        "layout": layout,
        "hf_config_path": hf_dir is not None,
        # model_type of the config.json behind --hf-config-path (None: no config given).
        "hf_model_type": expected["model_type"] if hf_dir is not None else None,
        "files": len(gguf_paths),
    }
    kwargs: dict[str, Any] = {"hf_config_path": hf_dir, "tokenizer": hf_dir} if hf_dir else {}
    try:
        args = EngineArgs(model=gguf_paths[0], max_model_len=512, dtype="float32", enforce_eager=True, **kwargs)
        vllm_config = args.create_engine_config()
    except Exception as exc:
        _guard(exc, "config", layout)
        return case | {"stopped_at": "config", "error": norm.exception(exc)}
    model_config = vllm_config.model_config
    case["config"] = _config_facts(model_config.hf_config, expected)
    case["quantization"] = model_config.quantization
    with set_current_vllm_config(vllm_config):
        _init_distributed()
        in_file = _gguf_tensor_names(gguf_paths)
        try:
            name_map, kind = _name_map(model_config, gguf_paths[0], in_file)
        except Exception as exc:
            _guard(exc, "names", layout)
            return case | {"stopped_at": "names", "error": norm.exception(exc)}
        case["names"] = {
            "by": kind,
            "gguf_tensors": len(in_file),
            "mapped": sum(1 for n in in_file if n in name_map),
            "unmapped_gguf_tensors": sorted(n for n in in_file if n not in name_map),
        }
        try:
            case["load"] = _load(vllm_config)
        except Exception as exc:
            _guard(exc, "load", layout)
            error = norm.exception(exc)
            cpu_limit = any(p.search(error["message"]) for p in CPU_LIMIT_PATTERNS)
            return case | {"stopped_at": "load", "error": error, "cpu_limit": cpu_limit}
    load = case["load"]
    clean = not (case["names"]["unmapped_gguf_tensors"] or load["unloaded"] or load["uninitialized"])
    case["stopped_at"] = None
    case["weights_complete"] = clean and not case["config"]["mismatches"]
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, required=True, help="JSON written by fixtures.write_all")
    parser.add_argument("--listings", type=Path, required=True, help="recorded repo listings (tag resolution)")
    parser.add_argument("--root", required=True, help="fixtures root, replaced by <fixtures> in messages")
    parser.add_argument("--output", type=Path, required=True, help="where the JSON goes (vLLM logs to stdout)")
    args = parser.parse_args(argv)
    norm = Normalizer(args.root)
    platform = _force_cpu_platform()
    builtin_methods = _quantization_methods()
    from vllm.plugins import load_general_plugins

    load_general_plugins()
    fixtures = json.loads(args.fixtures.read_text())
    from tools.engine_probe.layouts import LAYOUTS

    expected = {layout.name: dict(layout.hf_config) for layout in LAYOUTS}
    cases = []
    for layout, entry in fixtures.items():
        for hf_dir in (None, entry["hf_config_dir"]):
            cases.append(
                run_case(
                    layout=layout,
                    gguf_paths=[entry["gguf"]],
                    hf_dir=hf_dir,
                    expected=expected[layout],
                    norm=norm,
                )
            )
        for model_type, alt_dir in entry["alt_hf_config_dirs"].items():
            # The same GGUF with another config.json behind --hf-config-path (layouts.py alt_hf_configs).
            case = run_case(
                layout=layout, gguf_paths=[entry["gguf"]], hf_dir=alt_dir, expected=expected[layout], norm=norm
            )
            cases.append(case | {"hf_model_type": model_type})
        if "split" in entry:
            case = run_case(
                layout=layout,
                gguf_paths=entry["split"],
                hf_dir=entry["hf_config_dir"],
                expected=expected[layout],
                norm=norm,
            )
            cases.append(case | {"variant": "split"})
    result = {
        "versions": _versions(),
        "engine": "vllm-gguf-plugin" if _is_plugin_engine() else "vllm in-tree gguf",
        "platform": platform,
        "cases": cases,
        "quant_types": _quant_type_facts(),
        "tags": _tag_facts(args.listings, norm),
        # Before and after vLLM's general plugins ran (vllm-gguf-plugin registers "gguf").
        "quantization_methods_builtin": builtin_methods,
        "quantization_methods": _quantization_methods(),
        "min_capability": _min_capabilities(),
        "registry_architectures": _registry_archs(),
    }
    args.output.write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
