"""Tiny GGUF files in real llama.cpp layouts, written with the `gguf` package (no model download).

Two layouts, both `general.architecture = llama`:
- `llama`: dense, `blk.N.ffn_{gate,up,down}.weight`;
- `llama-moe`: the target's layout (a Mixtral as llama.cpp's converter stores it):
  `llama.expert_count`/`expert_used_count`, `blk.N.ffn_gate_inp.weight` and merged 3-D
  `blk.N.ffn_{gate,up,down}_exps.weight` (llama.cpp src/models/llama.cpp:78-82).
Weights are random but shaped so greedy decoding never picks a control or byte token: every
generated token is printable text, and EOS never ends a reply early (see `_suppress_rows`).
The vocabulary is SentencePiece-style (`tokenizer.ggml.model = "llama"`) with all 256 byte-fallback
tokens, and the file carries a Jinja chat template, so `llama-server --jinja` needs nothing else.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import TokenType

__all__ = [
    "CHAT_TEMPLATE",
    "LAYOUTS",
    "QUANTS",
    "TinyShape",
    "join_parts",
    "split_bytes",
    "write_tiny_gguf",
]

LAYOUTS = ("llama", "llama-moe")
QUANTS = ("F32", "Q8_0")

# Zephyr-style: role markers are plain text, so the tiny vocabulary needs no extra special tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_WORDS = (
    "Hello",
    "Testing",
    "GGUF",
    "format",
    "support",
    "What",
    "is",
    "a",
    "Mixture",
    "of",
    "Experts",
    "model",
    "Thank",
    "you",
    "for",
    "the",
    "demonstration",
    "user",
    "assistant",
    "system",
)


class TinyShape:
    """Hyper-parameters small enough to write in milliseconds (about 2.3M parameters).

    Row lengths (n_embd, n_ff) are 256 so that llama-quantize can store real K-quant blocks
    (QK_K = 256); with 64 it would silently fall back to Q5_0/Q8_0 for those tensors.
    """

    n_layer = 2
    n_embd = 256
    n_ff = 256
    n_head = 4
    n_head_kv = 2
    n_expert = 4
    n_expert_used = 2
    context_length = 2048


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """SentencePiece-style pieces: unk/bos/eos, 256 byte tokens, characters, then whole words."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    # llama.cpp's SPM tokenizer falls back to `<0xXX>` pieces for any byte it cannot cover and
    # looks them up with .at() (llama-vocab.cpp:193): all 256 must exist.
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    chars = ["▁", *string.ascii_letters, *string.digits, *".,!?'-:|<>/\n"]
    words = [f"▁{w}" for w in _WORDS] + ["<|", "|>"]
    tokens += chars + words
    types += [TokenType.NORMAL] * (len(chars) + len(words))
    # SPM merges the pair whose merged piece scores highest: longer pieces win.
    scores = [0.0] * (3 + 256) + [-100.0] * len(chars) + [float(len(w)) for w in words]
    return tokens, scores, [int(t) for t in types]


def _suppress_rows(output: Any, rows: int) -> None:
    """Make greedy decoding never choose token ids < `rows` (control and byte tokens).

    Every embedding has a constant 4.0 in dimension 0, so after RMSNorm that dimension is large and
    positive for any input; an output row of -10 there makes those logits about -70 against
    others of order 1.
    """
    output[:rows, 0] = -10.0


def _tensors(layout: str, vocab_size: int, seed: int) -> dict[str, Any]:
    s = TinyShape
    rng = np.random.default_rng(seed)
    head_dim = s.n_embd // s.n_head

    def rand(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    ones = np.ones(s.n_embd, dtype=np.float32)
    token_embd = rand(vocab_size, s.n_embd) * 2
    token_embd[:, 0] = 4.0
    output = rand(vocab_size, s.n_embd) * 10
    _suppress_rows(output, 3 + 256)
    # numpy shapes are ggml shapes reversed: ggml {n_embd, n_vocab} is (n_vocab, n_embd) here.
    out: dict[str, Any] = {
        "token_embd.weight": token_embd,
        "output_norm.weight": ones,
        "output.weight": output,
    }
    for i in range(s.n_layer):
        p = f"blk.{i}."
        out[p + "attn_norm.weight"] = ones
        out[p + "attn_q.weight"] = rand(s.n_head * head_dim, s.n_embd)
        out[p + "attn_k.weight"] = rand(s.n_head_kv * head_dim, s.n_embd)
        out[p + "attn_v.weight"] = rand(s.n_head_kv * head_dim, s.n_embd)
        out[p + "attn_output.weight"] = rand(s.n_embd, s.n_head * head_dim)
        out[p + "ffn_norm.weight"] = ones
        if layout == "llama":
            out[p + "ffn_gate.weight"] = rand(s.n_ff, s.n_embd)
            out[p + "ffn_up.weight"] = rand(s.n_ff, s.n_embd)
            out[p + "ffn_down.weight"] = rand(s.n_embd, s.n_ff)
        else:
            out[p + "ffn_gate_inp.weight"] = rand(s.n_expert, s.n_embd)
            out[p + "ffn_gate_exps.weight"] = rand(s.n_expert, s.n_ff, s.n_embd)
            out[p + "ffn_up_exps.weight"] = rand(s.n_expert, s.n_ff, s.n_embd)
            out[p + "ffn_down_exps.weight"] = rand(s.n_expert, s.n_embd, s.n_ff)
    return out


def _keep_f32(name: str, array: Any) -> bool:
    # As llama-quantize does: 1-D norms stay F32, and so does the MoE router
    # (llama-quant.cpp:306 `quantize &= name.find("ffn_gate_inp.weight") == npos`).
    return array.ndim == 1 or name.endswith("ffn_gate_inp.weight")


def _add_metadata(writer: gguf.GGUFWriter, *, layout: str, quant: str, name: str) -> None:
    s = TinyShape
    tokens, scores, types = _vocab()
    writer.add_name(name)
    writer.add_context_length(s.context_length)
    writer.add_embedding_length(s.n_embd)
    writer.add_block_count(s.n_layer)
    writer.add_feed_forward_length(s.n_ff)
    writer.add_head_count(s.n_head)
    writer.add_head_count_kv(s.n_head_kv)
    writer.add_rope_dimension_count(s.n_embd // s.n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    if layout == "llama-moe":
        writer.add_expert_count(s.n_expert)
        writer.add_expert_used_count(s.n_expert_used)
    file_type = gguf.LlamaFileType.ALL_F32 if quant == "F32" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def write_tiny_gguf(
    path: str | Path,
    *,
    layout: str,
    quant: str,
    shards: int = 1,
    seed: int = 0,
    name: str | None = None,
) -> list[Path]:
    """Write a tiny llama-architecture GGUF; return the files written (one, or the shards).

    layout: "llama" (dense) or "llama-moe" (expert_count=4, expert_used_count=2, merged experts).
    quant: "F32" or "Q8_0" (2-D/3-D weights quantized with `gguf.quants`, norms and router F32).
    shards > 1 writes llama.cpp split shards `<stem>-0000N-of-0000M.gguf` with `split.count`
    metadata (what `gguf-split` and `convert_hf_to_gguf.py --split-max-tensors` write), tensors
    spread evenly; `path` names the unsplit file and shard 1 is the first element of the result.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if quant not in QUANTS:
        raise ValueError(f"quant {quant!r} is not one of {', '.join(QUANTS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    tensors = _tensors(layout, len(_vocab()[0]), seed)
    per_shard = -(-len(tensors) // shards) if shards > 1 else 0
    writer = gguf.GGUFWriter(path, "llama", split_max_tensors=per_shard)
    _add_metadata(writer, layout=layout, quant=quant, name=name or f"tiny-{layout}-{quant}")
    qtype = gguf.GGMLQuantizationType.Q8_0
    for tensor_name, array in tensors.items():
        if quant == "F32" or _keep_f32(tensor_name, array):
            writer.add_tensor(tensor_name, np.ascontiguousarray(array))
        else:
            writer.add_tensor(tensor_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if shards > 1:
        written = sorted(path.parent.glob(f"{path.stem}-*-of-{shards:05d}.gguf"))
        if len(written) != shards:
            raise RuntimeError(f"expected {shards} shards of {path}, gguf wrote {len(written)}")
        return written
    return [path]


def split_bytes(path: str | Path, parts: int) -> list[Path]:
    """Cut a file into raw byte pieces `<name>.part1ofN` .. `partNofN` (mradermacher's layout).

    These are not GGUF files: only the first piece even has a header, so no engine loads them; they
    must be concatenated back (`join_parts`) before serving.
    """
    path = Path(path)
    data = path.read_bytes()
    size = -(-len(data) // parts)
    out = []
    for i in range(parts):
        piece = path.with_name(f"{path.name}.part{i + 1}of{parts}")
        piece.write_bytes(data[i * size : (i + 1) * size])
        out.append(piece)
    return out


def join_parts(parts: Sequence[str | Path], output: str | Path) -> Path:
    """Concatenate `.partXofY` pieces in order into `output` (what a plan's `download.joins` asks)."""
    output = Path(output)
    with output.open("wb") as sink:
        for part in parts:
            with Path(part).open("rb") as source:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
    return output
