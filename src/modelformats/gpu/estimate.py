"""GPU memory a deployment needs, as named terms: weights, KV cache and runtime overhead.

vLLM's budget per GPU is `total x gpu_memory_utilization` (vllm/v1/worker/utils.py:724 in vllm
0.33.0); weights, the profiled activation peak, non-torch allocations and (since 0.21) CUDA graphs
come out of it and the rest becomes KV cache (v1/worker/gpu_worker.py:641-756). The CUDA context
exists before vLLM's first memory snapshot (gpu_worker.py:541), so it sits *outside* that budget.
llama.cpp has no utilization knob: everything it allocates counts.

The KV term reserves `max_model_len x max_num_seqs` tokens: every sequence at full length at once,
which is stricter than vLLM's start-up check (one full-length sequence) on purpose.

This module computes the terms; the records live in `gpu.memory`, the KV shape in `gpu.kv` and the
measured constants in `gpu.overheads` (re-exported here, the estimate's public face).
"""

from __future__ import annotations

import math

from modelformats.engines.base import EngineTraits
from modelformats.gpu.activations import SAMPLER_SOURCE, ActivationShape, activation_peak
from modelformats.gpu.kv import (
    SHAPE_ASSUMPTION,
    KvShape,
    hybrid_paging,
    kv_replication,
    resolve_kv_shape,
    sliding_paging,
)
from modelformats.gpu.memory import (
    Layout,
    MemoryEstimate,
    MemorySummary,
    MemoryTerm,
    WeightsSize,
    format_bytes,
)
from modelformats.gpu.overheads import ACTIVATION_REFERENCE_TOKENS, GIB, OVERHEAD_CONSTANTS, OverheadConstant

__all__ = [
    "ACTIVATION_REFERENCE_TOKENS",
    "GIB",
    "OVERHEAD_CONSTANTS",
    "SHAPE_ASSUMPTION",
    "KvShape",
    "Layout",
    "MemoryEstimate",
    "MemorySummary",
    "MemoryTerm",
    "OverheadConstant",
    "WeightsSize",
    "estimate_memory",
    "format_bytes",
    "resolve_kv_shape",
]


def _builtin_traits(engine: str) -> EngineTraits:
    from modelformats.engines.builtin import engine_traits

    return engine_traits(engine)


def _with_linear_state(
    kv: KvShape,
    kv_bytes: int,
    formula: str,
    *,
    paged: bool,
    tp: int,
    sequences: int,
    max_model_len: int,
    kv_bytes_per_element: float,
    block_size: int | None,
    max_num_batched_tokens: int | None = None,
    pipeline_parallel: int = 1,
) -> tuple[int, str]:
    """The KV term with the linear-attention layers' state: on a paged, block-scheduled cache (vLLM) the
    state shares one page size with attention (`hybrid_paging`); otherwise it is added per sequence."""
    state = kv.linear_state
    if state is None or not kv.linear_layers:
        return _with_sliding_pages(
            kv,
            kv_bytes,
            formula,
            paged=paged,
            tp=tp,
            sequences=sequences,
            max_model_len=max_model_len,
            kv_bytes_per_element=kv_bytes_per_element,
            block_size=block_size,
            max_num_batched_tokens=max_num_batched_tokens,
            pipeline_parallel=pipeline_parallel,
        )
    paging = (
        hybrid_paging(
            kv, tp=tp, kv_bytes_per_element=kv_bytes_per_element, max_model_len=max_model_len, block_size=block_size
        )
        if paged
        else None
    )
    if paging is not None:
        pad = paging.page_bytes / paging.state_bytes - 1
        return paging.bytes_per_sequence * sequences * tp, (
            f"{paging.group_size} layers x {paging.page_bytes:,} B page x {paging.blocks_per_sequence} blocks "
            f"per {max_model_len:,}-token sequence x {sequences} sequence(s)"
            + (f" x {tp} TP ranks" if tp > 1 else "")
            + f" (vLLM's hybrid page: {kv.layers} attention + {kv.linear_layers} Gated DeltaNet layers in "
            f"{paging.attention_groups} + {paging.state_groups} groups of {paging.group_size}; attention block "
            f"{paging.block_size} tokens so one page holds a layer's {paging.state_bytes:,} B state, padded "
            f"{pad:.1%}; {paging.attention_groups} x cdiv({max_model_len:,}, {paging.block_size}) + "
            f"{paging.state_groups} x 2 state blocks per sequence)"
        )
    # llama.cpp keeps each recurrent layer's conv and state rows in f32 per sequence (llama-model.cpp
    # recurrent_type_r/_s GGML_TYPE_F32); a paged engine whose page we do not model: its own dtypes, unpadded.
    per_layer = (
        state.bytes_per_rank(1)
        if paged
        else 4 * (state.conv_rows * state.conv_dim + state.value_heads * state.value_head_dim * state.key_head_dim)
    )
    return kv_bytes + per_layer * kv.linear_layers * sequences, (
        f"{formula}; + {kv.linear_layers} linear-attention layers x {per_layer:,} B state x {sequences} sequence(s)"
    )


def _with_sliding_pages(
    kv: KvShape,
    kv_bytes: int,
    formula: str,
    *,
    paged: bool,
    tp: int,
    sequences: int,
    max_model_len: int,
    kv_bytes_per_element: float,
    block_size: int | None,
    max_num_batched_tokens: int | None,
    pipeline_parallel: int,
) -> tuple[int, str]:
    """On vLLM, full + sliding-window layers at the blocks a request is admitted with (`sliding_paging`)."""
    batched = max_num_batched_tokens or ACTIVATION_REFERENCE_TOKENS
    paging = (
        sliding_paging(
            kv,
            tp=tp,
            kv_bytes_per_element=kv_bytes_per_element,
            max_model_len=max_model_len,
            max_num_batched_tokens=batched,
            sequences=sequences,
            block_size=block_size,
            pipeline_parallel=pipeline_parallel,
        )
        if paged
        else None
    )
    if paging is None:
        return kv_bytes, formula
    full = kv.layers - kv.sliding_layers
    return paging.bytes_total * tp, (
        f"{paging.group_size} layers x {paging.page_bytes:,} B page x ({paging.full_groups} x "
        f"{paging.full_blocks} x {sequences} + {paging.sliding_groups} x {paging.sliding_blocks}) blocks"
        + (f" x {tp} TP ranks" if tp > 1 else "")
        + f" (vLLM 0.33's pages: {full} full layers in {paging.full_groups} group(s) of {paging.group_size}, "
        f"cdiv({max_model_len:,}, {paging.block_size}) blocks per sequence; {kv.sliding_layers} sliding-window "
        f"layers in {paging.sliding_groups}, cdiv(min({kv.sliding_window:,} - 1 + in-flight tokens, "
        f"{max_model_len:,}), {paging.block_size}) + 1 blocks per sequence: {paging.sliding_blocks_prefill} for "
        f"one prefilling {paging.in_flight_tokens:,} in-flight tokens (2 steps of {batched:,} batched"
        + ("" if max_num_batched_tokens else ", vLLM's default ASSUMED")
        + f"), {paging.sliding_blocks_decode} for each other, decoding)"
    )


def _activations_term(
    activations: ActivationShape | None, *, tokens: int, sequences: int, tp: int
) -> tuple[int, str, str]:
    """vLLM's profiled activation peak per GPU: from the model's shape, else the measured constant."""
    if activations is not None:
        act, formula = activation_peak(activations, tokens=tokens, sequences=sequences, tp=tp)
        basis = (
            f"vLLM's profiling run from the model's shape ({activations.basis}; gpu/activations.py); {SAMPLER_SOURCE}"
        )
        return act, formula, basis
    constant = OVERHEAD_CONSTANTS["activations"]
    return (
        math.ceil(constant.bytes * max(1.0, tokens / ACTIVATION_REFERENCE_TOKENS)),
        f"2.5 GiB x max(1, {tokens:,} batched tokens / {ACTIVATION_REFERENCE_TOKENS:,})",
        f"ASSUMED (the model's hidden, feed-forward or vocabulary size is unknown): {constant.source}",
    )


def estimate_memory(
    *,
    engine: str,
    weights: WeightsSize,
    kv: KvShape,
    max_model_len: int,
    max_num_seqs: int,
    max_num_batched_tokens: int | None,
    activations: ActivationShape | None = None,
    sampled_sequences: int | None = None,
    kv_cache_bytes_per_element: float = 2.0,
    kv_cache_dtype_basis: str = "bf16/f16 (vLLM 'auto' follows the model dtype; llama.cpp defaults to f16)",
    layout: Layout | None = None,
    enforce_eager: bool = False,
    engine_traits: EngineTraits | None = None,
    block_size: int | None = None,
) -> MemoryEstimate:
    """The estimate for one layout; every term says how it was computed.

    `engine` names the engine in the estimate; `engine_traits` says how it spends memory (None: the
    built-in engine `engine`'s): a utilization budget with profiled overheads, or everything up front.
    `activations`: the model's shape for the profiled activation peak (None: a measured constant);
    `sampled_sequences`: the engine's max_num_seqs when it differs from the KV term's `max_num_seqs`.
    """
    layout = layout or Layout()
    world = layout.world_size
    facts = engine_traits or _builtin_traits(engine)
    budgeted = facts.utilization_budget
    c = OVERHEAD_CONSTANTS
    terms: list[MemoryTerm] = []

    terms.append(
        MemoryTerm(
            name="weights",
            bytes=weights.bytes,
            per_gpu_bytes=math.ceil(weights.bytes / world),
            formula=weights.basis + (f", split over {world} GPUs" if world > 1 else ""),
            basis=weights.basis,
            assumed=weights.assumed,
            exact_with=weights.exact_with,
        )
    )

    full_layers = kv.layers - kv.sliding_layers
    window_tokens = min(max_model_len, kv.sliding_window or max_model_len)
    token_layers = full_layers * max_model_len + kv.sliding_layers * window_tokens
    # vLLM gives the KV cache whatever memory is left and refuses to start only when one max_model_len
    # sequence does not fit (vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory). With an assumed
    # (upper-bound) shape we size that startup minimum; max_num_seqs then caps concurrency, it is not
    # reserved. llama.cpp allocates its whole --ctx-size up front, so it is always sized in full.
    sequences = 1 if (kv.assumed and budgeted) else max_num_seqs
    kv_total = math.ceil(kv.tensors * kv.kv_width * kv_cache_bytes_per_element * sequences * token_layers)
    per_token = math.ceil(kv.tensors * (full_layers + kv.sliding_layers) * kv.kv_width * kv_cache_bytes_per_element)
    if kv.width_label:
        heads = kv.width_label
    elif kv.latent:
        heads = f"{kv.kv_width:,}-element latent"
    else:
        heads = f"{kv.kv_heads} KV heads x {kv.head_dim} head dim" if kv.kv_heads else f"{kv.kv_width:,} K/V width"
    formula = (
        f"{kv.tensors} x {kv.layers} layers x {heads} x {kv_cache_bytes_per_element:g} B x {max_model_len:,} "
        "max_model_len"
    )
    if sequences == max_num_seqs:
        formula += f" x {max_num_seqs} max_num_seqs"
    else:
        formula += (
            f" x 1 sequence (vLLM's startup minimum: the shape is an assumed upper bound, so the "
            f"{max_num_seqs} max_num_seqs share what is left instead of being reserved)"
        )
    if kv.sliding_layers:
        formula += f" ({kv.sliding_layers} sliding-window layers hold {window_tokens:,} tokens each)"
    tp = layout.tensor_parallel_size
    replication = tp if kv.latent else kv_replication(kv.kv_heads, tp)
    if kv.latent and tp > 1:
        formula += f"; the latent is whole on each of the {tp} TP ranks"
    elif replication > 1:
        formula += f"; each KV head copied to {replication} of the {tp} TP ranks"
    kv_on_gpus, formula = _with_linear_state(
        kv,
        kv_total * replication,
        formula,
        paged=facts.scheduler_settings,
        tp=tp,
        sequences=sequences,
        max_model_len=max_model_len,
        kv_bytes_per_element=kv_cache_bytes_per_element,
        block_size=block_size,
        max_num_batched_tokens=max_num_batched_tokens,
        pipeline_parallel=layout.pipeline_parallel_size,
    )
    terms.append(
        MemoryTerm(
            name="kv_cache",
            bytes=kv_on_gpus,
            per_gpu_bytes=math.ceil(kv_on_gpus / world),
            formula=formula,
            basis=f"{kv.basis}; KV dtype {kv_cache_dtype_basis}"
            + (f"; {kv.linear_state.basis}" if kv.linear_state is not None and kv.linear_layers else ""),
            assumed=kv.assumed,
            exact_with=kv.exact_with,
        )
    )

    def per_gpu(name: str, each: int, formula: str, basis: str, *, in_budget: bool = True) -> None:
        terms.append(
            MemoryTerm(
                name=name,
                bytes=each * world,
                per_gpu_bytes=each,
                formula=formula + (f" x {world} GPUs" if world > 1 else ""),
                basis=basis,
                in_budget=in_budget,
            )
        )

    if budgeted:
        tokens = max_num_batched_tokens or ACTIVATION_REFERENCE_TOKENS
        act, act_formula, act_basis = _activations_term(
            activations, tokens=tokens, sequences=sampled_sequences or max_num_seqs, tp=layout.tensor_parallel_size
        )
        per_gpu("activations", act, act_formula, act_basis)
        if not enforce_eager:
            per_gpu("cuda_graphs", c["cuda_graphs"].bytes, "1 GiB", c["cuda_graphs"].source)
        non_torch = c["non_torch"].bytes + (c["non_torch_multi_gpu"].bytes if world > 1 else 0)
        per_gpu(
            "non_torch",
            non_torch,
            "0.5 GiB" + (" + 0.5 GiB for collectives" if world > 1 else ""),
            c["non_torch"].source + (" " + c["non_torch_multi_gpu"].source if world > 1 else ""),
        )
        per_gpu("cuda_context", c["cuda_context"].bytes, "1 GiB", c["cuda_context"].source, in_budget=False)
    else:
        per_gpu("compute_buffers", c["llamacpp_compute"].bytes, "1.5 GiB", c["llamacpp_compute"].source)
        per_gpu("cuda_context", c["cuda_context"].bytes, "1 GiB", c["cuda_context"].source)

    return MemoryEstimate(
        engine=engine,
        terms=tuple(terms),
        layout=layout,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        kv_tokens=max_model_len * sequences,
        kv_bytes_per_token=per_token,
        notes=kv.notes,
    )
