"""The prose of a GPU decision: why nothing fits (`no_fit_error`), the explanation lines, the
parallel layouts offered and multi-node launch facts."""

from __future__ import annotations

import math

from modelformats.errors import NoFittingGpuError
from modelformats.gpu.catalogue import GpuSelection, format_compute_capability
from modelformats.gpu.decision import LaunchFacts, ParallelOption
from modelformats.gpu.estimate import format_bytes
from modelformats.gpu.sizing import GpuOption, ResolvedRequest, tp_divides

__all__ = ["explain_decision", "launch_facts", "layout_reason", "no_fit_error", "parallel_options"]


def no_fit_error(
    ctx: ResolvedRequest, policy: str, tried: list[GpuOption], override: GpuSelection | None
) -> NoFittingGpuError:
    lim = ctx.limits
    if not tried and override is not None:
        return NoFittingGpuError(
            f"Your --gpu {override.gpu.name}:{override.count} cannot carry these weights as one engine "
            f"({ctx.request.engine}: no layout of {override.count} GPUs on one node). Pick another count or type."
        )
    if not tried:
        cc = format_compute_capability(ctx.capability.minimum)
        return NoFittingGpuError(
            f"No GPU in the catalogue can run these weights under policy '{policy}' (rule "
            f"'{ctx.rule.name}'): "
            f"they need compute capability >= {cc} ({'; '.join(ctx.capability.reasons)}). "
            "Choose weights in another format, or a rule whose GPUs meet it."
        )
    biggest = max(tried, key=lambda o: (o.choice.usable_bytes, -o.choice.price_per_hour))
    est = biggest.estimate
    c = biggest.choice
    budget = math.floor(c.gpu.usable_memory_bytes * c.gpu_memory_utilization)
    what = "your --gpu" if override is not None else f"policy '{policy}', rule '{ctx.rule.name}'"
    fixes = [
        f"a smaller quant (weights are {format_bytes(ctx.weights.bytes)})",
        f"a shorter --max-model-len (now {lim.max_model_len:,}; the KV cache is "
        f"{format_bytes(est.term('kv_cache').bytes)})",
        f"fewer --max-num-seqs (now {lim.max_num_seqs})",
    ]
    if override is not None:
        fixes.append("a larger --gpu (or more of them, e.g. 'H100:2')")
    elif ctx.engine.multi_node and c.nodes >= ctx.request.max_nodes and c.gpu.multi_node:
        fixes.append(f"more GPUs: allow more than {ctx.request.max_nodes} nodes (max_nodes)")
    else:
        fixes.append("more GPUs: a rule with a larger GPU type, or vLLM for multi-GPU/multi-node plans")
    if ctx.kv.assumed or ctx.weights.assumed:
        fixes.append("recording config.json or the GGUF header, so assumed terms become exact")
    return NoFittingGpuError(
        f"No GPU holds the memory estimate for {what}: {est.summary()}. The biggest option tried, "
        f"{c.describe()} ({format_bytes(c.gpu.usable_memory_bytes)} x {c.gpu_memory_utilization:g} = "
        f"{format_bytes(budget)} per GPU), is {format_bytes(biggest.shortfall)} short per GPU. "
        f"To make it fit: {'; '.join(fixes)}."
    )


def layout_reason(ctx: ResolvedRequest, option: GpuOption) -> str:
    tp, pp = option.layout.tensor_parallel_size, option.layout.pipeline_parallel_size
    if tp > 1:
        return "tensor parallel over NVLink" + (", pipeline parallel across nodes" if pp > 1 else "")
    if not ctx.rule.settings.tensor_parallel:
        why = f"rule '{ctx.rule.name}' turns tensor parallelism off"
    elif not option.choice.gpu.nvlink:
        why = "no NVLink between these GPUs (vLLM advises pipeline over tensor parallelism)"
    elif ctx.kv.assumed or not ctx.request.traits.num_attention_heads:
        why = "the attention heads are unknown, so no tensor-parallel size can be checked"
    else:
        why = "no tensor-parallel size divides the attention and KV heads"
    return f"pipeline stages only: {why}"


def parallel_options(ctx: ResolvedRequest, option: GpuOption) -> tuple[ParallelOption, ...]:
    layout = option.layout
    if layout.world_size == 1 or not ctx.engine.tensor_parallel:
        return ()
    planned = ParallelOption(
        label="planned",
        tensor_parallel_size=layout.tensor_parallel_size,
        pipeline_parallel_size=layout.pipeline_parallel_size,
        reason=layout_reason(ctx, option),
    )
    out = [planned]
    per_node = option.choice.count
    if ctx.request.traits.is_moe and tp_divides(ctx, per_node):
        experts = ctx.request.traits.num_experts
        out.append(
            ParallelOption(
                label="expert parallel",
                tensor_parallel_size=per_node,
                pipeline_parallel_size=option.choice.nodes,
                enable_expert_parallel=True,
                reason=(
                    f"--enable-expert-parallel: the {experts or 'routed'} experts are spread over the "
                    f"{per_node} GPUs of a node instead of being sliced (attention stays tensor parallel)"
                ),
            )
        )
    return tuple(out)


def launch_facts(option: GpuOption) -> LaunchFacts | None:
    c = option.choice
    if c.nodes == 1:
        return None
    return LaunchFacts(
        nodes=c.nodes,
        gpus_per_node=c.count,
        modal_gpu=c.modal_gpu,
        # The engine's argv already holds `--nnodes N`: these are what differs per node.
        mp_head_args=("--node-rank", "0", "--master-addr", "{master_addr}"),
        mp_worker_args=("--node-rank", "{node_rank}", "--master-addr", "{master_addr}", "--headless"),
        ray_head_command=("ray", "start", "--head", "--node-ip-address={master_addr}"),
        ray_worker_command=("ray", "start", "--address={master_addr}:6379"),
        ray_serve_args=("--distributed-executor-backend", "ray"),
        ray_requirements=("ray[default]",),
        modal_cluster={
            "decorator": f"@modal.clustered(size={c.nodes}, rdma=True)",
            "size": c.nodes,
            "rdma": True,
            "gpu": c.modal_gpu,
            "apt_install": ["libibverbs1"],
            "node_rank": "modal.Cluster.from_context().container_rank()",
            "master_addr": "modal.Cluster.from_context().container_ips(family='ipv4')[0]",
            "http": "app.server (clustered web functions are not supported); requests reach rank 0",
        },
        notes=(
            "Every container requests all GPUs of its host (Modal clusters).",
            "Since vLLM 0.18 Ray is not a vLLM dependency: install ray[default] for the Ray backend; Ray needs IPv4.",
            "There is no official Modal multi-node vLLM example: this layout is plausible but unverified there.",
        ),
    )


def explain_decision(
    ctx: ResolvedRequest, policy: str, option: GpuOption, override: GpuSelection | None
) -> tuple[str, ...]:
    c = option.choice
    lim = ctx.limits
    est = option.estimate
    out = [f"GPU rule '{ctx.rule.name}' fired ({ctx.rule.match.describe()}): {ctx.rule.reason}"]
    out.append("Limits: " + "; ".join(ctx.notes) + ".")
    for t in est.terms:
        tag = " [ASSUMED]" if t.assumed else ""
        where = "" if t.in_budget else " (outside the utilization budget)"
        out.append(f"Memory {t.name}{tag}: {format_bytes(t.bytes)}{where} = {t.formula}.")
    budget = math.floor(c.gpu.usable_memory_bytes * c.gpu_memory_utilization)
    engine = ctx.engine
    knob = (
        "gpu_memory_utilization"
        if engine.utilization_budget
        else f"headroom ({engine.display_name} has no utilization knob)"
    )
    how = "--gpu as given" if override is not None else f"policy '{policy}'"
    out.append(
        f"{c.describe()} ({how}, ${c.price_per_hour:.2f}/h): {format_bytes(c.gpu.usable_memory_bytes)} x "
        f"{c.gpu_memory_utilization:g} {knob} = {format_bytes(budget)} per GPU holds "
        f"{format_bytes(est.per_gpu_in_budget_bytes)} per GPU "
        f"({100 * est.per_gpu_in_budget_bytes / budget:.0f} %); compute capability "
        f"{format_compute_capability(c.gpu.compute_capability)} >= "
        f"{format_compute_capability(ctx.capability.minimum)}."
    )
    lay = option.layout
    if engine.tensor_parallel:
        parts = [
            f"tensor_parallel_size {lay.tensor_parallel_size}",
            f"pipeline_parallel_size {lay.pipeline_parallel_size}",
        ]
        if not ctx.rule.settings.tensor_parallel:
            parts[0] += " (tensor parallelism off by rule)"
        if lim.enable_chunked_prefill is False:
            parts.append(
                f"chunked prefill off (max_num_batched_tokens {lim.max_num_batched_tokens:,} >= max_model_len)"
            )
        elif lim.max_num_batched_tokens is not None:
            parts.append(f"max_num_batched_tokens {lim.max_num_batched_tokens:,}")
        if lim.block_size is not None:
            parts.append(f"block size {lim.block_size}")
        out.append(f"{engine.display_name}: " + ", ".join(parts) + ".")
    else:
        out.append(
            f"{engine.display_name}: all layers on the GPU (-ngl all), F16 KV cache, --ctx-size "
            f"{lim.max_model_len * lim.max_num_seqs:,}"
            f" shared by --parallel {lim.max_num_seqs} slots"
            + (f", layers split over {lay.layer_split} GPUs" if lay.layer_split > 1 else "")
            + "."
        )
    if c.nodes > 1:
        out.append(
            f"Multi-node: {c.nodes} nodes x {c.modal_gpu}, tensor parallel {lay.tensor_parallel_size} x "
            f"pipeline {lay.pipeline_parallel_size}; launch facts (vLLM --nnodes/--node-rank/--master-addr, "
            "or Ray) are in 'launch'."
        )
    return tuple(out)
