"""Tiny random Qwen2 and Qwen3-MoE checkpoints, for the conversion proof and the converted-route generation.

Shared by `nox -s gguf_convert_proof` (tools/gguf_convert_proof/run.py) and `nox -s vllm_cpu_generation`
(tools/vllm_cpu_generation, which widens the heads for vLLM's CPU attention). The shapes are the dense
Llama's of tools/gguf_proof/checkpoints.py. Qwen2's tokenizer is checkpoints.py's SentencePiece model, which
llama.cpp's Qwen2 converter reads first (`Qwen2Model.set_vocab`). llama.cpp's Qwen3-MoE converter reads only a
GPT-2 BPE tokenizer and refuses one whose pre-tokenizer it does not know, so Qwen3-MoE gets Qwen2's real
vocabulary (151,936 tokens): llama.cpp's own `models/ggml-vocab-qwen2.gguf` from the same llama-cpp-python
sdist as the converter, rebuilt by transformers' GGUF tokenizer support (its encoding of the converter's check
text hashes to the converter's "qwen2" pre-tokenizer).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from tools.gguf_proof.checkpoints import INIT_STD, LAYOUTS, PROMPTS, SEED, Layout, save_tokenizer, train_tokenizer

__all__ = ["QWEN2", "QWEN3MOE", "QWEN_ARCHITECTURES", "QWEN_VOCAB", "build_qwen", "qwen_vocab"]

# The BPE vocabulary llama.cpp vendors for its tokenizer tests, inside the llama-cpp-python sdist.
QWEN_VOCAB = "vendor/llama.cpp/models/ggml-vocab-qwen2.gguf"

# Qwen2: the dense Llama's shapes and rope; transformers' Qwen2 always has q/k/v biases.
QWEN2 = Layout(
    name="qwen2",
    architecture="Qwen2ForCausalLM",
    config={**LAYOUTS[0].config, "use_sliding_window": False},
)
# Qwen3-MoE (Qwen3-30B-A3B's layout): the dense Llama's attention shapes, Q/K norms, 4 routed experts (top 2,
# renormalized, as llama.cpp's qwen3moe graph always does), no shared expert, every layer sparse.
QWEN3MOE = Layout(
    name="qwen3moe+experts",
    architecture="Qwen3MoeForCausalLM",
    config={
        **LAYOUTS[0].config,
        "moe_intermediate_size": 64,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "norm_topk_prob": True,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "use_sliding_window": False,
    },
)
QWEN_ARCHITECTURES = (QWEN2.architecture, QWEN3MOE.architecture)


def qwen_vocab(converter: Path, work: Path) -> Path:
    """Extract QWEN_VOCAB from the sdist the converter was unpacked from (noxfile: `sdist-<v>` beside
    `converter-<v>`) into work/; return the file."""
    sdist_dir = converter.parent.with_name(converter.parent.name.replace("converter-", "sdist-", 1))
    sdists = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
    if len(sdists) != 1:
        raise SystemExit(f"expected one llama_cpp_python sdist in {sdist_dir} (beside the converter), found {sdists}")
    with tarfile.open(sdists[0], "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.partition("/")[2] == QWEN_VOCAB]
        if len(members) != 1:
            raise SystemExit(f"{sdists[0].name} has no {QWEN_VOCAB}")
        member = members[0]
        member.name = Path(QWEN_VOCAB).name
        tar.extractall(work, members=[member], filter="data")
    return work / member.name


def _bpe_tokenizer(vocab: Path, directory: Path) -> int:
    """Qwen2's tokenizer rebuilt from the GGUF vocabulary into `directory`; return its vocabulary size."""
    import transformers

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(vocab.parent), gguf_file=vocab.name)
    tokenizer.save_pretrained(directory)
    reloaded = transformers.AutoTokenizer.from_pretrained(directory)
    for prompt in PROMPTS:
        if reloaded.encode(prompt) != tokenizer.encode(prompt) or not tokenizer.encode(prompt):
            raise RuntimeError(f"the rebuilt Qwen2 tokenizer does not round-trip {prompt!r}")
    return len(tokenizer)


def build_qwen(layout: Layout, directory: Path, *, vocab: Path | None = None, seed: int = SEED) -> Path:
    """A random Qwen2 (checkpoints.py's SentencePiece tokenizer) or Qwen3-MoE (`vocab`: Qwen2's BPE vocabulary,
    see the module docstring) checkpoint.

    The tokenizer is saved and checked before config.json exists: with it, transformers 5's AutoTokenizer
    takes the class from model_type (Qwen2Tokenizer), not tokenizer_config. The biases are drawn like the
    weights, and Qwen3-MoE's norm weights (its Q/K norms included) around 1: transformers initializes them
    to zeros and ones, which would prove nothing about where they end up. `seed` seeds the weights only."""
    import torch
    import transformers

    if layout.architecture == QWEN3MOE.architecture:
        if vocab is None:
            raise ValueError("a Qwen3-MoE checkpoint needs the BPE vocabulary (qwen_vocab)")
        vocab_size = _bpe_tokenizer(vocab, directory)
    else:
        vocab_size = train_tokenizer(directory)
        save_tokenizer(directory)
    torch.manual_seed(seed)
    config_class = getattr(transformers, layout.architecture.replace("ForCausalLM", "Config"))
    model = getattr(transformers, layout.architecture)(config_class(vocab_size=vocab_size, **layout.config))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.normal_(mean=0.0, std=INIT_STD)
            elif layout.architecture == QWEN3MOE.architecture and name.endswith("norm.weight"):
                parameter.normal_(mean=1.0, std=INIT_STD)
    model.save_pretrained(directory)
    return directory
