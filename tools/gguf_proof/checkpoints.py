"""Tiny random HF checkpoints (dense Llama, Mixtral) with a SentencePiece tokenizer trained here.

Shapes are the smallest that still exercise what matters: grouped-query attention (4 query heads,
2 KV heads, so the K permutation uses n_kv_head), two layers, row lengths that are multiples of
Q8_0's 32-element block, and for Mixtral 4 experts with top-2 routing, tied embeddings and llama3
rope scaling (the target, a Llama-3.2-based 8x3B MoE, has both; llama3 rope adds `rope_freqs`).
`with_head_dim` widens the heads for engines whose attention kernels need it (vLLM's CPU attention
takes head sizes 32, 64, 80, ... only: `nox -s vllm_cpu_generation`).

The tokenizer is a transformers `LlamaTokenizer` converted from the trained SentencePiece model
(tokenizer.json beside tokenizer.model, with a chat template); `build` checks that it encodes every
prompt exactly as SentencePiece does, BOS first, and that its chat template renders to those tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Prompts of the GPU validation script, reused as tokenizer corpus and as the logits probe.
PROMPTS = (
    "Hello! Testing GGUF format support.",
    "What is a Mixture of Experts model?",
    "Thank you for the demonstration!",
)
SEED = 1234
# Random init with std 0.02 gives near-uniform logits; 0.15 makes attention and routing matter.
INIT_STD = 0.15


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """One checkpoint layout of the proof."""

    name: str  # the proof's `layout` value
    architecture: str  # HF class
    config: dict[str, Any]


_COMMON: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "initializer_range": INIT_STD,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="llama",
        architecture="LlamaForCausalLM",
        config={**_COMMON, "intermediate_size": 128, "tie_word_embeddings": False, "rope_theta": 10000.0},
    ),
    Layout(
        name="llama+experts",
        architecture="MixtralForCausalLM",
        config={
            **_COMMON,
            "intermediate_size": 96,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "tie_word_embeddings": True,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        },
    ),
)


def with_head_dim(layout: Layout, head_dim: int) -> Layout:
    """`layout` with wider attention heads (same head counts, so the Q/K permutation is unchanged)."""
    return replace(layout, config={**layout.config, "head_dim": head_dim})


# A chat template whose rendering tokenizes to BOS + the plain prompt's tokens, so a chat request to a
# server and an offline generation from token ids see the same prompt. The space keeps SentencePiece's
# word-start marker after the special token (without it the first word is split differently).
CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}{{ ' ' + message['content'] }}{% endfor %}"


# Tokenizer corpus words; the prompts add their own.
CORPUS_WORDS = """
the of and to in is was for on are with as by at from this that model expert mixture gguf format
support testing hello thank you demonstration what llama quant weight tensor rotary attention head
layer token vocabulary sentence piece byte pair encoding router gate
"""


def _corpus() -> str:
    words = CORPUS_WORDS.split()
    lines = list(PROMPTS)
    # A deterministic pseudo-random word stream (LCG) so training sees every word in many contexts.
    state = SEED
    for _ in range(400):
        line = []
        for _ in range(12):
            state = (state * 1103515245 + 12345) % 2**31
            line.append(words[state % len(words)])
        lines.append(" ".join(line).capitalize() + ".")
    return "\n".join(lines) + "\n"


def train_tokenizer(directory: Path) -> int:
    """Train a tiny SentencePiece BPE model into directory/tokenizer.model; return its vocab size."""
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    corpus.write_text(_corpus())
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(directory / "tokenizer"),
        model_type="bpe",
        vocab_size=256,
        character_coverage=1.0,
        byte_fallback=False,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    corpus.unlink()
    (directory / "tokenizer.vocab").unlink()
    return int(spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model")).get_piece_size())


# Keys a dense LlamaConfig does not have; dropping them views a Mixtral checkpoint as dense Llama.
_MOE_KEYS = (
    "num_local_experts",
    "num_experts_per_tok",
    "output_router_logits",
    "router_aux_loss_coef",
    "router_jitter_noise",
    "sliding_window",
)


def dense_view(moe_directory: Path, directory: Path) -> Path:
    """config.json + tokenizer of the Mixtral checkpoint as a dense LlamaConfig, as a user would get by
    pointing vLLM at a Llama base config: the negative control for the expert mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    config = json.loads((moe_directory / "config.json").read_text())
    for key in _MOE_KEYS:
        config.pop(key, None)
    config.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (directory / name).write_bytes((moe_directory / name).read_bytes())
    return directory


def build(layout: Layout, directory: Path, *, seed: int = SEED) -> Path:
    """Write a random `layout` checkpoint (config, safetensors, tokenizer) to directory; return it.

    `seed` seeds the weights only (the tokenizer is the same for every seed)."""
    import torch
    import transformers

    vocab_size = train_tokenizer(directory)
    config_class = getattr(transformers, layout.architecture.replace("ForCausalLM", "Config"))
    config = config_class(vocab_size=vocab_size, **layout.config)
    torch.manual_seed(seed)
    model = getattr(transformers, layout.architecture)(config)
    model.save_pretrained(directory)
    save_tokenizer(directory)
    return directory


def save_tokenizer(directory: Path) -> None:
    """Convert directory/tokenizer.model into a transformers tokenizer (tokenizer.json) and check it.

    transformers 5.x `LlamaTokenizer(vocab_file=...)` builds an empty 3-token vocabulary (every
    prompt encodes to nothing); `from_pretrained` on the directory converts the SentencePiece model.
    """
    import sentencepiece as spm
    import transformers

    tokenizer = transformers.LlamaTokenizer.from_pretrained(
        directory, bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=False
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    reloaded = transformers.AutoTokenizer.from_pretrained(directory)
    pieces = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    for prompt in PROMPTS:
        expected = [pieces.bos_id(), *pieces.encode(prompt)]
        chat = reloaded.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False)
        found = {
            "encode": reloaded.encode(prompt),
            "chat template": reloaded(chat, add_special_tokens=False)["input_ids"],
        }
        for how, tokens in found.items():
            if tokens != expected:
                raise RuntimeError(
                    f"{directory}: the transformers tokenizer ({how}) gives {tokens} for {prompt!r}, "
                    f"SentencePiece gives {expected}"
                )
