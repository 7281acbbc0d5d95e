"""`PlanOptions`: what the caller asks of a plan, each field the CLI flag of the same name, validated
here once (the planner and the strategies take them as given)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from modelformats.errors import InvalidRequestError

if TYPE_CHECKING:
    from modelformats.gpu import GpuPolicy

__all__ = ["ENGINE_CHOICES", "FORMAT_CHOICES", "PlanOptions"]

EngineChoice = Literal["auto", "vllm", "llamacpp"]
FormatChoice = Literal["auto", "gguf", "native"]
ENGINE_CHOICES = ("auto", "vllm", "llamacpp")
FORMAT_CHOICES = ("auto", "gguf", "native")


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """What the caller asks for; each field is the CLI flag of the same name."""

    revision: str | None = None
    engine: EngineChoice = "auto"
    format: FormatChoice = "auto"
    vllm_version: str | None = None
    # A policy's name in the plan's PolicyRegistry (default: `default_policies()`), or a GpuPolicy itself.
    policy: str | GpuPolicy = "seed"
    quant: str | None = None
    quant_order: tuple[str, ...] | None = None
    tokenizer_from: str | None = None
    gpu: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    # MoE only: experts each token is routed to, instead of the model's own number (at most its expert count).
    experts_per_token: int | None = None
    # vLLM: pin the KV cache to the estimate (--kv-cache-memory-bytes) instead of letting vLLM take what
    # gpu_memory_utilization leaves; refused where the estimate rests on an assumed shape.
    pin_kv_cache: bool = False
    download_root: str = "/models"
    port: int = 8000
    # Formats switched off for this plan, on top of MODELFORMATS_DISABLE.
    disable: tuple[str, ...] = ()
    environ: Mapping[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_CHOICES:
            raise InvalidRequestError(f"--engine {self.engine!r} is not one of: {', '.join(ENGINE_CHOICES)}.")
        if self.format not in FORMAT_CHOICES:
            raise InvalidRequestError(f"--format {self.format!r} is not one of: {', '.join(FORMAT_CHOICES)}.")
        if not self.download_root.startswith("/"):
            raise InvalidRequestError(
                f"--download-root {self.download_root!r} must be an absolute path: the engine reads the files "
                "from its own working directory."
            )
        if not 0 < self.port < 65536:
            raise InvalidRequestError(f"--port {self.port} is not a TCP port (1-65535).")
        # Every --quant-order entry is checked up front, not only those before the first match.
        from modelformats.gguf.quant import parse_quant, vocabulary_note

        for text in self.quant_order or ():
            if parse_quant(text) is None:
                raise InvalidRequestError(
                    f"--quant-order entry {text!r} is not a GGUF quant name: not in {vocabulary_note()} (with an "
                    "optional UD-/i1- prefix or _L/_XL suffix). Use names such as Q8_0, Q4_K_M, IQ4_XS or UD-Q4_K_XL."
                )
