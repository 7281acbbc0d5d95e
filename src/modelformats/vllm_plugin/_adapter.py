"""The weights adapter registered into vllm-gguf-plugin 0.0.5 (imported only inside vLLM 0.33).

vllm-gguf-plugin picks the first class in `vllm_gguf_plugin.weights_adapter._ADAPTER_REGISTRY` whose
`matches(hf_config)` is true, else its default `GGUFWeightsAdapter` (weights_adapter/__init__.py:17-22).
This subclass of the default keeps its name map, shard discovery, tie detection and iterator, and adds
what llama-architecture GGUFs need on vLLM 0.33 (see `_layout`): the Mixtral expert map, the inverse
Q/K permutation and the parameter form each vLLM layer accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np
import torch
from gguf.quants import dequantize
from vllm_gguf_plugin import weights_adapter
from vllm_gguf_plugin.weight_utils import gguf_quant_weights_iterator_multi
from vllm_gguf_plugin.weights_adapter.default import GGUFWeightsAdapter

from modelformats.gguf.hf_names import QK_PERMUTED_MODULES, mixtral_name_map, split_tensor_name, unpermute_qk
from modelformats.vllm_plugin._layout import (
    GGUF_ARCHITECTURE,
    MODEL_LAYOUTS,
    ModelLayout,
    TensorForm,
    check_heads,
    check_layout,
)

__all__ = ["GGUFHeader", "LlamaArchGGUFAdapter", "install", "read_header"]

logger = logging.getLogger("vllm.plugins.modelformats")

# GGUF type of a float tensor as vllm-gguf-plugin's iterator yields it (weight_utils.py:231-256).
_FLOAT_GGUF_TYPES: dict[torch.dtype, gguf.GGMLQuantizationType] = {
    torch.float32: gguf.GGMLQuantizationType.F32,
    torch.float16: gguf.GGMLQuantizationType.F16,
    torch.bfloat16: gguf.GGMLQuantizationType.BF16,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class GGUFHeader:
    """The header facts the adapter decides from."""

    architecture: str
    expert_count: int
    # QK_PERMUTED_MODULES' header keys without the architecture prefix -> head count.
    head_counts: dict[str, int]
    # Every tensor of every shard -> its GGML type name ("Q8_0", "F32", ...).
    tensor_types: dict[str, str]


def _scalar(value: Any) -> int:
    values = np.asarray(value).reshape(-1)
    if values.size == 0 or not (values == values[0]).all():
        raise ValueError(f"expected one value, got {values.tolist()}")
    return int(values[0])


def read_header(paths: Iterable[str]) -> GGUFHeader:
    """Architecture, expert count and head counts (first file) and tensor names (all shards)."""
    files = list(paths)
    readers = [gguf.GGUFReader(path) for path in files]
    fields = readers[0].fields
    architecture = str(fields["general.architecture"].contents())

    def read(key: str) -> Any:
        field = fields.get(f"{architecture}.{key}")
        return None if field is None else field.contents()

    head_count = read("attention.head_count")
    head_counts: dict[str, int] = {}
    if head_count is not None:
        head_counts["attention.head_count"] = _scalar(head_count)
        # Absent head_count_kv means plain multi-head attention (llama.cpp's default).
        kv = read("attention.head_count_kv")
        head_counts["attention.head_count_kv"] = _scalar(kv) if kv is not None else _scalar(head_count)
    return GGUFHeader(
        architecture=architecture,
        expert_count=_scalar(read("expert_count") or 0),
        head_counts=head_counts,
        tensor_types={t.name: t.tensor_type.name for reader in readers for t in reader.tensors},
    )


class LlamaArchGGUFAdapter(GGUFWeightsAdapter):  # type: ignore[misc]  # vllm_gguf_plugin ships no types
    """vllm-gguf-plugin adapter for `llama`-architecture GGUFs read with a llama or Mixtral HF config."""

    _layout: ModelLayout | None = None
    _header: GGUFHeader | None = None

    @classmethod
    def matches(cls, config: Any) -> bool:
        return getattr(config, "model_type", None) in MODEL_LAYOUTS

    def prepare_loading(self, model_path: str, model_config: Any) -> Any:
        header = read_header(self._get_all_gguf_files(model_path))
        hf_config = model_config.hf_config
        if header.architecture != GGUF_ARCHITECTURE:
            # Not a layout this adapter knows: behave exactly like vllm-gguf-plugin's default.
            logger.info("modelformats: %s is a %r GGUF, not ours", model_path, header.architecture)
            self._layout = self._header = None
            return super().prepare_loading(model_path, model_config)
        layout = MODEL_LAYOUTS[hf_config.model_type]
        self._check_heads(model_path, header, hf_config)
        self._layout, self._header = layout, header
        spec = super().prepare_loading(model_path, model_config)
        check_layout(
            path=model_path,
            layout=layout,
            config_experts=int(getattr(hf_config, "num_local_experts", 0) or 0),
            gguf_experts=header.expert_count,
            file_tensors=header.tensor_types,
            name_map=spec.gguf_to_hf_name_map,
        )
        logger.info(
            "modelformats: loading %s (GGUF architecture %r, %d experts) as %s, Q/K rows in HF order",
            model_path,
            header.architecture,
            header.expert_count,
            layout.model_type,
        )
        return spec

    @staticmethod
    def _check_heads(path: str, header: GGUFHeader, hf_config: Any) -> None:
        check_heads(
            path=path,
            gguf_head_counts=header.head_counts,
            num_attention_heads=int(hf_config.num_attention_heads),
            num_key_value_heads=getattr(hf_config, "num_key_value_heads", None),
        )

    def build_name_map(self, model_config: Any) -> dict[str, str]:
        if self._layout is None or not self._layout.has_experts:
            return super().build_name_map(model_config)  # type: ignore[no-any-return]
        layers = int(model_config.hf_config.num_hidden_layers)
        tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
        return mixtral_name_map(layers, tensor_map.get_name)

    def prepare_weights(self, model_config: Any) -> Iterator[tuple[str, torch.Tensor]]:
        if self._layout is None:
            yield from super().prepare_weights(model_config)
            return
        stored = gguf_quant_weights_iterator_multi(self.load_spec.weights_source, self.load_spec.gguf_to_hf_name_map)
        yield from self.map_weights(self._normalise(stored, self._layout, model_config.dtype))

    def _normalise(
        self, stored: Iterable[tuple[str, torch.Tensor]], layout: ModelLayout, dtype: torch.dtype
    ) -> Iterator[tuple[str, torch.Tensor]]:
        # The plugin yields `X.qweight_type` (a scalar) right before `X.qweight` for quantized tensors.
        pending_types: dict[str, int] = {}
        for name, tensor in stored:
            module, parameter = split_tensor_name(name)
            if parameter == "qweight_type":
                pending_types[module] = int(tensor.item())
                continue
            qtype = pending_types.pop(module) if parameter == "qweight" else _float_type(name, tensor)
            ordered = self._unpermute(module, tensor)
            yield from _in_form(module, parameter, ordered, qtype=qtype, form=layout.form_of(module), dtype=dtype)

    def _unpermute(self, module: str, tensor: torch.Tensor) -> torch.Tensor:
        assert self._header is not None
        for suffix, key in QK_PERMUTED_MODULES.items():
            if module.endswith(f".{suffix}"):
                return unpermute_qk(tensor, self._header.head_counts[key]).contiguous()
        return tensor


def _float_type(name: str, tensor: torch.Tensor) -> int:
    if tensor.dtype not in _FLOAT_GGUF_TYPES:
        raise TypeError(f"GGUF tensor for {name!r} has dtype {tensor.dtype}; expected F32, F16 or BF16 data")
    return int(_FLOAT_GGUF_TYPES[tensor.dtype])


def _in_form(
    module: str, parameter: str, tensor: torch.Tensor, *, qtype: int, form: TensorForm, dtype: torch.dtype
) -> Iterator[tuple[str, torch.Tensor]]:
    """Name (and if needed dequantize or cast) one tensor the way its vLLM 0.33 layer accepts it."""
    quantized = parameter == "qweight"
    if parameter not in ("weight", "qweight") or (form is TensorForm.AS_STORED and not quantized):
        yield f"{module}.{parameter}", tensor
    elif form is TensorForm.ALWAYS_FLOAT:
        values = dequantize(tensor.numpy(), gguf.GGMLQuantizationType(qtype)) if quantized else tensor
        yield f"{module}.weight", torch.as_tensor(values)
    elif quantized:
        yield f"{module}.qweight_type", torch.tensor(qtype)
        yield f"{module}.qweight", tensor
    else:
        # A float tensor in a GGUF-method layer is used as is (`x @ qweight.T`, `torch.embedding`,
        # quantization/linear.py:43-44, vocal_embeds.py:33-34): it must already have the model dtype.
        cast = tensor.to(dtype) if dtype in _FLOAT_GGUF_TYPES else tensor
        yield f"{module}.qweight_type", torch.tensor(int(_FLOAT_GGUF_TYPES.get(cast.dtype, qtype)))
        yield f"{module}.qweight", cast


def install() -> bool:
    """Put the adapter first in vllm-gguf-plugin's registry; False if it was already there."""
    registry: list[Any] = weights_adapter._ADAPTER_REGISTRY
    if LlamaArchGGUFAdapter in registry:
        return False
    registry.insert(0, LlamaArchGGUFAdapter)
    return True
