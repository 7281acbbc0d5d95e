"""Transformers-style checkpoints vLLM loads natively: safetensors, PyTorch `.bin`, and the
quantized safetensors families (GPTQ, AWQ, FP8, compressed-tensors, bitsandbytes).

They share one file-selection routine: the weights of the chosen kind at the repo root, their
index, config, generation config, tokenizer and chat template — nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from modelformats.formats._files import check_shards_complete
from modelformats.formats.base import (
    BaseFormat,
    CapabilityFloor,
    Detection,
    Exclusion,
    FileSelection,
    SelectionContext,
    ServingFacts,
    VllmQuantPlugin,
)
from modelformats.listing import RepoFile, RepoListing
from modelformats.naming import (
    CONFIG_FILES,
    MISTRAL_TOKENIZER,
    TOKENIZER_FILES,
    escape_pattern,
    has_tokenizer,
    support_files,
    unique,
)
from modelformats.weightbytes import (
    WeightBytes,
    awq_bytes,
    bitsandbytes_bytes,
    compressed_tensors_bytes,
    fp8_bytes,
    gptq_bytes,
    unclaimed_method_bytes,
)

__all__ = [
    "AWQFormat",
    "BitsAndBytesFormat",
    "CompressedTensorsFormat",
    "FP8Format",
    "GPTQFormat",
    "PyTorchBinFormat",
    "SafeTensorsFormat",
    "config_quant_method",
]

# What transformers' Trainer saves beside a checkpoint to resume training (pickles, never weights).
_TRAINING_STATE = frozenset({"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"})
# Weight-like files that are never part of a transformers checkpoint's weights.
_NOT_WEIGHTS = _TRAINING_STATE | {
    "adapter_model.safetensors",  # a LoRA adapter (see LoraAdapterFormat)
    "adapter_model.bin",
}
# Mistral-native single-file weights, duplicated next to HF shards in Mistral's own repos.
_MISTRAL_NATIVE = "consolidated.safetensors"


def config_quant_method(listing: RepoListing) -> str | None:
    """`quantization_config.quant_method` from config.json, lower-cased, if config.json was read."""
    config = listing.config
    if config is None:
        return None
    qc = config.get("quantization_config")
    if isinstance(qc, Mapping) and isinstance(qc.get("quant_method"), str):
        return str(qc["quant_method"]).lower()
    return None


def _quantization_config(listing: RepoListing) -> Mapping[str, object] | None:
    qc = (listing.config or {}).get("quantization_config")
    return qc if isinstance(qc, Mapping) else None


def _root_files(listing: RepoListing, suffix: str) -> list[RepoFile]:
    return [f for f in listing.files if f.folder == "" and f.suffix == suffix and f.name not in _NOT_WEIGHTS]


def _safetensors_weights(listing: RepoListing) -> list[str]:
    files = [f.path for f in _root_files(listing, ".safetensors")]
    # consolidated.safetensors is Mistral's native copy of the same weights: keep the HF shards.
    if len(files) > 1 and _MISTRAL_NATIVE in files:
        files.remove(_MISTRAL_NATIVE)
    return files


def _bin_weights(listing: RepoListing) -> list[str]:
    return [f.path for f in _root_files(listing, ".bin")]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Weights:
    paths: tuple[str, ...]
    index: str | None
    evidence: tuple[str, ...]


def _find_weights(listing: RepoListing, kind: str) -> _Weights | None:
    if kind == "safetensors":
        paths, index_name = _safetensors_weights(listing), "model.safetensors.index.json"
    else:
        paths, index_name = _bin_weights(listing), "pytorch_model.bin.index.json"
    if not paths:
        return None
    index = index_name if listing.has(index_name) else None
    evidence = [f"{len(paths)} {kind} weight file(s) at the repo root ({_show(paths)})"]
    if index is not None:
        evidence.append(f"index {index}")
    return _Weights(paths=tuple(sorted(paths)), index=index, evidence=tuple(evidence))


def _show(paths: list[str] | tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f", … (+{len(paths) - limit})" if len(paths) > limit else "")


class _HFFormat(BaseFormat):
    """Shared detection scaffolding and file selection for transformers-style checkpoints."""

    weights_kind: ClassVar[str] = "safetensors"

    def _detection(
        self, listing: RepoListing, extra: list[str], quantization: str | None, side_files: tuple[str, ...] = ()
    ) -> Detection | None:
        weights = _find_weights(listing, self.weights_kind)
        if weights is None:
            return None
        return Detection(
            format=self.name,
            evidence=(*extra, *weights.evidence),
            quantization=quantization,
            # Side files detection relied on (quantize_config.json): the engine reads them too, so they are fetched.
            details={"weights": weights.paths, "index": weights.index, "side_files": side_files},
        )

    def select_files(self, listing: RepoListing, detection: Detection, context: SelectionContext) -> FileSelection:
        weights: tuple[str, ...] = tuple(detection.details["weights"])
        index: str | None = detection.details.get("index")
        check_shards_complete(listing, weights, index_path=index)
        notes: list[str] = []
        support = support_files(listing)
        code: list[str] = []
        config = listing.config
        if config is None or "auto_map" in config:
            # Custom modelling code (trust_remote_code) is only needed when config.json's auto_map names it.
            code = [f.path for f in listing.files if f.folder == "" and f.suffix == ".py"]
            if code and config is None:
                notes.append(
                    f"config.json was not read, so the {len(code)} custom-code file(s) at the repo root are "
                    "fetched in case its auto_map needs them, but the plan does not pass --trust-remote-code "
                    "(only an auto_map seen in config.json turns it on). If config.json has an auto_map, "
                    "re-plan online, or from a recording that includes config.json, to get it."
                )
        side = tuple(detection.details.get("side_files", ()))
        files = unique([*weights, *([index] if index else []), *support, *side, *code])
        patterns = [escape_pattern(p) for p in files]
        if not listing.complete:
            extra = [n for n in (*CONFIG_FILES, *TOKENIZER_FILES) if n not in files]
            patterns.extend(extra)
            notes.append(
                "The listing is partial, so standard config/tokenizer file names are also requested by "
                "pattern (snapshot_download skips the ones that do not exist)."
            )
        if not has_tokenizer(listing) and not listing.has(MISTRAL_TOKENIZER):
            notes.append(
                "No tokenizer file was seen in the listing; vLLM needs one (pass --tokenizer if it lives elsewhere)."
            )
        total, basis, estimated = _size(listing, weights, files)
        return FileSelection(
            files=files,
            weight_files=weights,
            allow_patterns=tuple(dict.fromkeys(patterns)),
            download_bytes=total,
            bytes_estimated=estimated,
            bytes_basis=basis,
            excluded=_exclusions(listing, set(files), self.weights_kind),
            notes=tuple(notes),
            model_file=None,
            weight_bytes=self.weight_bytes(listing, detection),
        )

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        """Bytes per weight as this format stores them; None: sized by config.json's torch_dtype or not known."""
        return None


def _size(listing: RepoListing, weights: tuple[str, ...], files: tuple[str, ...]) -> tuple[int | None, str, bool]:
    """Download bytes, how they were obtained, and whether that is an estimate."""
    weight_bytes, exact = listing.total_size(weights)
    if weight_bytes is None:
        st = listing.safetensors
        if st is not None and st.parameters:
            nbytes = sum(int(n * _DTYPE_BYTES.get(dtype.upper(), 2)) for dtype, n in st.parameters.items())
            return nbytes, "estimate: the Hub's safetensors parameter counts x bytes per dtype", True
        return None, "unknown: the listing has no sizes and no parameter counts", True
    weight_set = set(weights)
    others = [listing.get(p) for p in files if p not in weight_set]
    unknown = sum(1 for f in others if f is None or f.size is None)
    total = weight_bytes + sum(f.size for f in others if f is not None and f.size is not None)
    exact = exact and all(f.size_exact for f in others if f is not None and f.size is not None)
    basis = "listing sizes" + ("" if exact else " (rounded Hub display sizes, ±0.5 %)")
    if unknown:
        basis += f"; {unknown} small file(s) of unknown size not counted"
    return total, basis, not exact or unknown > 0


# Bytes per parameter of the dtypes the Hub reports in `safetensors.parameters`.
_DTYPE_BYTES: Mapping[str, float] = {
    "F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
    "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip


# Files excluded from transformers-style plans, by reason; the first rule matching (file, the weights
# kind chosen) names the reason.
_EXCLUSION_RULES: tuple[tuple[str, Callable[[RepoFile, str], bool]], ...] = (
    ("training state, not weights", lambda f, kind: f.name in _TRAINING_STATE),
    ("LoRA adapter files", lambda f, kind: f.name.startswith("adapter_")),
    (
        "duplicate PyTorch pickle weights (safetensors chosen)",
        lambda f, kind: kind == "safetensors" and f.suffix == ".bin" and f.folder == "",
    ),
    ("Mistral/Meta-native duplicate weights", lambda f, kind: f.name.startswith("consolidated.")),
    ("Meta's original checkpoint folder", lambda f, kind: f.path.startswith("original/")),
    ("GGUF files (another format)", lambda f, kind: f.name.endswith(".gguf") or ".gguf.part" in f.name),
    ("ONNX / TensorFlow / Flax exports", lambda f, kind: f.suffix in {".onnx", ".h5", ".msgpack", ".tflite"}),
    ("PyTorch checkpoints that are not transformers weights", lambda f, kind: f.suffix in {".pt", ".pth", ".ckpt"}),
    ("documentation and repo metadata", lambda f, kind: f.suffix in {".md", ".txt", ""} or f.name.startswith(".")),
    ("images", lambda f, kind: f.suffix in {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}),
)


def _exclusions(listing: RepoListing, chosen: set[str], weights_kind: str) -> tuple[Exclusion, ...]:
    grouped: dict[str, list[str]] = {}
    for f in listing.files:
        if f.path in chosen:
            continue
        reason = next((r for r, match in _EXCLUSION_RULES if match(f, weights_kind)), "not needed by the engine")
        grouped.setdefault(reason, []).append(f.path)
    return tuple(Exclusion(reason=r, paths=tuple(p)) for r, p in grouped.items())


# --- the strategies -----------------------------------------------------------------------------


# vLLM's HF weights loader reads unquantized checkpoints; torch_dtype sizes them and sets the floor.
_UNQUANTIZED = ServingFacts(engines=("vllm",), weights_in_torch_dtype=True)


class SafeTensorsFormat(_HFFormat):
    name = "safetensors"
    priority = 50
    description = "transformers safetensors weights (single file or sharded with an index)"
    serving = _UNQUANTIZED

    def detect(self, listing: RepoListing) -> Detection | None:
        # A quant method this module has no dedicated strategy for still rides along (vLLM reads it from config).
        method = config_quant_method(listing)
        extra = [f"config.json quantization_config.quant_method = {method!r}"] if method else []
        return self._detection(listing, extra, method)

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        # Plain safetensors carrying a method no strategy of its own claims: MXFP4 (gpt-oss) is sized here.
        qc = _quantization_config(listing)
        return unclaimed_method_bytes(qc) if qc is not None else None


class PyTorchBinFormat(_HFFormat):
    name = "pytorch"
    priority = 40
    description = "transformers PyTorch pickle weights (pytorch_model*.bin, single or sharded)"
    weights_kind = "bin"
    serving = _UNQUANTIZED

    def detect(self, listing: RepoListing) -> Detection | None:
        return self._detection(listing, [], config_quant_method(listing))


@dataclass(frozen=True, kw_only=True, slots=True)
class QuantSignals:
    """How a quantized-safetensors family shows itself, strongest signal first."""

    quant_methods: frozenset[str]  # config.json quantization_config.quant_method values
    files: tuple[str, ...] = ()  # side files its tooling writes
    tags: frozenset[str] = frozenset()  # Hub tags the Hub derives from config.json


class _QuantizedFormat(_HFFormat):
    """A quantized-safetensors family; `serving.vllm_quantization` is its method when config.json is unread."""

    signals: ClassVar[QuantSignals]

    def detect(self, listing: RepoListing) -> Detection | None:
        method = config_quant_method(listing)
        evidence: list[str] = []
        if method is not None:
            if method not in self.signals.quant_methods:
                return None  # config.json is authoritative when it was read
            evidence.append(f"config.json quantization_config.quant_method = {method!r}")
        else:
            evidence += [
                f"{name} present (written by {self.name} tooling)" for name in self.signals.files if listing.has(name)
            ]
            tags = sorted(self.signals.tags & listing.tag_set)
            evidence += [f"Hub tag {t!r} (derived by the Hub from config.json)" for t in tags]
            if not evidence:
                return None
        # vLLM reads quantize_config.json (and kin) when config.json has no quantization_config: fetch what is there.
        side = tuple(name for name in self.signals.files if listing.has(name))
        return self._detection(listing, evidence, method if method else self.serving.vllm_quantization, side)


class GPTQFormat(_QuantizedFormat):
    name = "gptq"
    priority = 80
    description = "GPTQ-quantized safetensors (AutoGPTQ / GPTQModel / optimum)"
    serving = ServingFacts(
        engines=("vllm",),
        vllm_quantization="gptq",
        capability_floor=CapabilityFloor(
            key="gptq",
            minimum=(6, 0),
            source="vllm 0.33.0 vllm/model_executor/layers/quantization/auto_gptq.py:182",
            reason="vLLM's GPTQ kernels",
        ),
    )
    signals = QuantSignals(
        quant_methods=frozenset({"gptq"}),
        files=("quantize_config.json", "quantization_config.json"),
        tags=frozenset({"gptq"}),
    )

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        qc = _quantization_config(listing)
        return gptq_bytes(qc) if qc is not None else None


class AWQFormat(_QuantizedFormat):
    name = "awq"
    priority = 84
    description = "AWQ-quantized safetensors (AutoAWQ / llm-compressor)"
    serving = ServingFacts(
        engines=("vllm",),
        vllm_quantization="awq",
        capability_floor=CapabilityFloor(
            key="awq",
            minimum=(7, 5),
            source=(
                "vllm 0.33.0 vllm/model_executor/layers/quantization/auto_awq.py:233 "
                "(0.23.0 awq.py:75, awq_marlin.py:225)"
            ),
            reason="vLLM's AWQ kernels",
        ),
    )
    signals = QuantSignals(
        quant_methods=frozenset({"awq"}),
        files=("quant_config.json",),
        tags=frozenset({"awq"}),
    )

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        qc = _quantization_config(listing)
        return awq_bytes(qc) if qc is not None else None


class CompressedTensorsFormat(_QuantizedFormat):
    name = "compressed-tensors"
    # Above FP8: an FP8 checkpoint written by llm-compressor is compressed-tensors on disk.
    priority = 82
    description = "llm-compressor compressed-tensors checkpoints (FP8, INT8, W4A16, ...)"
    serving = ServingFacts(
        engines=("vllm",),
        vllm_quantization="compressed-tensors",
        capability_floor=CapabilityFloor(
            key="compressed-tensors",
            minimum=(7, 0),
            source=("vllm 0.33.0 vllm/model_executor/layers/quantization/compressed_tensors/compressed_tensors.py:123"),
            reason="the compressed-tensors floor; its FP8 schemes want 8.9 for native kernels (pass 'fp8')",
        ),
    )
    signals = QuantSignals(quant_methods=frozenset({"compressed-tensors"}), tags=frozenset({"compressed-tensors"}))

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        qc = _quantization_config(listing)
        if qc is not None:
            return compressed_tensors_bytes(qc)
        # Without config.json the scheme is unknown, unless the Hub's 'fp8' tag fixes the width (1 B).
        return fp8_bytes(None, evidence="the Hub tag 'fp8'") if "fp8" in listing.tag_set else None


class FP8Format(_QuantizedFormat):
    name = "fp8"
    priority = 81
    description = "FP8 safetensors with quant_method 'fp8' / 'fbgemm_fp8'"
    serving = ServingFacts(
        engines=("vllm",),
        vllm_quantization="fp8",
        capability_floor=CapabilityFloor(
            key="fp8",
            minimum=(8, 9),
            source=(
                "vllm 0.33.0 vllm/platforms/cuda.py:587 supports_fp8() = has_device_capability(89); "
                "below it Fp8Config (fp8.py:146, floor 7.5) falls back to weight-only Marlin kernels"
            ),
            reason="native FP8 tensor cores (Ada/Hopper and newer)",
        ),
    )
    signals = QuantSignals(quant_methods=frozenset({"fp8", "fbgemm_fp8"}), tags=frozenset({"fp8"}))

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        # FP8 is 1 B per weight whatever the config says; without one the 16-bit layers are assumed.
        return fp8_bytes(_quantization_config(listing))


class BitsAndBytesFormat(_QuantizedFormat):
    name = "bitsandbytes"
    priority = 83
    description = "bitsandbytes 4-bit / 8-bit pre-quantized safetensors"
    serving = ServingFacts(
        engines=("vllm",),
        vllm_quantization="bitsandbytes",
        capability_floor=CapabilityFloor(
            key="bitsandbytes",
            minimum=(7, 0),
            source=(
                "vllm 0.23.0 vllm/model_executor/layers/quantization/bitsandbytes.py:104; "
                "vllm-bnb-plugin 0.0.3 vllm_bnb_plugin/quantization/config.py:76-77"
            ),
            reason="bitsandbytes kernels",
        ),
        vllm_plugin=VllmQuantPlugin(
            method="bitsandbytes",
            requirement="vllm-bnb-plugin==0.0.3",
            plugin_name="bitsandbytes",
            source=(
                "vllm_bnb_plugin-0.0.3 entry_points.txt [vllm.general_plugins] bitsandbytes = "
                "vllm_bnb_plugin:register; register() adds quantization and load format 'bitsandbytes' "
                "(vllm_bnb_plugin/__init__.py:60-70) and sets the load format from config.json (:45-52)"
            ),
            left_vllm_in="0.28.0",
            refuses_tensor_parallel=(
                "vllm-bnb-plugin 0.0.3 refuses pre-quantized bitsandbytes checkpoints with tensor "
                "parallelism (vllm_bnb_plugin/bitsandbytes_loader.py:600-605); use one GPU that holds the "
                "model, or pipeline parallelism"
            ),
            moe_caveat=(
                "vllm-bnb-plugin 0.0.3 refuses 8-bit pre-quantized MoE checkpoints "
                "(vllm_bnb_plugin/bitsandbytes_loader.py:522-527); 4-bit ones load"
            ),
        ),
    )
    signals = QuantSignals(quant_methods=frozenset({"bitsandbytes"}), tags=frozenset({"bitsandbytes"}))

    def weight_bytes(self, listing: RepoListing, detection: Detection) -> WeightBytes | None:
        qc = _quantization_config(listing)
        return bitsandbytes_bytes(qc) if qc is not None else None
