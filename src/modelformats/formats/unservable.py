"""Formats we recognise so we can say clearly that vLLM cannot serve them, and what to use instead.

Recognising them matters: an EXL2 repo carries `.safetensors` files and often a stale
`model.safetensors.index.json`, an MLX repo uses transformers-style shard names. A detector
that only looked for `*.safetensors` would plan a download of weights vLLM cannot load.
"""

from __future__ import annotations

import re
from typing import ClassVar

from modelformats.errors import UnservableFormatError
from modelformats.formats.base import BaseFormat, Detection, FileSelection, SelectionContext
from modelformats.formats.hf import config_quant_method
from modelformats.listing import RepoListing

__all__ = [
    "EXL2Format",
    "LoraAdapterFormat",
    "MLXFormat",
    "MetaConsolidatedFormat",
    "ONNXFormat",
]


def _base_hint(listing: RepoListing, fallback: str) -> str:
    if listing.base_models:
        base = listing.base_models[0]
        return f"Serve its base model instead: `modelformats plan {base}`."
    return fallback


class _Unservable(BaseFormat):
    reason: ClassVar[str]
    # What to use instead when the card names no base model.
    fallback: ClassVar[str]

    def _instead(self, listing: RepoListing) -> str:
        return _base_hint(listing, self.fallback)

    def _claim(self, listing: RepoListing, evidence: list[str]) -> Detection | None:
        if not evidence:
            return None
        return Detection(
            format=self.name,
            evidence=tuple(evidence),
            servable=False,
            reason=self.reason,
            instead=self._instead(listing),
        )

    def select_files(self, listing: RepoListing, detection: Detection, context: SelectionContext) -> FileSelection:
        raise UnservableFormatError(
            listing.repo_id, self.description, detection.reason or self.reason, detection.instead or ""
        )


# exllamav2's convert.py names its output `output.safetensors` / `output-00001-of-00002.safetensors`.
_EXL2_WEIGHTS = re.compile(r"^output(-\d+-of-\d+)?\.safetensors$")


class EXL2Format(_Unservable):
    name = "exl2"
    priority = 90
    description = "EXL2 (ExLlamaV2)"
    reason = "ExLlamaV2's variable-bit-rate quantization has no vLLM kernel or loader"

    def detect(self, listing: RepoListing) -> Detection | None:
        evidence: list[str] = []
        method = config_quant_method(listing)
        if method in ("exl2", "exl3"):
            evidence.append(f"config.json quantization_config.quant_method = {method!r}")
        outputs = [f.path for f in listing.files if f.folder == "" and _EXL2_WEIGHTS.match(f.name)]
        if outputs:
            evidence.append(f"exllamav2 output shards: {', '.join(outputs[:3])}")
        if listing.has("measurement.json"):
            evidence.append("measurement.json (exllamav2's calibration measurement)")
        evidence += [f"Hub tag {t!r}" for t in sorted({"exl2", "exl3"} & listing.tag_set)]
        if listing.has("model.safetensors.index.json") and outputs:
            evidence.append("model.safetensors.index.json is present but its shards are not the weights here")
        return self._claim(listing, evidence)

    fallback = "Serve it with ExLlamaV2 / TabbyAPI, or serve the original model with vLLM."


class MLXFormat(_Unservable):
    name = "mlx"
    priority = 91
    description = "MLX (Apple silicon)"
    reason = "MLX checkpoints use MLX's tensor names and (when quantized) MLX's own quantization layout"

    def detect(self, listing: RepoListing) -> Detection | None:
        evidence: list[str] = []
        if "mlx" in listing.tag_set:
            evidence.append("Hub tag 'mlx' (the repo's library_name)")
        config = listing.config
        if (
            config is not None
            and isinstance(config.get("quantization"), dict)
            and "group_size" in config["quantization"]
        ):
            evidence.append("config.json has MLX's 'quantization' block (group_size/bits)")
        npz = [f.path for f in listing.files if f.suffix == ".npz"]
        if npz:
            evidence.append(f"MLX .npz weights: {', '.join(npz[:3])}")
        return self._claim(listing, evidence)

    fallback = (
        "Run it with mlx-lm on Apple silicon, or serve the transformers checkpoint it was converted from with vLLM."
    )


# ONNX, consolidated checkpoints and adapters have the lowest priorities: next to weights vLLM can
# load they are extras (excluded from the plan), and they only win when nothing else is there.


class ONNXFormat(_Unservable):
    name = "onnx"
    priority = 10
    description = "ONNX"
    reason = "vLLM runs PyTorch model definitions; ONNX graphs need ONNX Runtime"

    def detect(self, listing: RepoListing) -> Detection | None:
        onnx = [f.path for f in listing.files if f.suffix in (".onnx", ".onnx_data")]
        return self._claim(listing, [f"ONNX weights: {', '.join(onnx[:3])}"] if onnx else [])

    fallback = "Run it with ONNX Runtime / Optimum, or serve the original PyTorch model with vLLM."


_CONSOLIDATED = re.compile(r"^consolidated(\.\d+)?\.(pth|pt)$")


class MetaConsolidatedFormat(_Unservable):
    name = "meta-consolidated"
    priority = 11
    description = "Meta-native consolidated .pth checkpoints"
    reason = "vLLM loads transformers checkpoints; Meta's consolidated.*.pth layout needs conversion first"

    def detect(self, listing: RepoListing) -> Detection | None:
        parts = [f.path for f in listing.files if _CONSOLIDATED.match(f.name)]
        if not parts:
            return None
        evidence = [f"consolidated checkpoints: {', '.join(parts[:3])}"]
        if any(f.name == "params.json" for f in listing.files):
            evidence.append("params.json (Meta's model-args file)")
        return self._claim(listing, evidence)

    fallback = (
        "Convert it with transformers' convert_llama_weights_to_hf.py, or use the repo's transformers "
        "version (Meta publishes both; the consolidated files live under original/ there)."
    )


class LoraAdapterFormat(_Unservable):
    name = "lora-adapter"
    priority = 5
    description = "a LoRA adapter without base weights"
    reason = "an adapter holds only low-rank deltas; the base model's weights are not in the repo"

    def detect(self, listing: RepoListing) -> Detection | None:
        adapter = [f.path for f in listing.files if f.folder == "" and f.name.startswith("adapter_model.")]
        if not (adapter or listing.has("adapter_config.json")):
            return None
        evidence = ["adapter_config.json" if listing.has("adapter_config.json") else "no adapter_config.json"]
        evidence += [f"{p} (adapter weights)" for p in adapter]
        return self._claim(listing, evidence)

    def _instead(self, listing: RepoListing) -> str:
        doc = listing.document("adapter_config.json")
        base = doc.get("base_model_name_or_path") if isinstance(doc, dict) else None
        base = base or (listing.base_models[0] if listing.base_models else None)
        if base:
            return (
                f"Serve the base model {base!r} with `--enable-lora --lora-modules "
                f"adapter={listing.repo_id}` (vLLM loads the adapter at runtime)."
            )
        return (
            "Find the base model in adapter_config.json (base_model_name_or_path) and serve it with "
            f"`--enable-lora --lora-modules adapter={listing.repo_id}`."
        )
