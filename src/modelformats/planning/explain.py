"""The plan's prose: the explanation lines (detection, choice, evidence, files, GPU, alternatives) and the
reason each alternative route ranks below the chosen one."""

from __future__ import annotations

from modelformats.deployment import Alternative
from modelformats.engines.base import LoadVerdict
from modelformats.listing import RepoListing
from modelformats.planning.route import Route
from modelformats.registry import DetectionResult

__all__ = ["alternative", "explain", "human_bytes"]


def explain(
    requested: RepoListing,
    detected: DetectionResult,
    chosen: Route,
    alternatives: tuple[Alternative, ...],
    *,
    notes: list[str],
    experts_per_token: int | None,
) -> list[str]:
    d = detected.detection
    out = [f"{requested.repo_id} holds {d.format} weights: {'; '.join(d.evidence)} ({detected.rule})."]
    out += notes
    if chosen.kind == "base-native":
        out.append(
            f"Chosen: {chosen.label} — {chosen.listing.repo_id} is the same model in its original "
            "weights, served by vLLM's own kernels."
        )
    elif chosen.convert is not None:
        step = chosen.convert
        out.append(
            f"Chosen: {chosen.label} — after download, `modelformats convert` writes {step.output} from "
            f"{step.gguf} ({step.estimate_basis}); the engine serves that directory."
        )
    else:
        out.append(f"Chosen: {chosen.label}.")
    out.append(f"Engine evidence: {chosen.verdict.level.description}" + _evidence_suffix(chosen.verdict))
    sel = chosen.selection
    assert sel is not None
    size = human_bytes(sel.download_bytes)
    out.append(
        f"Fetch {len(sel.files)} file(s) from {chosen.listing.repo_id} ({size}; {sel.bytes_basis})"
        + (f", quant {sel.quant}" if sel.quant else "")
        + "."
    )
    out += sel.notes  # a GGUF selection explains its tokenizer source among its notes
    n = experts_per_token
    if n is not None and chosen.weights is not None:
        t = chosen.weights.traits
        default = f", instead of the model's {t.num_experts_per_tok}" if t.num_experts_per_tok else ""
        out.append(f"Experts per token: {n} of the model's {t.num_experts} (--experts-per-token{default}).")
    assert chosen.gpu is not None
    out += chosen.gpu.explanation
    for alt in alternatives:
        price = f"${alt.price_per_hour:.2f}/h" if alt.price_per_hour is not None else "no price"
        out.append(f"Alternative {alt.rank}: {alt.label} ({price}) — {alt.reason}")
    return out


def alternative(rank: int, route: Route, chosen: Route) -> Alternative:
    if route.loads:
        if route.verdict.level.rank > chosen.verdict.level.rank:
            reason = f"weaker evidence: {route.verdict.level.description}"
        elif route.price is not None and chosen.price is not None and route.price > chosen.price:
            reason = f"costs ${route.price - chosen.price:.2f}/h more"
        else:
            reason = "ranked lower (engine preference or download size)"
    else:
        reason = "cannot load: " + ("; ".join(route.reasons) or "refused")
    if route.note is not None and route.loads:
        reason += f"; {route.note}"
    sel = route.selection
    return Alternative(
        rank=rank,
        label=route.label,
        repo_id=route.listing.repo_id,
        format=route.format,
        engine=f"{route.engine.name} {route.engine.version}",
        loads=route.loads,
        verdict=route.verdict,
        gpu=route.gpu.gpu_summary() if route.gpu is not None else None,
        price_per_hour=route.price,
        download_bytes=sel.download_bytes if sel is not None else None,
        reason=reason,
        quant=sel.quant if sel is not None else None,
        argv=route.command.argv if route.command is not None else (),
        requirements=route.command.requirements if route.command is not None else (),
    )


def _evidence_suffix(verdict: LoadVerdict) -> str:
    return (" (" + "; ".join(verdict.evidence) + ").") if verdict.evidence else "."


def human_bytes(n: int | None) -> str:
    if n is None:
        return "size unknown"
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
