"""A tiny random Qwen2 checkpoint for the converted route (`nox -s vllm_cpu_generation`).

The same recipe as `nox -s gguf_convert_proof`'s Qwen2 (tools/gguf_convert_proof/run.py: `QWEN2`,
`build_qwen2`): the dense Llama's shapes (hidden widened with the heads) with checkpoints.py's SentencePiece
tokenizer, which llama.cpp's Qwen2 converter reads first, and q/k/v biases drawn like the weights
(transformers initializes them to zero, which would prove nothing). Kept here, not imported from that
script, so that this session's evidence does not hash the conversion proof's runner; `seed` seeds the
weights only.
"""

from __future__ import annotations

from pathlib import Path

from tools.gguf_proof.checkpoints import INIT_STD, LAYOUTS, Layout, save_tokenizer, train_tokenizer

__all__ = ["QWEN2", "build_qwen2"]

# llama.cpp's qwen2 takes the head size as hidden / heads (it ignores the header's key_length), so the heads
# of 32 vLLM's CPU attention needs come with hidden 128 = 4 heads x 32 (the Llama layouts keep hidden 64).
QWEN2 = Layout(
    name="qwen2",
    architecture="Qwen2ForCausalLM",
    config={**LAYOUTS[0].config, "hidden_size": 128, "head_dim": 32, "use_sliding_window": False},
)


def build_qwen2(layout: Layout, directory: Path, *, seed: int) -> Path:
    """Write a random Qwen2 checkpoint (config, safetensors, tokenizer) to a fresh directory; return it.

    The tokenizer is saved and checked before config.json exists: with it, transformers 5's AutoTokenizer
    takes the class from model_type (Qwen2Tokenizer), not tokenizer_config."""
    import shutil

    import torch
    import transformers

    shutil.rmtree(directory, ignore_errors=True)  # a previous run's config.json would pick the tokenizer class
    vocab_size = train_tokenizer(directory)
    save_tokenizer(directory)
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(vocab_size=vocab_size, **layout.config))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.normal_(mean=0.0, std=INIT_STD)
    model.save_pretrained(directory)
    return directory
