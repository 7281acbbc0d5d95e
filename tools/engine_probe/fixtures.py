"""Write the probe's inputs: a tiny GGUF per layout (with the `gguf` package) and its HF config dir.

    <root>/<layout>/model-Q8_0.gguf          the GGUF alone in its directory
    <root>/<layout>/split/model-Q8_0-0000k-of-0000n.gguf   (dense llama only) a gguf-split file set
    <root>/<layout>-hf/config.json           what --hf-config-path / --tokenizer point to
    <root>/<layout>-hf-<model_type>/config.json   the layout's alternative configs (layouts.py)

Quantization follows llama-quant.cpp: matrices become Q8_0, 1-D tensors (norms, biases) and the
router (`ffn_gate_inp*`, which llama.cpp never quantizes) stay F32. Values are seeded per layout so
the files are identical on every run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from tools.engine_probe.layouts import LAYOUTS, VOCAB, Layout, layout_tensors

QUANT = "Q8_0"
GGUF_NAME = f"model-{QUANT}.gguf"
# The split variant keeps 8 tensors per file: the tiny dense llama (21 tensors) becomes 3 files.
SPLIT_LAYOUT = "llama"
SPLIT_MAX_TENSORS = 8


def _unquantized(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) < 2 or ".ffn_gate_inp" in name


def _add_metadata(writer: gguf.GGUFWriter, layout: Layout) -> None:
    writer.add_name(f"probe {layout.name}")
    for key, value in layout.metadata.items():
        full = f"{layout.arch}.{key}"
        if isinstance(value, bool):
            writer.add_bool(full, value)
        elif isinstance(value, int):
            writer.add_uint32(full, value)
        else:
            writer.add_float32(full, float(value))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # A byte-level vocabulary of VOCAB tokens: 3 specials, then single characters.
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(VOCAB - 3))]
    writer.add_tokenizer_model(layout.tokenizer_model)
    writer.add_token_list(tokens)
    writer.add_token_types([2, 3, 3, *([6] * (VOCAB - 3))])
    if layout.tokenizer_model == "llama":
        writer.add_token_scores([0.0] * VOCAB)
    else:
        writer.add_tokenizer_pre("default")
        writer.add_token_merges(["<0x41> <0x42>"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)


def write_gguf(layout: Layout, path: Path, *, split_max_tensors: int = 0) -> list[Path]:
    """Write one layout as GGUF; returns the files written (several when split)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, layout.arch, split_max_tensors=split_max_tensors)
    _add_metadata(writer, layout)
    rng = np.random.default_rng(int(hashlib.sha256(layout.name.encode()).hexdigest()[:8], 16))
    for name, shape in layout_tensors(layout).items():
        data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if _unquantized(name, shape):
            writer.add_tensor(name, data)
        else:
            qtype = gguf.GGMLQuantizationType[QUANT]
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
    return [path]


def write_all(root: Path) -> dict[str, Any]:
    """Write every layout's files under `root`; return {layout: {gguf, split, hf_config_dir, tensors}}."""
    out: dict[str, Any] = {}
    for layout in LAYOUTS:
        gguf_path = root / layout.name / GGUF_NAME
        write_gguf(layout, gguf_path)
        hf_dir = root / f"{layout.name}-hf"
        hf_dir.mkdir(parents=True, exist_ok=True)
        (hf_dir / "config.json").write_text(json.dumps(dict(layout.hf_config), indent=2, sort_keys=True))
        entry: dict[str, Any] = {
            "gguf": str(gguf_path),
            "hf_config_dir": str(hf_dir),
            "tensors": sorted(layout_tensors(layout)),
        }
        entry["alt_hf_config_dirs"] = {}
        for model_type, config in layout.alt_hf_configs.items():
            alt_dir = root / f"{layout.name}-hf-{model_type}"
            alt_dir.mkdir(parents=True, exist_ok=True)
            (alt_dir / "config.json").write_text(json.dumps(dict(config), indent=2, sort_keys=True))
            entry["alt_hf_config_dirs"][model_type] = str(alt_dir)
        if layout.name == SPLIT_LAYOUT:
            files = write_gguf(layout, root / layout.name / "split" / GGUF_NAME, split_max_tensors=SPLIT_MAX_TENSORS)
            entry["split"] = [str(f) for f in files]
        out[layout.name] = entry
    return out
