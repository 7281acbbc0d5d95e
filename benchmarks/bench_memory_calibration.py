"""The memory estimate against vLLM's own numbers: every log in tests/data/calibration/vllm_startup_logs.json.

For each public vLLM startup log (quoted exactly, with its model shape and settings) the estimator is
fed the same shape and settings and compared with what vLLM printed:

- weights: "Loading model weights took" / "Model loading took" (GiB, per GPU) against the weights
  term per GPU. Quantized checkpoints are sized through the format strategy that claims their
  config.json (`FileSelection.weight_bytes`), never from a listing's file sizes.
- kv/token: vLLM's KV bytes per token per GPU (available KV memory / KV tokens, or the KV needed for
  one max_model_len sequence) against the estimate's KV bytes per token on the fullest GPU.
- non-kv: where the log gives vLLM's total GPU memory, the utilization and the KV memory it had left,
  `total x utilization - KV` (what vLLM's profiler counted besides the KV cache: weights, activation
  peak, non-torch memory, CUDA graphs where they are in the budget) against the estimate's in-budget
  terms other than the KV cache, per GPU (GiB).
- act / non-torch: where the log quotes them, vLLM's profiled activation peak and non-torch memory
  against the estimate's activations term (from the model's shape, gpu/activations.py, where the shape
  has its hidden, feed-forward and vocabulary sizes) and non_torch constant.
- fit: where the GPU's total is known (printed by the log, else the total of the catalogue GPU its
  settings name, as plans budget it) and the utilization is set (quoted, else vLLM's default with its
  source), whether the estimate (one max_model_len sequence, vLLM's start-up check) fits
  `total x gpu_memory_utilization`, and its outside-budget terms the rest, against whether vLLM started.
  Settings the log leaves open (settings.open) are tried with every candidate value: the verdict is
  judged only when all agree.

Logs of vLLM between vllm#10511 and vllm#11809 (settings.non_torch_counts_cached_blocks) counted the
caching allocator's idle blocks as non-torch memory: their non-torch row is shown but left out of the
statistics, and their non-kv row compares both sides without the non-torch term.

The baseline, measured in the same run, is the estimator without the facts issue 16 added: no
format bytes per weight (2 bytes per weight), no MLA latent, no per-layer attention kinds, the
activation constant (2.5 GiB per 8,192 batched tokens) instead of the model's shape.

    python benchmarks/bench_memory_calibration.py [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import textwrap
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelformats.formats.base import SelectionContext
from modelformats.gpu import GpuRequest
from modelformats.gpu.activations import ActivationShape
from modelformats.gpu.catalogue import get_gpu, parse_compute_capability
from modelformats.gpu.estimate import Layout, estimate_memory
from modelformats.gpu.mla_weights import mla_absorbed_bytes
from modelformats.gpu.moe_kernels import MXFP4_BACKENDS, ExpertLayout
from modelformats.gpu.rules import default_rules
from modelformats.gpu.sizing import resolve_request, weights_on
from modelformats.listing import RepoFile, RepoListing
from modelformats.registry import default_registry
from modelformats.traits import ModelTraits
from modelformats.weightbytes import WeightBytes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration" / "vllm_startup_logs.json"
GIB = 1024**3


@dataclass(frozen=True)
class Row:
    log: str
    family: str
    term: str
    observed: float
    estimated: float
    baseline: float
    note: str = ""  # why this row is read differently (a footnote mark in the table)
    counted: bool = True  # False: shown, but not in the per-term statistics

    @property
    def error(self) -> float:
        return self.estimated / self.observed - 1

    @property
    def baseline_error(self) -> float:
        return self.baseline / self.observed - 1


@dataclass(frozen=True)
class Fit:
    """Whether the estimate fits the log's GPU, against whether vLLM started (None: the open settings disagree)."""

    log: str
    family: str
    started: bool
    estimate: bool | None
    baseline: bool | None
    total_from: str  # "log", or the catalogue GPU whose reported total was used
    # The shortfall per GPU (GiB; negative: room left) of the open combination nearest to the other verdict.
    closest_gib: float
    detail: str = ""  # what the verdict turns on when it is not judged, or the log's fit_note

    @property
    def judged(self) -> bool:
        return self.estimate is not None

    @property
    def agrees(self) -> bool:
        return self.estimate == self.started


def traits_of(shape: Mapping[str, Any]) -> ModelTraits:
    keys = {
        "params": "params_total",
        "layers": "num_layers",
        "kv_heads": "num_kv_heads",
        "attention_heads": "num_attention_heads",
        "head_dim": "head_dim",
        "hidden_size": "hidden_size",
        "vocab_size": "vocab_size",
        "intermediate_size": "intermediate_size",
        "tie_word_embeddings": "tie_word_embeddings",
        "kv_lora_rank": "kv_lora_rank",
        "qk_rope_head_dim": "qk_rope_head_dim",
        "qk_nope_head_dim": "qk_nope_head_dim",
        "v_head_dim": "v_head_dim",
        "full_attention_layers": "full_attention_layers",
        "sliding_attention_layers": "sliding_attention_layers",
        "linear_attention_layers": "linear_attention_layers",
        "sliding_window": "sliding_window",
        "num_experts": "num_experts",
        "num_experts_per_tok": "num_experts_per_tok",
        "expert_intermediate_size": "expert_intermediate_size",
        "linear_num_key_heads": "linear_num_key_heads",
        "linear_num_value_heads": "linear_num_value_heads",
        "linear_key_head_dim": "linear_key_head_dim",
        "linear_value_head_dim": "linear_value_head_dim",
        "linear_conv_kernel_dim": "linear_conv_kernel_dim",
        "mamba_ssm_dtype": "mamba_ssm_dtype",
        "torch_dtype": "torch_dtype",
    }
    values = {trait: shape[key] for key, trait in keys.items() if key in shape}
    if "num_experts" in values:  # as traits_from_config decides it
        values["is_moe"] = values["num_experts"] > 1
    if "sliding_attention_layers" in values and "linear_attention_layers" not in values:
        values["linear_attention_layers"] = 0
    return ModelTraits(**values, sources=dict.fromkeys(values, "calibration shape"))


def weight_bytes_of(shape: Mapping[str, Any]) -> WeightBytes | None:
    """What the format strategy that claims this config.json says (the planner's own path)."""
    qc = shape.get("quantization_config")
    if qc is None:
        return None
    listing = RepoListing(
        repo_id="calibration/model",
        files=(RepoFile(path="config.json"), RepoFile(path="model.safetensors")),
        config={"model_type": "calibration", "quantization_config": qc},
    )
    found = default_registry().detect(listing)
    return found.strategy.select_files(listing, found.detection, SelectionContext()).weight_bytes


def baseline_traits(traits: ModelTraits) -> ModelTraits:
    """The estimator before issue 16: no MLA latent, no per-layer attention kinds."""
    return replace(
        traits,
        kv_lora_rank=None,
        qk_rope_head_dim=None,
        full_attention_layers=None,
        sliding_attention_layers=None,
        linear_attention_layers=None,
        linear_num_key_heads=None,
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def _expert_layout(settings: Mapping[str, Any]) -> ExpertLayout | None:
    """The MoE kernel the log names; vLLM's Triton path kept the raw MXFP4 scales before 0.33 (0.23 does)."""
    name = settings.get("moe_backend")
    if name is None:
        return None
    layout = MXFP4_BACKENDS[name]
    version = settings.get("vllm_version")
    if name == "triton" and version is not None and _version(version) < (0, 33):
        layout = replace(layout, raw_scales_kept=True)
    return layout


def _scheduler(log: Mapping[str, Any], length: int) -> tuple[int | None, int | None]:
    """(max_num_batched_tokens, max_num_seqs) of the log's profiling run: its settings, else V0's defaults
    (256 sequences; with chunked prefill off, V0's default up to 32,768 tokens, max(max_model_len, 2048))."""
    s = log["settings"]
    batched, seqs = s.get("max_num_batched_tokens"), s.get("max_num_seqs")
    if log["vllm"].startswith("V0"):
        seqs = seqs or 256
        if batched is None and s.get("max_model_len") and length <= 32768:
            batched = max(length, 2048)
    return batched, seqs


def _estimate(
    log: Mapping[str, Any],
    traits: ModelTraits,
    wb: WeightBytes | None,
    bpw: float | None,
    *,
    shaped_activations: bool = True,
) -> Any:
    s = log["settings"]
    tp = s.get("tensor_parallel_size", 1)
    length = s.get("max_model_len") or log["observed"].get("kv_needed_tokens") or 4096
    batched, sampled = _scheduler(log, length)
    request = GpuRequest(
        traits=traits,
        # A log that quotes only the KV cache: weights are not compared (0 keeps the request valid).
        weights_bytes=None if traits.params_total else 0,
        weight_bytes=wb,
        bytes_per_weight=bpw,
        bytes_per_weight_basis="calibration shape" if bpw else "",
        weights_in_torch_dtype=False,
        max_model_len=length,
        max_num_seqs=1,
        kv_cache_bytes_per_element=1.0 if str(s.get("kv_cache_dtype", "auto")).startswith("fp8") else 2.0,
    )
    ctx = resolve_request(request, default_rules())
    layout = Layout(tensor_parallel_size=tp)
    cc = s.get("compute_capability")
    weights = ctx.weights
    if cc is not None:  # the GPU picks the MoE kernel, and the kernel the experts' padded shape
        weights = weights_on(ctx, parse_compute_capability(cc), layout, expert_layout=_expert_layout(s))
    kv = ctx.kv
    align = s.get("kv_entry_alignment_bytes")
    if align and kv.latent:  # V0 (vLLM 0.7.x) padded each token's MLA latent to 256 B (CacheEngine._align_cache)
        width = -(-kv.kv_width * 2 // align) * align // 2
        kv = replace(kv, kv_width=width, basis=f"{kv.basis}; V0 entry padded to {align} B = {width} elements")
    absorbed = mla_absorbed_bytes(traits) if s.get("mla_matrix_absorption") else None
    if absorbed is not None:  # early-2025 V0 MLA (vLLM 0.7.x) kept absorbed 16-bit matrices besides the weights
        weights = replace(weights, bytes=weights.bytes + absorbed[0], basis=f"{weights.basis}; + {absorbed[1]}")
    return estimate_memory(
        engine="vllm",
        weights=weights,
        kv=kv,
        max_model_len=length,
        max_num_seqs=1,
        max_num_batched_tokens=batched,
        activations=ActivationShape.from_traits(traits) if shaped_activations else None,
        sampled_sequences=sampled,
        kv_cache_bytes_per_element=request.kv_cache_bytes_per_element,
        layout=layout,
        # V0 (before vLLM 0.21) captured CUDA graphs after sizing the KV cache: outside the budget.
        enforce_eager=bool(s.get("enforce_eager", False)) or s.get("cuda_graphs_in_budget") is False,
        block_size=s.get("block_size", 16),
    )


def kv_per_token_per_gpu(est: Any) -> float:
    kv = est.term("kv_cache")
    return kv.per_gpu_bytes / est.max_model_len


def gpu_total(log: Mapping[str, Any]) -> tuple[int | None, str]:
    """vLLM's total GPU memory for this log (bytes) and where it comes from: the log, else the catalogue."""
    printed = log["observed"].get("total_gpu_gib")
    if printed is not None:
        return int(printed * GIB), "log"
    name = log["settings"].get("gpu")
    if name is None:
        return None, ""
    gpu = get_gpu(name)
    return gpu.usable_memory_bytes, gpu.name  # the engine's total as plans budget it (catalogue.py)


def _verdict(answers: Mapping[tuple[Any, ...], bool]) -> bool | None:
    values = set(answers.values())
    return values.pop() if len(values) == 1 else None


def fit_of(log: Mapping[str, Any], traits: ModelTraits, wb: WeightBytes | None, bpw: float | None) -> Fit | None:
    """The fit verdict over every combination of the settings the log leaves open; None: nothing to judge."""
    total, total_from = gpu_total(log)
    if total is None or "started" not in log["observed"]:
        return None
    candidates: Mapping[str, list[Any]] = log["settings"].get("open", {})
    keys = sorted(candidates)
    new: dict[tuple[Any, ...], bool] = {}
    old: dict[tuple[Any, ...], bool] = {}
    shortfalls: list[int] = []
    for combo in itertools.product(*(candidates[k] for k in keys)):
        variant = {**log, "settings": {**log["settings"], **dict(zip(keys, combo, strict=True))}}
        util = variant["settings"].get("gpu_memory_utilization")
        if util is None:
            return None
        shortfall = _estimate(variant, traits, wb, bpw).shortfall_bytes(total, util)
        shortfalls.append(shortfall)
        new[combo] = shortfall <= 0
        base = _estimate(variant, baseline_traits(traits), None, bpw or 2.0, shaped_activations=False)
        old[combo] = base.fits(total, util)
    estimate = _verdict(new)
    detail = log.get("fit_note", "")
    if estimate is None:
        detail = (
            "turns on "
            + ", ".join("/".join(f"{v}" for v in combo) + (": fits" if ok else ": no fit") for combo, ok in new.items())
            + f" ({', '.join(keys)})"
        )
    closest = min(shortfalls, key=abs) / GIB
    return Fit(
        log["id"], log["family"], log["observed"]["started"], estimate, _verdict(old), total_from, closest, detail
    )


def evaluate(data: Mapping[str, Any]) -> tuple[list[Row], list[Fit]]:
    rows: list[Row] = []
    fits: list[Fit] = []
    for log in data["logs"]:
        shape, obs = log["shape"], log["observed"]
        traits = traits_of(shape)
        wb = weight_bytes_of(shape)
        bpw = shape.get("bytes_per_weight")
        new = _estimate(log, traits, wb, bpw)
        old = _estimate(log, baseline_traits(traits), None, bpw or 2.0, shaped_activations=False)
        fam, lid = log["family"], log["id"]
        weights_obs = obs.get("weights_gib", obs.get("weights_gib_per_gpu"))
        if weights_obs is not None and "params" in shape:
            rows.append(
                Row(
                    lid,
                    fam,
                    "weights",
                    weights_obs * GIB,
                    new.term("weights").per_gpu_bytes,
                    old.term("weights").per_gpu_bytes,
                )
            )
        per_token_obs: float | None = None
        if "kv_available_gib" in obs and "kv_tokens" in obs:
            per_token_obs = obs["kv_available_gib"] * GIB / obs["kv_tokens"]
        elif "kv_needed_gib" in obs:
            per_token_obs = obs["kv_needed_gib"] * GIB / obs["kv_needed_tokens"]
        if per_token_obs is not None:
            rows.append(Row(lid, fam, "kv/token", per_token_obs, kv_per_token_per_gpu(new), kv_per_token_per_gpu(old)))
        act_obs = obs.get("activation_gib")
        if act_obs is None and "peak_torch_gib" in obs and weights_obs is not None:
            act_obs = obs["peak_torch_gib"] - weights_obs  # V0's peak_torch_memory holds the weights
        if act_obs is not None and ActivationShape.from_traits(traits) is not None:
            act, base = new.term("activations").per_gpu_bytes, old.term("activations").per_gpu_bytes
            rows.append(Row(lid, fam, "act", act_obs * GIB, act, base))
        cached_blocks = bool(log["settings"].get("non_torch_counts_cached_blocks"))
        if "non_torch_gib" in obs:
            non_torch, base = new.term("non_torch").per_gpu_bytes, old.term("non_torch").per_gpu_bytes
            note = CACHED_BLOCKS if cached_blocks else ""
            observed = obs["non_torch_gib"] * GIB
            rows.append(Row(lid, fam, "non-torch", observed, non_torch, base, note, counted=not cached_blocks))
        total = obs.get("total_gpu_gib")
        util = log["settings"].get("gpu_memory_utilization")
        if total is not None and util is not None and "kv_available_gib" in obs:
            # vLLM gives the KV cache what is left of total x utilization after its profiled non-KV memory
            # (weights, activation peak, non-torch, CUDA graphs where V1 counts them): that remainder is
            # the fixed overheads plus weights the estimate must match.
            non_kv_obs = total * GIB * util - obs["kv_available_gib"] * GIB
            new_non_kv, old_non_kv = _non_kv(new), _non_kv(old)
            note = ""
            if cached_blocks:  # that non-torch figure is not vLLM's measure since #11809: both sides without it
                non_kv_obs -= obs["non_torch_gib"] * GIB
                new_non_kv -= new.term("non_torch").per_gpu_bytes
                old_non_kv -= old.term("non_torch").per_gpu_bytes
                note = CACHED_BLOCKS_NON_KV
            rows.append(Row(lid, fam, "non-kv", non_kv_obs, new_non_kv, old_non_kv, note))
        fit = fit_of(log, traits, wb, bpw)
        if fit is not None:
            fits.append(fit)
    return rows, fits


CACHED_BLOCKS = (
    "vLLM's profiler of vllm#10511 until vllm#11809 counted the caching allocator's idle blocks as non-torch "
    "memory (not vLLM's measure since): not in the statistics"
)
CACHED_BLOCKS_NON_KV = "non-torch left out on both sides (vllm#10511 until vllm#11809)"


def _non_kv(estimate: Any) -> float:
    """The estimate's bytes inside vLLM's utilization budget on the fullest GPU, without the KV cache."""
    return float(sum(t.per_gpu_bytes for t in estimate.terms if t.in_budget and t.name != "kv_cache"))


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def render(
    rows: list[Row],
    fits: list[Fit],
    logs: list[Mapping[str, Any]] | None = None,
) -> str:
    out: list[str] = []
    if logs is not None:
        families: dict[str, int] = defaultdict(int)
        for log in logs:
            families[log["family"]] += 1
        compared = {r.log for r in rows} | {f.log for f in fits}
        skipped = [log["id"] for log in logs if log["id"] not in compared]
        out += [
            f"{len(logs)} logs, by family: " + ", ".join(f"{fam} {n}" for fam, n in sorted(families.items())),
            f"not compared (no term the estimator can be held to: see each log's note): {len(skipped)}",
            *(f"  {lid}" for lid in skipped),
            "",
        ]
    out += ["per log", f"{'log':42} {'term':8} {'vLLM':>10} {'estimate':>10} {'error':>8} {'baseline':>9}"]
    notes: list[str] = []
    for r in rows:
        unit = 1 if r.term == "kv/token" else GIB
        fmt = "{:>10,.0f}" if r.term == "kv/token" else "{:>10.2f}"
        mark = ""
        if r.note:
            if r.note not in notes:
                notes.append(r.note)
            mark = f" [{notes.index(r.note) + 1}]"
        out.append(
            f"{r.log[:42]:42} {r.term:8} {fmt.format(r.observed / unit)} {fmt.format(r.estimated / unit)} "
            f"{_pct(r.error):>8} {_pct(r.baseline_error):>9}{mark}"
        )
    out += [f"  [{i}] {note}" for i, note in enumerate(notes, 1)]
    out += [
        "",
        "per term and family (|error|)",
        f"{'term':9} {'family':23} {'n':>2} {'median':>8} {'max':>8} {'base med':>9} {'max |diff|':>11}",
    ]
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in (r for r in rows if r.counted):
        groups[(r.term, r.family)].append(r)
        groups[(r.term, "all")].append(r)
    for (term, fam), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == "all", kv[0][1])):
        errs = [abs(r.error) for r in rs]
        base = [abs(r.baseline_error) for r in rs]
        worst = "" if term == "kv/token" else f"{max(abs(r.estimated - r.observed) for r in rs) / GIB:.2f} GiB"
        out.append(
            f"{term:9} {fam:23} {len(rs):>2} {statistics.median(errs) * 100:>7.1f}% {max(errs) * 100:>7.1f}% "
            f"{statistics.median(base) * 100:>8.1f}% {worst:>11}"
        )
    out += ["", *render_fits(fits)]
    return "\n".join(out)


def render_fits(fits: list[Fit]) -> list[str]:
    judged = [f for f in fits if f.judged]
    agree = sum(f.agrees for f in judged)
    base_agree = sum(f.baseline == f.started for f in judged)
    out = [
        f"fit verdict agrees with vLLM: {agree}/{len(judged)} (baseline {base_agree}/{len(judged)}); "
        f"not judged: {len(fits) - len(judged)}",
        f"  {'log':42} {'vLLM':8} {'estimate':8} {'short':>6} GPU total",
    ]
    notes: list[str] = []
    for f in fits:
        verdict = "-" if f.estimate is None else "fits" if f.estimate else "no fit"
        mark = "" if not f.judged or f.agrees else "  MISS"
        if f.detail:
            notes.append(f.detail)
            mark += f" [{len(notes)}]"
        started = "started" if f.started else "refused"
        out.append(f"  {f.log[:42]:42} {started:8} {verdict:8} {f.closest_gib:>6.2f} {f.total_from}{mark}")
    for i, note in enumerate(notes, 1):
        out += textwrap.wrap(note, 100, initial_indent=f"  [{i}] ", subsequent_indent="      ")
    out.append("  short: GiB per GPU the estimate misses the GPU by (negative: room left), for the open settings'")
    out.append("  combination nearest to the other verdict")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable rows")
    args = parser.parse_args(argv)
    data = json.loads(DATA.read_text())
    rows, fits = evaluate(data)
    if args.json:
        print(
            json.dumps(
                {"rows": [r.__dict__ | {"error": r.error} for r in rows], "fits": [f.__dict__ for f in fits]}, indent=1
            )
        )
    else:
        print(render(rows, fits, data["logs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
