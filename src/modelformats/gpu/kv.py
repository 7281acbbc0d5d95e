"""The KV cache's shape per attention design: layers that keep a cache, K/V width per layer and token,
multi-head latent attention's latent, sliding windows, and a labelled upper bound when the shape is unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelformats.traits import ModelTraits

__all__ = [
    "SHAPE_ASSUMPTION",
    "HybridPaging",
    "KvShape",
    "LinearState",
    "SlidingPaging",
    "hybrid_paging",
    "kv_replication",
    "resolve_kv_shape",
    "sliding_paging",
]


# When config.json / the GGUF header did not give layers and heads, the KV cache is bounded from the
# parameter count with a deliberately generous dense shape (see docs/gpu-policy.md):
#   P = 12 x L x H^2 (4H^2 attention + 8H^2 MLP per layer; embeddings ignored, which makes L and H larger),
#   H = 64 x L (narrower than Llama, Mistral, Qwen and Gemma >= 1B, whose H/L is 44-128 -> more layers),
#   no grouped-query attention (K and V as wide as H).
SHAPE_ASSUMPTION = (
    "dense shape P = 12 x layers x hidden^2 with hidden = 64 x layers and no grouped-query attention "
    "(K/V width = hidden)"
)
_SHAPE_ASPECT = 64
_SHAPE_PARAMS_PER_LAYER_H2 = 12
_EXACT_WITH = (
    "config.json (num_hidden_layers, num_key_value_heads, head_dim or hidden_size/num_attention_heads) "
    "or the GGUF header (<arch>.block_count, <arch>.attention.head_count_kv, <arch>.attention.key_length)"
)
# Multi-head latent attention caches one compressed latent per layer (kv_lora_rank + rope dims, 576 for
# DeepSeek-V2/V3), far below 2 x heads x head_dim. With kv_lora_rank in the traits the latent is sized
# (_mla_shape); these model types without it keep the heads x head_dim figure as a labelled upper bound.
_MLA_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek2"})


_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class LinearState:
    """One Gated DeltaNet layer's state per sequence, before the TP split, as vLLM 0.33 shapes it
    (`MambaStateShapeCalculator.gated_delta_net_state_shape`, layers/mamba/mamba_utils.py): a conv state of
    (kernel - 1) x conv_dim, conv_dim = 2 x key heads x key dim + value heads x value dim, and a recurrent
    state of value heads x value dim x key dim; both split over TP ranks."""

    conv_dim: int
    conv_rows: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    # Element sizes: the conv state follows the model dtype (mamba_cache_dtype 'auto'); the recurrent
    # state the config's mamba_ssm_dtype where set (vLLM 0.33 Qwen3_5ForConditionalGenerationConfig), else
    # the model dtype.
    conv_bytes: int
    ssm_bytes: int
    basis: str

    def bytes_per_rank(self, tp: int) -> int:
        conv = self.conv_rows * (self.conv_dim // tp) * self.conv_bytes
        return conv + (self.value_heads // tp) * self.value_head_dim * self.key_head_dim * self.ssm_bytes


def _linear_state(traits: ModelTraits) -> LinearState | None:
    """The Gated DeltaNet state from config.json's linear_* keys; None when any is missing."""
    kh, vh = traits.linear_num_key_heads, traits.linear_num_value_heads
    kd, vd, kernel = traits.linear_key_head_dim, traits.linear_value_head_dim, traits.linear_conv_kernel_dim
    if not (kh and vh and kd and vd and kernel):
        return None
    model_bytes = _DTYPE_BYTES.get(traits.torch_dtype or "", 2)
    ssm_bytes = _DTYPE_BYTES.get(traits.mamba_ssm_dtype or "", model_bytes)
    dtype_note = "" if traits.torch_dtype in _DTYPE_BYTES else "; model dtype ASSUMED 16-bit"
    return LinearState(
        conv_dim=2 * kh * kd + vh * vd,
        conv_rows=kernel - 1,
        value_heads=vh,
        key_head_dim=kd,
        value_head_dim=vd,
        conv_bytes=model_bytes,
        ssm_bytes=ssm_bytes,
        basis=(
            f"Gated DeltaNet state per layer and sequence: conv {kernel - 1} x (2 x {kh} x {kd} + {vh} x {vd}) "
            f"x {model_bytes} B + recurrent {vh} x {vd} x {kd} x {ssm_bytes} B"
            f"{' (mamba_ssm_dtype ' + traits.mamba_ssm_dtype + ')' if traits.mamba_ssm_dtype else ''}{dtype_note}"
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class HybridPaging:
    """How vLLM 0.33 pages a hybrid attention / Gated DeltaNet model's cache on one TP rank."""

    block_size: int
    page_bytes: int
    state_bytes: int
    group_size: int
    attention_groups: int
    state_groups: int
    blocks_per_sequence: int

    @property
    def bytes_per_sequence(self) -> int:
        return self.group_size * self.page_bytes * self.blocks_per_sequence


# vLLM 0.33's attention kernels (FlashAttention, FlashInfer, Triton) take blocks in multiples of 16.
_KERNEL_BLOCK_ALIGNMENT = 16
# With prefix caching (on by default) vLLM keeps Mamba-type state in 'align' mode: two state blocks per
# request (MambaSpec.max_memory_usage_bytes, v1/kv_cache_interface.py; no speculative tokens).
_STATE_BLOCKS_PER_SEQUENCE = 2


def hybrid_paging(
    kv: KvShape, *, tp: int, kv_bytes_per_element: float, max_model_len: int, block_size: int | None = None
) -> HybridPaging | None:
    """vLLM 0.33's unified page for attention + Gated DeltaNet layers, on one of `tp` ranks.

    - The attention block grows (in multiples of the kernel's 16) until one attention page holds a
      linear layer's state, and the state page is padded to it (`Platform._align_hybrid_block_size`,
      platforms/interface.py).
    - Layers are grouped by kind into groups of equal size, the smaller kind's count, or the larger's when
      it is under 1.5x (`_get_kv_cache_groups_uniform_page_size`, v1/core/kv_cache_planning.py); one block
      holds a page of every layer of a group.
    - A max_model_len request takes cdiv(max_model_len, block) blocks per attention group and 2 per state
      group from one pool (`get_max_concurrency_for_kv_cache_config`, v1/core/kv_cache_utils.py).
    """
    state = kv.linear_state
    if state is None or not kv.linear_layers or kv.sliding_layers or kv.latent or not kv.layers:
        return None
    heads = max(1, (kv.kv_heads or 0) // tp) if kv.kv_heads else 0
    if not heads or not kv.head_dim:
        return None
    attn_token = math.ceil(kv.tensors * heads * kv.head_dim * kv_bytes_per_element)
    state_bytes = state.bytes_per_rank(tp)
    align = max(_KERNEL_BLOCK_ALIGNMENT, block_size or 0)
    block = max(block_size or 0, align * -(-state_bytes // (align * attn_token)))
    group = _group_size((kv.layers, kv.linear_layers))
    attention_groups = -(-kv.layers // group)
    state_groups = -(-kv.linear_layers // group)
    return HybridPaging(
        block_size=block,
        page_bytes=block * attn_token,
        state_bytes=state_bytes,
        group_size=group,
        attention_groups=attention_groups,
        state_groups=state_groups,
        blocks_per_sequence=attention_groups * -(-max_model_len // block) + state_groups * _STATE_BLOCKS_PER_SEQUENCE,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SlidingPaging:
    """How vLLM 0.33 pages a full + sliding-window model's cache for `sequences` requests on one TP rank."""

    block_size: int
    page_bytes: int
    group_size: int
    full_groups: int
    sliding_groups: int
    sequences: int
    # Per full group: cdiv(max_model_len, block) per sequence. Per sliding group: the blocks of one
    # sequence prefilling a whole batch, and of each other sequence decoding.
    full_blocks: int
    sliding_blocks_prefill: int
    sliding_blocks_decode: int
    in_flight_tokens: int

    @property
    def sliding_blocks(self) -> int:
        return self.sliding_blocks_prefill + (self.sequences - 1) * self.sliding_blocks_decode

    @property
    def bytes_total(self) -> int:
        blocks = self.full_groups * self.full_blocks * self.sequences + self.sliding_groups * self.sliding_blocks
        return self.group_size * self.page_bytes * blocks


def _group_size(counts: tuple[int, int]) -> int:
    """vLLM's layers per KV cache group: the smaller kind's count, or the larger's when under 1.5x."""
    group = min(counts)
    return max(counts) if max(counts) < group * 1.5 else group


def sliding_paging(
    kv: KvShape,
    *,
    tp: int,
    kv_bytes_per_element: float,
    max_model_len: int,
    max_num_batched_tokens: int,
    sequences: int,
    block_size: int | None = None,
    pipeline_parallel: int = 1,
) -> SlidingPaging | None:
    """vLLM 0.33's blocks for `sequences` full-length requests of a full + sliding-window model, per TP rank.

    - A sliding layer holds cdiv(min(window - 1 + in-flight tokens, max_model_len), block) + 1 blocks of a
      request (`SlidingWindowSpec.max_admission_blocks_per_request`, v1/kv_cache_interface.py, which also
      sizes the startup check); the in-flight tokens are max_concurrent_batches (2 with async scheduling,
      on by default, at one pipeline stage; pp + 1 with more, the V2 runner's figure, config/vllm.py) x the
      tokens a step schedules: a whole max_num_batched_tokens batch for the one sequence counted as
      prefilling, one token for each other sequence (decoding).
    - Full layers take cdiv(max_model_len, block) blocks per request.
    - Layers are grouped by kind into groups of one size (the smaller kind's count, or the larger's when
      under 1.5x, `_get_kv_cache_groups_uniform_page_size`); a block holds a page of every layer of a group,
      so a kind whose count is not a multiple of the group size pays for padding layers (Gemma 3 27B:
      10 full + 52 sliding -> 1 + 6 groups of 10).
    """
    window = kv.sliding_window
    if (
        not kv.sliding_layers
        or not window
        or kv.linear_layers
        or kv.latent
        or kv.layers < kv.sliding_layers
        or not (kv.kv_heads and kv.head_dim)
    ):
        return None
    heads = max(1, kv.kv_heads // tp)
    token_bytes = math.ceil(kv.tensors * heads * kv.head_dim * kv_bytes_per_element)
    block = max(_KERNEL_BLOCK_ALIGNMENT, block_size or 0)
    batches = 2 if pipeline_parallel <= 1 else pipeline_parallel + 1
    full = kv.layers - kv.sliding_layers
    # Every layer sliding (Mistral-7B v0.1): one group of them all.
    group = _group_size((full, kv.sliding_layers)) if full else kv.sliding_layers

    def held(in_flight: int) -> int:
        return -(-min(window - 1 + in_flight, max_model_len) // block) + 1

    return SlidingPaging(
        block_size=block,
        page_bytes=block * token_bytes,
        group_size=group,
        full_groups=-(-full // group),
        sliding_groups=-(-kv.sliding_layers // group),
        sequences=sequences,
        full_blocks=-(-max_model_len // block),
        sliding_blocks_prefill=held(batches * max_num_batched_tokens),
        sliding_blocks_decode=held(batches),
        in_flight_tokens=batches * max_num_batched_tokens,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class KvShape:
    """What the KV cache formula multiplies: layers, K/V width per layer, and how we know."""

    layers: int
    # K (or V) elements per token per layer = KV heads x head dim.
    kv_width: int
    kv_heads: int | None
    head_dim: int | None
    assumed: bool
    basis: str
    exact_with: str | None = None
    sliding_window: int | None = None
    # Layers that keep only `sliding_window` tokens; 0 when unknown (counted as full attention).
    sliding_layers: int = 0
    notes: tuple[str, ...] = ()
    # Tensors cached per layer and token: 2 (K and V), 1 for multi-head latent attention (one latent).
    tensors: int = 2
    # Multi-head latent attention: every tensor-parallel rank keeps the whole latent (it has no heads to split).
    latent: bool = False
    # How the per-layer width reads in the formula when it is not KV heads x head dim (K and V of unequal width).
    width_label: str | None = None
    # Linear-attention layers and, for Gated DeltaNet, the state each keeps per sequence (None: not modelled).
    linear_layers: int = 0
    linear_state: LinearState | None = None


def _is_mla(traits: ModelTraits) -> bool:
    return traits.model_type in _MLA_MODEL_TYPES or traits.gguf_architecture in _MLA_MODEL_TYPES


def _layer_counts(
    traits: ModelTraits, sliding_window_layers: int | None, max_model_len: int | None, notes: list[str]
) -> tuple[int | None, int, int | None]:
    """(window, sliding layers, layers that keep a KV cache): linear-attention layers keep none."""
    window = traits.sliding_window
    if window is not None and max_model_len is not None and window >= max_model_len:
        window = None  # a window as long as the context changes nothing (Qwen2.5 records 131,072)
    if traits.full_attention_layers is not None:
        kv_layers = traits.full_attention_layers + (traits.sliding_attention_layers or 0)
        if traits.linear_attention_layers and _linear_state(traits) is None:
            notes.append(
                f"{traits.linear_attention_layers} linear-attention (or state-space) layers keep a fixed state "
                f"per sequence, not a KV cache: only the {kv_layers} attention layers are counted per token; "
                "their state is not modelled (config.json has no Gated DeltaNet linear_* shape)."
            )
        # A window covering the whole context makes sliding layers full ones.
        return window, (traits.sliding_attention_layers or 0) if window is not None else 0, kv_layers
    if window is None:
        return None, 0, traits.num_layers
    if sliding_window_layers is not None:
        return window, sliding_window_layers, traits.num_layers
    notes.append(
        f"A sliding window of {window:,} tokens is recorded, but not which layers use it: every "
        "layer is counted at full length (an upper bound)."
    )
    return window, 0, traits.num_layers


def _mla_shape(traits: ModelTraits) -> KvShape:
    """vLLM's MLA cache: one latent of kv_lora_rank + qk_rope_head_dim per layer and token, no V, no heads."""
    rank = traits.kv_lora_rank or 0
    rope = traits.qk_rope_head_dim or 0
    layers = traits.num_layers or 0
    src = traits.sources
    where = sorted({src[k] for k in ("kv_lora_rank", "qk_rope_head_dim", "num_layers") if k in src})
    notes: tuple[str, ...] = ()
    if not rope:
        notes = ("qk_rope_head_dim is not recorded: the latent is counted as kv_lora_rank alone (a lower bound).",)
    return KvShape(
        layers=layers,
        kv_width=rank + rope,
        kv_heads=traits.kv_heads,
        head_dim=None,
        assumed=not layers,
        basis=(
            f"multi-head latent attention: kv_lora_rank {rank} + qk_rope_head_dim {rope} = {rank + rope} "
            f"elements per layer and token ({'; '.join(where) or 'model traits'})"
        ),
        tensors=1,
        latent=True,
        notes=notes,
    )


def _uncompressed_mla_shape(traits: ModelTraits) -> KvShape | None:
    """llama.cpp without `key_length_mla`: K (key_length) and V (value_length) for every KV head
    (llama-kv-cache.cpp sizes K as n_embd_k_gqa and V as n_embd_v_gqa when !hparams.is_mla())."""
    layers, kv_heads, k = traits.num_layers, traits.kv_heads, traits.head_dim
    if not (layers and kv_heads and k):
        return None
    v = traits.v_head_dim or k
    src = traits.sources
    where = sorted({src[n] for n in ("num_layers", "num_kv_heads", "head_dim", "v_head_dim") if n in src})
    return KvShape(
        layers=layers,
        kv_width=kv_heads * (k + v),
        kv_heads=kv_heads,
        head_dim=k,
        assumed=False,
        basis=(
            f"multi-head latent attention without key_length_mla in the GGUF header: llama.cpp caches full "
            f"K and V per head, {kv_heads} KV heads x ({k} K + {v} V) ({'; '.join(where) or 'model traits'})"
        ),
        tensors=1,
        width_label=f"{kv_heads} KV heads x ({k} K + {v} V)",
    )


def resolve_kv_shape(
    traits: ModelTraits,
    *,
    shape_params: int | None,
    shape_params_basis: str,
    sliding_window_layers: int | None = None,
    max_model_len: int | None = None,
    latent_cache: bool = True,
) -> KvShape:
    """Layers and K/V width from the traits; a labelled upper bound from `shape_params` without them.

    `latent_cache`: the engine caches MLA's compact latent (vLLM always; llama.cpp only when the GGUF
    header records `key_length_mla`). Without it an MLA model caches full K and V per head.
    """
    notes: list[str] = []
    if traits.kv_lora_rank and latent_cache:
        return _mla_shape(traits)
    if traits.kv_lora_rank and (full := _uncompressed_mla_shape(traits)) is not None:
        return full
    if _is_mla(traits):
        notes.append(
            "Multi-head latent attention: engines cache one latent of kv_lora_rank + rope dims per layer "
            "(576 for DeepSeek-V2/V3), far less than this heads x head_dim figure, but kv_lora_rank is not "
            "recorded here; the KV term is an upper bound."
        )
    if traits.unmodelled_attention:
        notes.append(
            f"Attention design not modelled ({traits.unmodelled_attention}): every layer is counted as full "
            "attention, an upper bound."
        )
    window, sliding, kv_layers = _layer_counts(traits, sliding_window_layers, max_model_len, notes)
    layers = kv_layers
    head_dim = traits.resolved_head_dim
    kv_heads = traits.kv_heads
    if layers == 0:  # every layer is linear attention / state-space: no KV cache at all
        return KvShape(
            layers=0,
            kv_width=0,
            kv_heads=kv_heads,
            head_dim=head_dim,
            assumed=False,
            basis="no attention layers (config.json layer kinds)",
            notes=tuple(notes),
        )
    if layers and head_dim and kv_heads:
        src = traits.sources
        where = sorted({src[k] for k in ("num_layers", "num_kv_heads", "head_dim", "hidden_size") if k in src})
        gqa = "" if traits.num_kv_heads else " (no KV-head count: every attention head has its own K/V)"
        return KvShape(
            layers=layers,
            kv_width=kv_heads * head_dim,
            kv_heads=kv_heads,
            head_dim=head_dim,
            assumed=False,
            basis=("; ".join(where) or "model traits") + gqa,
            sliding_window=window,
            sliding_layers=min(sliding, layers),
            notes=tuple(notes),
            linear_layers=traits.linear_attention_layers or 0,
            linear_state=_linear_state(traits) if traits.linear_attention_layers else None,
        )
    if layers and traits.hidden_size:
        notes.append("KV heads unknown: K/V assumed as wide as the hidden size (no grouped-query attention).")
        return KvShape(
            layers=layers,
            kv_width=traits.hidden_size,
            kv_heads=None,
            head_dim=None,
            assumed=True,
            basis=f"{layers} layers and hidden size {traits.hidden_size:,} from the traits; KV heads assumed",
            exact_with=_EXACT_WITH,
            sliding_window=window,
            sliding_layers=min(sliding, layers),
            notes=tuple(notes),
        )
    if shape_params is None or shape_params <= 0:
        raise ValueError("resolve_kv_shape needs shape_params when the traits lack layers and heads")
    # P = 12 x L x (64 L)^2  ->  L = (P / (12 x 64^2))^(1/3); rounded up so the bound only grows.
    bound_layers = math.ceil((shape_params / (_SHAPE_PARAMS_PER_LAYER_H2 * _SHAPE_ASPECT**2)) ** (1 / 3))
    hidden = _SHAPE_ASPECT * bound_layers
    return KvShape(
        layers=bound_layers,
        kv_width=hidden,
        kv_heads=None,
        head_dim=None,
        assumed=True,
        basis=(
            f"ASSUMED upper bound from {shape_params:,} parameters ({shape_params_basis}): "
            f"{SHAPE_ASSUMPTION} -> {bound_layers} layers x {hidden:,} K/V width"
        ),
        exact_with=_EXACT_WITH,
        notes=tuple(notes),
    )


def kv_replication(kv_heads: int | None, tp: int) -> int:
    """Copies of each KV head over TP ranks: vLLM keeps >= 1 KV head per GPU (config/model.py:1683)."""
    if kv_heads is None or tp <= kv_heads:
        return 1
    return tp // kv_heads
