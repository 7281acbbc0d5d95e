"""`convert_gguf`: a GGUF (one file or a split set) -> a Hugging Face safetensors checkpoint directory.

Streaming: the `gguf` package's GGUFReader reads the header and tensor offsets; tensor bytes are read
with positioned reads in chunks of rows (a quantized GGUF row is whole blocks, so a row range
dequantizes alone), decoded (`_decode.decode`: exactly the `gguf` package's dequantize, encoded) on a
few threads and written in order (`_stream`). Peak memory is the chunks in flight (at most
`_stream.WORKING_BYTES`; a Q/K tensor, whose rows are un-permuted together, is one chunk), never the
model. Everything is written under a temporary sibling of the output directory, flushed to disk and
renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelformats.convert._config import (
    HeaderFacts,
    check_llama3_rope,
    config_from_base,
    config_from_header,
    generation_config,
)
from modelformats.convert._layouts import EXPERT, ConversionLayout, ConversionLayouts, default_layouts
from modelformats.convert._safetensors import DTYPES, TensorSpec, plan_shards, shard_header
from modelformats.convert._stream import Piece, in_order, jobs, run_job
from modelformats.errors import ConversionError
from modelformats.gguf.hf_names import QK_PERMUTED_MODULES
from modelformats.naming import parse_shard_name

__all__ = ["ConvertProgress", "ConvertResult", "convert_gguf"]

DEFAULT_SHARD_BYTES = 5 * 1024**3
# GGUF tensors with no HF parameter, and why dropping them loses nothing.
_DERIVED_TENSORS = {"rope_freqs.weight": "llama3 rope factors, recomputed from config.json rope_parameters"}
# Files copied from --base (config and tokenizer); weights are never taken from it.
_BASE_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConvertProgress:
    """Reported after every written tensor."""

    tensor: str
    done_tensors: int
    total_tensors: int
    done_bytes: int
    total_bytes: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ConvertResult:
    """What `convert_gguf` wrote."""

    out: Path
    gguf_architecture: str
    hf_architecture: str
    dtype: str
    tensors: int
    shards: int
    bytes_written: int
    source_bytes: int
    tokenizer: str  # "base" or "gguf"
    generation_config: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "gguf_architecture": self.gguf_architecture,
            "hf_architecture": self.hf_architecture,
            "dtype": self.dtype,
            "tensors": self.tensors,
            "shards": self.shards,
            "bytes_written": self.bytes_written,
            "source_bytes": self.source_bytes,
            "tokenizer": self.tokenizer,
            "generation_config": self.generation_config,
        }


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise ConversionError(
            "a GGUF", "the `gguf` package is not installed", "pip install 'modelformats[gguf]'"
        ) from None
    return gguf


def _split_files(path: Path) -> list[Path]:
    shard = parse_shard_name(path.name)
    if shard is None:
        return [path]
    files = [path.with_name(shard.sibling(i)) for i in range(1, shard.total + 1)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConversionError(
            str(path),
            f"it is part {shard.index} of {shard.total} of a split GGUF and {', '.join(missing)} is missing",
            "download every part into the same folder",
        )
    return files


def _scalar_fields(reader: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or len(field.types) != 1:
            continue  # arrays (token lists) are not config values
        value = field.contents()
        # A float32 header value as its shortest decimal (1e-05, not 9.999999747378752e-06).
        values[key] = float(str(np.float32(value))) if isinstance(value, float) else value
    return values


def _check_quant_types(source: str, gguf: Any, types: set[int]) -> None:
    from gguf.quants import dequantize

    refused = []
    for qtype in sorted(types):
        kind = gguf.GGMLQuantizationType(qtype)
        _, size = gguf.GGML_QUANT_SIZES[kind]
        try:
            dequantize(np.zeros((1, size), dtype=np.uint8), kind)
        except (NotImplementedError, ValueError):
            refused.append(kind.name)
    if refused:
        raise ConversionError(
            source,
            f"the gguf package cannot dequantize tensor type(s) {', '.join(refused)} (ARM/CPU repacks and "
            "types gguf-py has no reference dequantizer for)",
            "convert a GGUF of another quant of the same model (Q8_0, Q6_K, Q4_K_M, F16, ...)",
        )


def convert_gguf(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    dtype: str = "bfloat16",
    base: str | os.PathLike[str] | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    layouts: ConversionLayouts | None = None,
    progress: Callable[[ConvertProgress], None] | None = None,
) -> ConvertResult:
    """Convert the GGUF at `path` (for a split GGUF, any part) into an HF checkpoint directory `out`.

    `dtype`: bfloat16 (default), float16 or float32. `base`: a local directory with the original model's
    config.json and tokenizer (taken from there, checked against the GGUF); without it, config.json comes
    from the GGUF header and the tokenizer from the GGUF's tokenizer metadata (needs transformers).
    """
    source = Path(path)
    target = Path(out)
    if dtype not in DTYPES:
        raise ConversionError(str(source), f"dtype {dtype!r} is not one of {sorted(DTYPES)}", "pass --dtype bfloat16")
    if not source.is_file():
        raise ConversionError(str(source), "no such file", "name a local .gguf file")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConversionError(
            str(source), f"the output {target} exists and is not empty", "pass a new --out directory, or remove it"
        )
    gguf = _gguf()
    files = _split_files(source)
    readers = [gguf.GGUFReader(str(f)) for f in files]
    values = _scalar_fields(readers[0])
    architecture = str(values.get("general.architecture", ""))
    tensors = {t.name: (i, t) for i, reader in enumerate(readers) for t in reader.tensors}
    expert_count = int(values.get(f"{architecture}.expert_count") or 0)
    registry = layouts or default_layouts()
    layout = registry.find(architecture, expert_count > 0)
    if layout is None:
        raise ConversionError(
            str(source),
            f"GGUF architecture {architecture!r}{' with experts' if expert_count else ''} has no conversion "
            f"layout; supported: {', '.join(registry.supported())}",
            "serve this GGUF with llama.cpp (modelformats plan --engine llamacpp)",
        )
    _check_quant_types(str(source), gguf, {int(t.tensor_type) for _, t in tensors.values()})
    if "token_embd.weight" not in tensors:
        raise ConversionError(str(source), "it has no token_embd.weight tensor", "use a complete GGUF file")
    facts = HeaderFacts(
        source=str(source),
        architecture=architecture,
        values=values,
        vocab_size=int(tensors["token_embd.weight"][1].shape[1]),
        tied_embeddings="output.weight" not in tensors,
        has_rope_freqs="rope_freqs.weight" in tensors,
    )
    base_dir = Path(base) if base is not None else None
    config = _config(facts, layout, base_dir, dtype=dtype, tensors=tensors)
    layers = int(facts.require("block_count"))
    name_map = layout.name_map(layers, gguf.get_tensor_name_map(gguf.MODEL_ARCH[architecture.upper()], layers).get_name)
    head_count = int(facts.require("attention.head_count"))
    heads = {
        "attention.head_count": head_count,
        "attention.head_count_kv": int(facts.model("attention.head_count_kv") or head_count),
    }
    pieces = _pieces(source=str(source), layout=layout, tensors=tensors, name_map=name_map, heads=heads)
    return _write(
        source=source,
        target=target,
        layout=layout,
        files=files,
        pieces=pieces,
        config=config,
        facts=facts,
        base=base_dir,
        dtype=dtype,
        max_shard_bytes=max_shard_bytes,
        progress=progress,
    )


def _config(
    facts: HeaderFacts, layout: ConversionLayout, base: Path | None, *, dtype: str, tensors: Mapping[str, Any]
) -> dict[str, Any]:
    if base is None:
        return config_from_header(facts, layout, dtype=dtype)
    config_file = base / "config.json"
    if not config_file.is_file():
        raise ConversionError(facts.source, f"--base {base} has no config.json", "pass the original model's folder")
    config = config_from_base(
        facts, layout, json.loads(config_file.read_text(encoding="utf-8")), base_name=str(base), dtype=dtype
    )
    if facts.has_rope_freqs:
        _, rope = tensors["rope_freqs.weight"]
        check_llama3_rope(facts.source, config, [float(v) for v in np.asarray(rope.data)], base_name=str(base))
    return config


def _pieces(
    *,
    source: str,
    layout: ConversionLayout,
    tensors: Mapping[str, tuple[int, Any]],
    name_map: Mapping[str, str],
    heads: Mapping[str, int],
) -> list[Piece]:
    unmapped = sorted(set(tensors) - set(name_map) - set(_DERIVED_TENSORS))
    if unmapped:
        shown = ", ".join(unmapped[:6]) + (f" (+{len(unmapped) - 6} more)" if len(unmapped) > 6 else "")
        raise ConversionError(
            source,
            f"{len(unmapped)} tensor(s) have no {layout.hf_architecture} parameter: {shown}",
            "this GGUF's layout is not the one its architecture key says; serve it with llama.cpp",
        )
    # The head counts llama.cpp permuted with (its header's, which config_from_base checked against --base).
    by_module = {suffix: heads[key] for suffix, key in QK_PERMUTED_MODULES.items()}
    pieces: list[Piece] = []
    for gguf_name, (file, tensor) in tensors.items():
        if gguf_name in _DERIVED_TENSORS:
            continue
        hf_name = name_map[gguf_name]
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))  # GGUF ne -> row-major
        rows_total = int(tensor.n_elements) // shape[-1]
        row_bytes = int(tensor.n_bytes) // rows_total
        qtype = int(tensor.tensor_type)
        module = hf_name.rpartition(".")[0]
        unpermute = next(
            (n for suffix, n in by_module.items() if layout.qk_permuted and module.endswith(f".{suffix}")), None
        )
        if EXPERT in hf_name:
            experts, rows = shape[0], rows_total // shape[0]
            pieces += [
                Piece(
                    spec=TensorSpec(name=hf_name.replace(EXPERT, str(e)), shape=shape[1:]),
                    file=file,
                    offset=int(tensor.data_offset) + e * rows * row_bytes,
                    rows=rows,
                    row_bytes=row_bytes,
                    qtype=qtype,
                    unpermute_heads=None,
                )
                for e in range(experts)
            ]
        else:
            pieces.append(
                Piece(
                    spec=TensorSpec(name=hf_name, shape=shape),
                    file=file,
                    offset=int(tensor.data_offset),
                    rows=rows_total,
                    row_bytes=row_bytes,
                    qtype=qtype,
                    unpermute_heads=unpermute,
                )
            )
    pieces.sort(key=lambda p: _hf_order(p.spec.name))
    return pieces


def _hf_order(name: str) -> tuple[int, int, str]:
    """model.embed_tokens, then layers in numeric order (experts numerically), then the rest."""
    parts = name.split(".")
    if name.startswith("model.layers."):
        expert = int(parts[parts.index("experts") + 1]) if "experts" in parts else -1
        return (1, int(parts[2]), f"{'.'.join(parts[3:])}|{expert:08d}")
    return (0 if "embed" in name else 2, 0, name)


def _write(
    *,
    source: Path,
    target: Path,
    layout: ConversionLayout,
    files: list[Path],
    pieces: list[Piece],
    config: dict[str, Any],
    facts: HeaderFacts,
    base: Path | None,
    dtype: str,
    max_shard_bytes: int,
    progress: Callable[[ConvertProgress], None] | None,
) -> ConvertResult:
    size = DTYPES[dtype][1]
    total_bytes = sum(p.spec.elements * size for p in pieces)
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < total_bytes:
        raise ConversionError(
            str(source),
            f"the checkpoint needs {total_bytes / 1e9:.2f} GB but {parent} has {free / 1e9:.2f} GB free",
            "free disk space, pass --out on a bigger disk, or --dtype bfloat16 (half of float32)",
        )
    partial = parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        shards = plan_shards([p.spec for p in pieces], dtype=dtype, max_shard_bytes=max_shard_bytes)
        by_name = {p.spec.name: p for p in pieces}
        handles = [f.open("rb") for f in files]
        written = done = 0
        try:
            for shard in shards:
                with (partial / shard.filename).open("wb") as handle:
                    handle.write(shard_header(shard, dtype=dtype, metadata={"format": "pt"}))
                    chunks = jobs(by_name[spec.name] for spec in shard.tensors)
                    for job, data in in_order(chunks, lambda job: run_job(handles[job.piece.file], job, dtype)):
                        handle.write(np.ascontiguousarray(data).data)  # the array's buffer, no copy
                        written += data.nbytes
                        if not job.last:
                            continue
                        done += 1
                        if progress is not None:
                            progress(
                                ConvertProgress(
                                    tensor=job.piece.spec.name,
                                    done_tensors=done,
                                    total_tensors=len(pieces),
                                    done_bytes=written,
                                    total_bytes=total_bytes,
                                )
                            )
        finally:
            for h in handles:
                h.close()
        if len(shards) > 1:
            index = {
                "metadata": {"total_size": total_bytes},
                "weight_map": {spec.name: shard.filename for shard in shards for spec in shard.tensors},
            }
            _write_json(partial / "model.safetensors.index.json", index)
        _write_json(partial / "config.json", config)
        generation = _support_files(partial, base=base, source=source, facts=facts)
        tokenizer = "base" if base is not None else "gguf"
        _sync_files(partial)  # on disk before the final name appears (a crash cannot leave holes there)
        if target.exists():
            target.rmdir()  # checked empty above
        partial.rename(target)
        _sync_files(parent, directory=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ConvertResult(
        out=target,
        gguf_architecture=layout.gguf_architecture,
        hf_architecture=str(config["architectures"][0]),
        dtype=dtype,
        tensors=len(pieces),
        shards=len(shards),
        bytes_written=written,
        source_bytes=sum(f.stat().st_size for f in files),
        tokenizer=tokenizer,
        generation_config=generation,
    )


def _sync_files(folder: Path, *, directory: bool = False) -> None:
    """fsync every file in `folder` (or, with `directory`, the folder's own entries)."""
    paths = [folder] if directory else [p for p in folder.iterdir() if p.is_file()]
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _support_files(partial: Path, *, base: Path | None, source: Path, facts: HeaderFacts) -> bool:
    """Tokenizer and generation_config.json; True when a generation_config.json was written."""
    if base is not None:
        for name in _BASE_FILES:
            if (base / name).is_file():
                shutil.copyfile(base / name, partial / name)
        if not any((partial / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
            raise ConversionError(
                str(source), f"--base {base} has no tokenizer files", "pass the original model's folder"
            )
    else:
        _tokenizer_from_gguf(source, partial, facts)
    if (partial / "generation_config.json").is_file():
        return True
    generation = generation_config(facts)
    if generation is not None:
        _write_json(partial / "generation_config.json", generation)
    return generation is not None


def _tokenizer_from_gguf(source: Path, out: Path, facts: HeaderFacts) -> None:
    """The GGUF's own tokenizer metadata, rebuilt by transformers' GGUF tokenizer support."""
    try:
        import transformers
    except ImportError:
        raise ConversionError(
            str(source),
            "rebuilding the tokenizer from the GGUF needs transformers, which is not installed",
            "pip install transformers, or pass --base DIR with the original model's tokenizer files",
        ) from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    except Exception as exc:  # transformers raises many types for an unsupported tokenizer model
        raise ConversionError(
            str(source),
            f"transformers cannot rebuild the GGUF's tokenizer ({type(exc).__name__}: {exc})",
            "pass --base DIR with the original model's tokenizer files",
        ) from exc
    # transformers' GGUF tokenizer ignores llama.cpp's add_bos/add_eos flags; without them a Llama
    # prompt would lose its BOS token (proven by `nox -s gguf_convert_proof`).
    for flag in ("add_bos_token", "add_eos_token"):
        wanted = facts.values.get(f"tokenizer.ggml.{flag}")
        if wanted is not None and hasattr(tokenizer, flag):
            setattr(tokenizer, flag, bool(wanted))
    tokenizer.save_pretrained(str(out))
