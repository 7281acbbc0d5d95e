"""(b) Through vLLM 0.33 + vllm-gguf-plugin 0.0.5 on CPU: does every vLLM parameter get the HF tensor?

Usage: vllm_check.py CASES_JSON OUT_JSON. The caller picks the plugins with VLLM_PLUGINS: unset (all
installed plugins, ours included) is the fix; `gguf` alone is the negative control. Per case:

- config: `EngineArgs(model=<gguf>, hf_config_path=<hf dir>).create_engine_config()` - the plugin's
  patched `create_model_config` and GGUF config parser, vLLM's CpuPlatform.
- stream: `get_weights_adapter(hf_config)` -> `prepare_loading` -> `prepare_weights`, the (name,
  tensor) stream vllm-gguf-plugin's loader hands to `model.load_weights` (loader.py:95-121).
- model: the plugin's `GGUFModelLoader.load_model` - vLLM builds the model class with the plugin's
  GGUF quant methods, runs `load_weights` (AutoWeightsLoader, QKV/merged loaders, RoutedExperts) and
  `process_weights_after_loading`; then every parameter is read back and compared.
- rotary: layer 0's attention logits q.k^T after vLLM's rotary embedding (`forward_native`) on the
  received Q/K weights, against transformers' own rotary on the HF weights.

References: the HF checkpoint's tensors; where the GGUF stores a tensor as Q8_0, the reference is
gguf-py's quantize -> dequantize of the HF tensor (bit-exact to the converter, which uses gguf-py).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
from gguf.quants import dequantize, quantize
from safetensors.torch import load_file
from tools.stable_text import exception_line  # run_proof.py puts the repo root on PYTHONPATH

FLOAT_TYPES = {
    int(gguf.GGMLQuantizationType.F32),
    int(gguf.GGMLQuantizationType.F16),
    int(gguf.GGMLQuantizationType.BF16),
}
# vLLM fused linear -> (shard id, HF module) in row order (vllm/model_executor/models/llama.py, mixtral.py).
FUSED_LINEAR = {
    "qkv_proj": (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj")),
    "gate_up_proj": ((0, "gate_proj"), (1, "up_proj")),
}
QK_HEADS = {"self_attn.q_proj": "num_attention_heads", "self_attn.k_proj": "num_key_value_heads"}
SCORE_TOLERANCE = 1e-4  # relative, attention logits in float32


def _error(exc: BaseException) -> str:
    return exception_line(exc, 600)


def permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute (conversion/llama.py), the layout a GGUF stores Q/K rows in."""
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def to_float(raw: torch.Tensor, qtype: int) -> np.ndarray:
    if qtype in FLOAT_TYPES:
        return raw.detach().float().numpy()
    return dequantize(raw.detach().contiguous().numpy(), gguf.GGMLQuantizationType(qtype))


# --- the reference ------------------------------------------------------------------------------------


def gguf_name_of(hf_name: str, tensor_map: Any) -> str | None:
    base = re.sub(r"\.experts\.\d+\.", ".experts.", hf_name.removesuffix(".weight"))
    found = tensor_map.get_name(base)
    return None if found is None else f"{found}.weight"


def reference(hf_dir: Path, gguf_path: Path, config: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """HF checkpoint name -> the values the GGUF stores for it, and -> the stored GGUF type name."""
    tensors = load_file(hf_dir / "model.safetensors")
    stored = {t.name: t.tensor_type for t in gguf.GGUFReader(gguf_path).tensors}
    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    ref: dict[str, np.ndarray] = {}
    types: dict[str, str] = {}
    for name, tensor in tensors.items():
        gguf_name = gguf_name_of(name, tensor_map)
        if gguf_name not in stored:
            raise LookupError(f"HF tensor {name} ({gguf_name}) is not in {gguf_path.name}")
        qtype = stored[gguf_name]
        values = tensor.float().numpy()
        ref[name] = values if int(qtype) in FLOAT_TYPES else dequantize(quantize(values, qtype), qtype)
        types[name] = qtype.name
    return ref, types


def compare(received: dict[str, np.ndarray], ref: dict[str, np.ndarray], config: Any) -> dict[str, Any]:
    """Exact comparison per HF tensor; a mismatch that is llama.cpp's Q/K permutation is named as such."""
    mismatched: dict[str, str] = {}
    for name in sorted(set(received) & set(ref)):
        got, want = received[name], ref[name]
        if got.shape == want.shape and np.array_equal(got, want):
            continue
        module = name.removesuffix(".weight")
        heads = next((getattr(config, attr) for key, attr in QK_HEADS.items() if module.endswith(key)), None)
        if heads is not None and got.shape == want.shape and np.array_equal(got, permute_qk(want, heads)):
            mismatched[name] = "llama.cpp Q/K permutation"
        else:
            diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
            mismatched[name] = f"differs (shape {got.shape} vs {want.shape}, max |diff| {diff:.3g})"
    return {
        "compared": len(set(received) & set(ref)),
        "equal": len(set(received) & set(ref)) - len(mismatched),
        "mismatched": mismatched,
        "missing": sorted(set(ref) - set(received)),
        "unexpected": sorted(set(received) - set(ref)),
    }


def quant_error(ref: dict[str, np.ndarray], types: dict[str, str], hf_dir: Path) -> dict[str, Any]:
    """How far the Q8_0 reference is from the HF tensor, in steps of its block scale (bound ~0.5)."""
    tensors = load_file(hf_dir / "model.safetensors")
    worst, ratio = 0.0, 0.0
    for name, qtype in types.items():
        if qtype != "Q8_0":
            continue
        hf = tensors[name].float().numpy()
        blocks = hf.reshape(-1, 32)
        step = np.repeat(np.abs(blocks).max(axis=1) / 127.0, 32).reshape(hf.shape)
        error = np.abs(ref[name] - hf)
        worst = max(worst, float(error.max()))
        ratio = max(ratio, float((error / np.maximum(step, 1e-30)).max()))
    return {"max_abs_q8_0_error": worst, "max_error_in_scale_steps": ratio}


# --- what vLLM receives ----------------------------------------------------------------------------


def received_from_stream(
    stream: list[tuple[str, torch.Tensor]],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """HF name -> values of the (name, tensor) stream, and -> GGUF type for `qweight` entries."""
    types: dict[str, int] = {}
    values: dict[str, np.ndarray] = {}
    raws: dict[str, torch.Tensor] = {}
    for name, tensor in stream:
        module, _, parameter = name.rpartition(".")
        if parameter == "qweight_type":
            types[module] = int(tensor.item())
        elif parameter == "qweight":
            raws[module] = tensor
        else:
            values[name] = tensor.detach().float().numpy()
    for module, raw in raws.items():
        # map_weights splits experts but yields the type once, under expert 0.
        qtype = types.get(module, types.get(re.sub(r"\.experts\.\d+\.", ".experts.0.", module + ".")[:-1]))
        if qtype is None:
            raise LookupError(f"no qweight_type for {module}")
        values[f"{module}.weight"] = to_float(raw, qtype)
    held = {f"{m}.weight": _type_name(t) for m, t in types.items() if f"{m}.weight" in values}
    return values, held


def _type_name(qtype: int) -> str:
    return gguf.GGMLQuantizationType(qtype).name


class ModelReader:
    """Read every vLLM parameter back as HF tensors: values, the GGUF type vLLM holds for each
    (GGUF-method layers only), and the parameters that no HF tensor accounts for."""

    def __init__(self, model: torch.nn.Module, ref: dict[str, np.ndarray]) -> None:
        self.model, self.ref = model, ref
        self.values: dict[str, np.ndarray] = {}
        self.held: dict[str, str] = {}
        self.unaccounted: list[str] = []
        for vname, param in model.named_parameters():
            self._read(vname, param)

    def _read(self, vname: str, param: torch.nn.Parameter) -> None:
        module, _, parameter = vname.rpartition(".")
        if parameter.endswith("qweight_type"):
            return  # the type lives in attributes (params.py:93-121); read through the weight
        if isinstance(param, torch.nn.parameter.UninitializedParameter) or param.data.numel() == 0:
            self.unaccounted.append(f"{vname} (never loaded)")
            return
        layer = self.model.get_submodule(module)
        leaf = module.rpartition(".")[2]
        if leaf == "routed_experts" and parameter in ("w13_qweight", "w2_qweight"):
            self._experts(module.removesuffix(".routed_experts"), layer, parameter, param)
        elif leaf in FUSED_LINEAR and parameter in ("weight", "qweight"):
            self._fused(module, layer, parameter, param)
        elif parameter in ("weight", "qweight"):
            self._single(module, layer, parameter, param)
        else:
            self.unaccounted.append(vname)

    def _experts(self, experts: str, layer: Any, parameter: str, param: torch.nn.Parameter) -> None:
        # vLLM 0.33 nests RoutedExperts under FusedMoEFactory's `experts`; w13 = [w1; w3] per expert.
        types = getattr(layer, f"{parameter}_type").shard_weight_type
        shards = ("w1", "w3") if parameter == "w13_qweight" else ("w2",)
        for expert, raw in enumerate(param.data):
            rows = to_float(raw, int(types[shards[0]]))
            size = rows.shape[0] // len(shards)
            for index, shard in enumerate(shards):
                hf_name = f"{experts}.{expert}.{shard}.weight"
                self.values[hf_name] = rows[index * size : (index + 1) * size]
                self.held[hf_name] = _type_name(int(types[shard]))

    def _fused(self, module: str, layer: Any, parameter: str, param: torch.nn.Parameter) -> None:
        base, _, leaf = module.rpartition(".")
        start = 0
        for shard, hf_leaf in FUSED_LINEAR[leaf]:
            hf_name = f"{base}.{hf_leaf}.weight"
            if parameter == "weight":  # an unquantized fused linear: shards stacked by rows
                rows = self.ref[hf_name].shape[0]
                self.values[hf_name] = param.data[start : start + rows].float().numpy()
                start += rows
            else:  # GGUFLinearMethod pads and stacks shards (linear.py:157-199)
                begin, end, width = param.shard_offset_map[shard]
                qtype = int(layer.qweight_type.shard_weight_type[shard])
                self.values[hf_name] = to_float(param.data[begin:end, :width], qtype)
                self.held[hf_name] = _type_name(qtype)

    def _single(self, module: str, layer: Any, parameter: str, param: torch.nn.Parameter) -> None:
        hf_name = f"{module}.weight"
        if parameter == "weight":
            values = param.data.float().numpy()
        else:
            qtype = int(layer.qweight_type.weight_type)
            values = to_float(param.data, qtype)
            self.held[hf_name] = _type_name(qtype)
        if hf_name in self.ref and values.shape[0] > self.ref[hf_name].shape[0]:
            values = values[: self.ref[hf_name].shape[0]]  # vocab padding rows
        self.values[hf_name] = values


# --- rotary --------------------------------------------------------------------------------------------


def rotary_check(
    received: dict[str, np.ndarray], rope: Any, hf_dir: Path, ref: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Layer-0 attention logits: vLLM's rotary on the received Q/K vs transformers' on the reference Q/K."""
    import transformers
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    config = hf.config
    heads, kv_heads, dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    tokens = 12
    x = torch.from_numpy(np.random.default_rng(7).standard_normal((tokens, config.hidden_size)).astype(np.float32))
    positions = torch.arange(tokens)

    def scores(q: torch.Tensor, k: torch.Tensor) -> np.ndarray:  # q: heads x T x d, k: kv_heads x T x d
        k = k.repeat_interleave(heads // kv_heads, dim=0)
        return (q @ k.transpose(-1, -2) / dim**0.5).numpy()

    prefix = "model.layers.0.self_attn"
    wq, wk = (torch.from_numpy(ref[f"{prefix}.{p}.weight"]) for p in ("q_proj", "k_proj"))
    q, k = (
        (x @ wq.T).view(tokens, heads, dim).transpose(0, 1),
        (x @ wk.T).view(tokens, kv_heads, dim).transpose(0, 1),
    )
    with torch.no_grad():
        cos, sin = hf.model.rotary_emb(x[None], positions[None])
        q_hf, k_hf = apply_rotary_pos_emb(q[None], k[None], cos, sin)
    expected = scores(q_hf[0], k_hf[0])

    vq, vk = (torch.from_numpy(received[f"{prefix}.{p}.weight"]) for p in ("q_proj", "k_proj"))
    with torch.no_grad():
        q_v, k_v = rope.forward_native(positions, (x @ vq.T).contiguous(), (x @ vk.T).contiguous())
    got = scores(q_v.view(tokens, heads, dim).transpose(0, 1), k_v.view(tokens, kv_heads, dim).transpose(0, 1))
    relative = float(np.abs(got - expected).max() / np.abs(expected).max())
    return {
        "rope_class": type(rope).__name__,
        "is_neox_style": bool(rope.is_neox_style),
        "relative_max_diff": relative,
        "equal": relative <= SCORE_TOLERANCE,
    }


def standalone_rope(config: Any) -> Any:
    """vLLM's rotary module built as llama.py:236-248 builds it (for runs where the model does not load)."""
    from vllm.model_executor.layers.rotary_embedding import get_rope

    return get_rope(
        config.head_dim,
        max_position=config.max_position_embeddings,
        rope_parameters=getattr(config, "rope_parameters", None),
        is_neox_style=True,
    )


# --- one case --------------------------------------------------------------------------------------


def engine_config(case: dict[str, Any]) -> Any:
    from vllm.engine.arg_utils import EngineArgs

    return EngineArgs(
        model=case["gguf"],
        hf_config_path=case["hf_dir"],
        tokenizer=case["hf_dir"],
        dtype=case.get("dtype", "float32"),
        max_model_len=64,
        enforce_eager=True,
    ).create_engine_config()


@contextlib.contextmanager
def single_process_group() -> Iterator[None]:
    """vLLM's process groups for one CPU rank; rebuilt per model (the expert-parallel group exists
    only when the current config is a MoE, parallel_state.py:1661)."""
    from vllm.distributed import (
        destroy_distributed_environment,
        destroy_model_parallel,
        init_distributed_environment,
        initialize_model_parallel,
    )

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    init_distributed_environment(
        world_size=1, rank=0, local_rank=0, distributed_init_method=f"tcp://127.0.0.1:{port}", backend="gloo"
    )
    initialize_model_parallel(1, 1)
    try:
        yield
    finally:
        destroy_model_parallel()
        destroy_distributed_environment()


def stream_level(case: dict[str, Any], ref: dict[str, np.ndarray], out: dict[str, Any]) -> Any:
    """The adapter vllm-gguf-plugin picks and the stream it yields, on a config not patched yet."""
    from vllm_gguf_plugin.weights_adapter import get_weights_adapter

    model_config = engine_config(case).model_config
    adapter = get_weights_adapter(model_config.hf_config)
    out["adapter"] = type(adapter).__name__
    spec = adapter.prepare_loading(case["gguf"], model_config)
    file_tensors = {t.name for t in gguf.GGUFReader(case["gguf"]).tensors}
    out["unmapped_gguf_tensors"] = sorted(file_tensors - set(spec.gguf_to_hf_name_map))
    received, held = received_from_stream(list(adapter.prepare_weights(model_config)))
    out["stream"] = compare(received, ref, model_config.hf_config) if ref else {"names": sorted(received)}
    out["stream"]["gguf_types_held"] = dict(sorted(collections.Counter(held.values()).items()))
    return received


def model_level(
    vllm_config: Any, ref: dict[str, np.ndarray], types: dict[str, str], out: dict[str, Any]
) -> tuple[Any, dict[str, np.ndarray]]:
    """The plugin's loader builds and loads the vLLM model on CPU; every parameter is read back."""
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader import get_model_loader

    with set_current_vllm_config(vllm_config), single_process_group():
        loader = get_model_loader(vllm_config.load_config)
        out["loader"] = type(loader).__module__ + "." + type(loader).__name__
        model = loader.load_model(vllm_config=vllm_config, model_config=vllm_config.model_config)
    out["vllm_model_class"] = type(model).__name__
    reader = ModelReader(model, ref)
    hf_config = vllm_config.model_config.hf_config
    section = compare(reader.values, ref, hf_config) if ref else {"names": sorted(reader.values)}
    section["unaccounted_parameters"] = reader.unaccounted
    section["parameters"] = sum(1 for _ in model.named_parameters())
    if ref:
        section["gguf_types_held"] = dict(sorted(collections.Counter(reader.held.values()).items()))
        section["wrong_gguf_types"] = {
            name: f"{held} (file: {types[name]})" for name, held in reader.held.items() if held != types[name]
        }
    out["model"] = section
    return model, reader.values


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {key: case[key] for key in ("layout", "quant", "variant")}
    hf_dir, gguf_path = Path(case["hf_dir"]), Path(case["gguf"])
    started = time.monotonic()
    try:
        vllm_config = engine_config(case)
    except Exception as exc:
        out["config"] = {"error": _error(exc)}
        return out
    hf_config = vllm_config.model_config.hf_config
    out["config"] = {"class": type(hf_config).__name__, "architectures": list(hf_config.architectures or [])}
    ref: dict[str, np.ndarray] = {}
    types: dict[str, str] = {}
    if case["variant"] in ("own-config", "bf16-model"):
        ref, types = reference(hf_dir, gguf_path, hf_config)
        out["quant_error"] = quant_error(ref, types, hf_dir)
    if case["variant"] == "bf16-model":
        # Stream only: on CPU, vLLM's bf16 weight packing needs a CPU build's _C ops. The adapter casts
        # the F32 token_embd (a GGUF-method layer) to bf16; vLLM's loaders cast the rest later.
        embed = "model.embed_tokens.weight"
        ref[embed] = torch.from_numpy(ref[embed]).to(torch.bfloat16).float().numpy()
        try:
            stream_level(case, ref, out)
        except Exception as exc:
            out["stream"] = {"error": _error(exc)}
        return out

    stream_received, model, model_received = None, None, None
    try:
        stream_received = stream_level(case, ref, out)
    except Exception as exc:
        out["stream"] = {"error": _error(exc)}
    try:
        model, model_received = model_level(vllm_config, ref, types, out)
    except Exception as exc:
        out["model"] = {"error": _error(exc), "trace": traceback.format_exc()[-1500:]}

    received = model_received or stream_received
    if ref and received:
        rope = model.model.layers[0].self_attn.rotary_emb if model is not None else standalone_rope(hf_config)
        try:
            out["rotary"] = rotary_check(received, rope, hf_dir, ref)
            out["rotary"]["source"] = "loaded vLLM model" if model_received else "plugin stream + get_rope"
        except Exception as exc:
            out["rotary"] = {"error": _error(exc)}
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def main() -> None:
    from vllm.plugins import load_general_plugins

    load_general_plugins()
    from vllm_gguf_plugin.weights_adapter import _ADAPTER_REGISTRY

    cases = json.loads(Path(sys.argv[1]).read_text())
    report = {
        "VLLM_PLUGINS": os.environ.get("VLLM_PLUGINS"),
        "adapter_registry": [cls.__module__ + "." + cls.__name__ for cls in _ADAPTER_REGISTRY],
        "results": [run_case(case) for case in cases],
    }
    Path(sys.argv[2]).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
