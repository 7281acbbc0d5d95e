"""vLLM's own engine generates the right tokens on CPU for the target's GGUF layout (`nox -s vllm_cpu_generation`).

1. Tiny random dense Llama and Mixtral checkpoints (tools/gguf_proof/checkpoints.py, heads widened to
   32 for vLLM's CPU attention), converted by llama.cpp's own convert_hf_to_gguf.py to F32 and F16.
2. references.py: 16 greedy tokens per prompt (the plan's three prompts, tokenized by the
   checkpoint's tokenizer) from llama.cpp on each GGUF and transformers on the HF checkpoint.
3. vllm_generate.py in three processes: with the modelformats plugin; with it and its Q/K un-permute
   switched off (test-only); with VLLM_PLUGINS=gguf (vllm-gguf-plugin alone).
4. serve.py: `vllm serve` with the target plan's argv built for the tiny target-layout GGUF,
   answering `modelformats smoke`; streamed answers equal to the offline ones.
5. The converted route (docs/convert.md): every GGUF converted back by `modelformats.convert.convert_gguf`
   (float32, the tiny original as base), then generated from by plain vLLM (VLLM_PLUGINS="": no GGUF
   plugin), compared with the same references; negative control: the F32 GGUFs converted with the layout's
   Q/K un-permute flipped (off for llama, forced on for qwen2 and qwen3moe, as `nox -s gguf_convert_proof`'s control).
   Qwen2 and Qwen3-MoE (tools/gguf_convert_proof/qwen.py) take this route only: no GGUF plugin covers them, so
   steps 3-4 are not run for them.
6. Verdicts (compare.py) into the fresh results file; `nox -s vllm_cpu_generation` compares it with
   src/modelformats/engines/data/vllm_cpu_generation.json (tools/evidence.py).
Exit status 1 if a case fails, is undecidable, a negative control does not fail as predicted, or the
served run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from tools.gguf_convert_proof.qwen import QWEN3MOE, build_qwen, qwen_vocab
from tools.gguf_proof.checkpoints import LAYOUTS, PROMPTS, Layout, build, with_head_dim
from tools.vllm_cpu_generation.compare import compare_case
from tools.vllm_cpu_generation.serve import build_argv, compare_served, serve_and_smoke

SCHEMA = "modelformats-vllm-cpu-generation/1"
LEVEL = "cpu-generation"
STEPS = 16
# vLLM's CPU attention takes head sizes 32, 64, 80, ...; the weight proof's 16 is too small.
HEAD_DIM = 32
# Long enough for the target plan's --max-model-len 4096, so that flag is served unchanged.
MAX_POSITIONS = 4096
# GGUF tensor type -> converter --outtype and the vLLM dtype it is run with. F16 tensors are used as
# stored and computed in float32, like the transformers reference: vLLM's float16 compute differs from
# it by ~5e-3 in top-1 log-probability, more than this random model's smallest top-1/top-2 margins.
GGUF_TYPES = {"F32": ("f32", "float32"), "F16": ("f16", "float32")}
# The weights' seed: the first of 0-4 whose greedy generations keep every top-1/top-2 margin above
# 0.01 in both layouts (transformers, float32), so llama.cpp's F16 kernels - which round activations
# to F16 (up to 4e-3 in top-1 log-probability) - cannot flip a token. Margins are recorded per case.
MODEL_SEED = 3
TARGET_LAYOUT = "llama+experts"
SERVED_TYPE = "F32"
PREDICTED_WITHOUT_PLUGIN = {
    "llama": "There is no module or parameter named 'embed_tokens.weight'",
    "llama+experts": "Unknown gguf model_type: mixtral",
}
MODULE = "tools.vllm_cpu_generation"
# The converted route: the dtype convert_gguf writes here (the references compute in float32), and the
# input types whose conversion is also made with the Q/K un-permute flipped (the negative control).
CONVERTED_DTYPE = "float32"
CONVERTED_CONTROL_TYPES = ("F32",)
# Layouts generated from only through the converted route (no GGUF plugin loads them in vLLM).
# Qwen2 and Qwen3-MoE: gguf_convert_proof's recipes (tools/gguf_convert_proof/qwen.py). llama.cpp's qwen2 takes the
# head size as hidden / heads (it ignores the header's key_length), so the heads of 32 vLLM's CPU attention needs
# come with hidden 128 = 4 heads x 32; qwen3moe reads its head size from the header, so hidden stays 64.
QWEN2 = Layout(
    name="qwen2",
    architecture="Qwen2ForCausalLM",
    config={**LAYOUTS[0].config, "hidden_size": 128, "head_dim": 32, "use_sliding_window": False},
)
CONVERTED_ONLY = (QWEN2, QWEN3MOE)
# The negative control of a layout: its declared Q/K un-permute (`qk_permuted`) flipped.
CONTROL = {True: "Q/K un-permute off", False: "Q/K un-permute forced on"}


def slug(layout: str) -> str:
    return layout.replace("+", "_")


def convert(converter: Path, hf_dir: Path, outtype: str, out: Path) -> None:
    log = out.with_suffix(".log")
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, str(converter), str(hf_dir), "--outtype", outtype, "--outfile", str(out)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed for {hf_dir} ({outtype}); see {log}")


def run_module(name: str, cases: Path, out: Path, env: dict[str, str]) -> Any:
    log = out.with_suffix(".log")
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", f"{MODULE}.{name}", str(cases), str(out)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed (exit {done.returncode}); see {log}")
    return json.loads(out.read_text())


def build_cases(converter: Path, work: Path) -> list[dict[str, Any]]:
    import shutil

    import transformers

    cases = []
    vocab = qwen_vocab(converter, work)  # Qwen3-MoE's BPE vocabulary, from the converter's sdist
    for base in (*LAYOUTS, *CONVERTED_ONLY):
        converted_only = base in CONVERTED_ONLY
        layout = with_head_dim(base, HEAD_DIM)
        layout = replace(layout, config={**layout.config, "max_position_embeddings": MAX_POSITIONS})
        hf_dir = work / "hf" / slug(layout.name)
        if converted_only:
            shutil.rmtree(hf_dir, ignore_errors=True)  # a previous run's config.json would pick the tokenizer class
            build_qwen(layout, hf_dir, vocab=vocab, seed=MODEL_SEED)
        else:
            build(layout, hf_dir, seed=MODEL_SEED)
        tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
        prompts = [tokenizer.encode(text) for text in PROMPTS]
        for gguf_type, (outtype, dtype) in GGUF_TYPES.items():
            gguf_path = work / "gguf" / f"{slug(layout.name)}-{outtype}.gguf"
            gguf_path.parent.mkdir(parents=True, exist_ok=True)
            convert(converter, hf_dir, outtype, gguf_path)
            cases.append(
                {
                    "name": f"{layout.name} {gguf_type}",
                    "layout": layout.name,
                    "gguf_type": gguf_type,
                    "dtype": dtype,
                    "gguf": str(gguf_path),
                    "hf_dir": str(hf_dir),
                    "prompt_texts": list(PROMPTS),
                    "prompts": prompts,
                    "steps": STEPS,
                    "chat": layout.name == TARGET_LAYOUT and gguf_type == SERVED_TYPE,
                    "converted_only": converted_only,
                }
            )
    return cases


def convert_checkpoints(cases: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """`modelformats convert` of every case's GGUF (float32, the tiny original as `base`), and of the F32
    ones again with the layout's Q/K un-permute flipped: vLLM cases loading each converted directory as it is."""
    import dataclasses
    import shutil

    from modelformats.convert import ConversionLayouts, convert_gguf, default_layouts

    registry = default_layouts()
    flipped = ConversionLayouts.of(
        *(dataclasses.replace(item, qk_permuted=not item.qk_permuted) for item in registry.by_key.values())
    )
    converted = []
    for case in cases:
        architecture, _, experts = case["layout"].partition("+")
        layout = registry.find(architecture, experts == "experts")
        assert layout is not None, case["layout"]
        for control, layouts in ((None, registry), (CONTROL[layout.qk_permuted], flipped)):
            if control is not None and case["gguf_type"] not in CONVERTED_CONTROL_TYPES:
                continue
            out = work / "converted" / f"{Path(case['gguf']).stem}-{'control' if control else 'ok'}"
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            result = convert_gguf(case["gguf"], out, dtype=CONVERTED_DTYPE, base=case["hf_dir"], layouts=layouts)
            config = json.loads((out / "config.json").read_text())
            converted.append(
                {
                    "name": f"{case['name']} converted{f' ({control})' if control else ''}",
                    "case": case["name"],
                    "control": control,
                    "model": str(out),
                    "hf_architecture": result.hf_architecture,
                    "config_architectures": config.get("architectures"),
                    "files": sorted(p.name for p in out.iterdir()),
                    "dtype": CONVERTED_DTYPE,
                    "prompt_texts": case["prompt_texts"],
                    "prompts": case["prompts"],
                    "steps": case["steps"],
                    "chat": False,
                }
            )
    return converted


def converted_verdicts(
    case: dict[str, Any],
    refs: dict[str, Any],
    fixed: dict[str, Any] | None,
    runs: list[tuple[dict[str, Any], dict[str, Any]]],
    plugin_modules: list[str],
) -> dict[str, Any]:
    """The converted route for one case: plain vLLM on the converted directory passes when its tokens are
    identical to transformers' at every position, each decidable, none differs from llama.cpp at a
    decidable position, vLLM built the converted config's architecture without quantization, and neither
    GGUF plugin was imported. The conversion with the Q/K un-permute flipped (F32 only) must differ from both
    references at a decidable position, judged against the noise of the correct conversion's run. `fixed`:
    vLLM with the modelformats plugin on the GGUF (None for a layout no plugin loads)."""
    references = {"llama.cpp": refs["llama.cpp"], "transformers": refs["transformers"]}
    ((convert, run),) = [(c, r) for c, r in runs if not c["control"]]
    out: dict[str, Any] = {
        "layout": case["layout"],
        "gguf_type": case["gguf_type"],
        "convert": {
            "dtype": convert["dtype"],
            "base": "the tiny original checkpoint",
            "hf_architecture": convert["hf_architecture"],
            "config.json architectures": convert["config_architectures"],
            "files": convert["files"],
        },
        "vllm_dtype": convert["dtype"],
        "VLLM_PLUGINS": "",
        "plugin modules imported": plugin_modules,
    }
    noise: dict[str, float] = {}
    if "error" in run:
        out["vllm on the converted checkpoint"] = {"verdict": "error", "error": run["error"]}
        passed = False
    else:
        exact = compare_case(run["generations"], {"transformers": refs["transformers"]})
        cpp = compare_case(run["generations"], {"llama.cpp": refs["llama.cpp"]})
        noise = compare_case(run["generations"], references).noise
        out["vllm on the converted checkpoint"] = {
            "vllm_architecture": run["vllm_architecture"],
            "vllm_quantization": run["vllm_quantization"],
            "vs transformers": exact.to_dict(),
            "vs llama.cpp": cpp.to_dict(),
        }
        if fixed is not None:
            out["vllm on the converted checkpoint"]["tokens equal vLLM with modelformats on the GGUF"] = (
                "generations" in fixed
                and [g["tokens"] for g in run["generations"]] == [g["tokens"] for g in fixed["generations"]]
            )
        out["tokens"] = [g["tokens"] for g in run["generations"]]
        passed = (
            exact.verdict == "identical"
            and not _decidable_differences(cpp)
            and run["vllm_architecture"] in (convert["config_architectures"] or [])
            and run["vllm_quantization"] is None
            and not plugin_modules
        )
    controls = [(c, r) for c, r in runs if c["control"]]
    if controls:
        ((flipped, control),) = controls
        predicted = "tokens differ from both references at a decidable position"
        if "error" in control or not noise:
            off: dict[str, Any] = {
                "predicted": predicted,
                "observed": control.get("error", "no positive run to take the noise from"),
                "failed_as_predicted": False,
            }
        else:
            compared = compare_case(control["generations"], references, noise=noise)
            off = {
                "predicted": predicted,
                "observed": compared.to_dict(),
                "failed_as_predicted": {d.split(" vs ")[1].split(" at ")[0] for d in _decidable_differences(compared)}
                == set(references),
            }
        out[f"negative control: converted with the {flipped['control']}"] = off
    out["passed"] = passed
    out["negative_control_failed_as_predicted"] = all(
        c["failed_as_predicted"] for key, c in out.items() if key.startswith("negative control") and isinstance(c, dict)
    )
    return out


def _failure_text(result: dict[str, Any]) -> str:
    return f"{result.get('error', '')}\n{result.get('trace', '')}"


def verdicts(
    case: dict[str, Any],
    refs: dict[str, Any],
    fixed: dict[str, Any],
    unpermuted: dict[str, Any],
    stock: dict[str, Any],
) -> dict[str, Any]:
    """The case's verdicts. vLLM passes when its tokens are identical to transformers' (the model on
    exactly the stored weights, float32) at every position, each decidable, and no reference -
    llama.cpp included - differs from it (or from transformers) at a decidable position. Positions
    too close to call against llama.cpp's own rounding are listed as undecidable, never as passed."""
    references = {"llama.cpp": refs["llama.cpp"], "transformers": refs["transformers"]}
    faithful = compare_case(refs["llama.cpp"], {"transformers": refs["transformers"]})
    out: dict[str, Any] = {
        "layout": case["layout"],
        "gguf_type": case["gguf_type"],
        "vllm_dtype": case["dtype"],
        "prompt_tokens": case["prompts"],
        "llama.cpp tokenizer equals the checkpoint's": refs["llama.cpp tokenizer equals the checkpoint's"],
        "llama.cpp vs transformers": faithful.to_dict(),
    }
    noise: dict[str, float] = {}
    passed = faithful.verdict in ("identical", "undecidable") and not _decidable_differences(faithful)
    passed = passed and bool(out["llama.cpp tokenizer equals the checkpoint's"])
    if "error" in fixed:
        out["vllm with modelformats"] = {"verdict": "error", "error": fixed["error"]}
        passed = False
    else:
        both = compare_case(fixed["generations"], references)
        exact = compare_case(fixed["generations"], {"transformers": refs["transformers"]})
        noise = both.noise
        out["vllm with modelformats"] = both.to_dict()
        out["vllm with modelformats"]["vs transformers"] = exact.verdict
        out["tokens"] = [g["tokens"] for g in fixed["generations"]]
        passed = passed and exact.verdict == "identical" and not _decidable_differences(both)

    predicted = PREDICTED_WITHOUT_PLUGIN[case["layout"]]
    without = {
        "predicted": f"the load fails: {predicted}",
        "observed": stock.get("error") or "generated",
        "failed_as_predicted": "error" in stock and predicted in _failure_text(stock),
    }
    if "error" in unpermuted or not noise:
        off: dict[str, Any] = {
            "predicted": "tokens differ from both references at a decidable position",
            "observed": unpermuted.get("error", "no positive run to take the noise from"),
            "failed_as_predicted": False,
        }
    else:
        control = compare_case(unpermuted["generations"], references, noise=noise)
        off = {
            "predicted": "tokens differ from both references at a decidable position",
            "observed": control.to_dict(),
            "failed_as_predicted": {d.split(" vs ")[1].split(" at ")[0] for d in _decidable_differences(control)}
            == set(references),
        }
    out["negative controls"] = {
        "without the modelformats plugin (VLLM_PLUGINS=gguf)": without,
        "Q/K un-permute off": off,
    }
    out["passed"] = passed
    out["negative_controls_failed_as_predicted"] = without["failed_as_predicted"] and off["failed_as_predicted"]
    return out


def _decidable_differences(comparison: Any) -> list[str]:
    return [d for d in comparison.first_differences if d.endswith("(decidable)")]


def scrub(value: Any, work: Path) -> Any:
    """No machine paths or ports in the committed file."""
    text = json.dumps(value).replace(str(work), "<work>")
    return json.loads(text)


def served_run(cases: list[dict[str, Any]], fixed: list[dict[str, Any]], reports: Path) -> dict[str, Any]:
    """`vllm serve` with the target plan's argv for the tiny target-layout GGUF, vs the offline answers."""
    target = next(c for c in cases if c["chat"])
    offline = next(f for f in fixed if f["case"] == target["name"])
    built = build_argv(Path(target["gguf"]), Path(target["hf_dir"]), target["gguf_type"])
    if "chat" not in offline:
        served = {**built, "passed": False, "error": f"no offline chat answers: {offline.get('error')}"}
    else:
        report = serve_and_smoke(built, reports, STEPS)
        served = {**built, **compare_served(report, offline["chat"], target["prompts"])}
        served["smoke_exit_code"] = report["exit_code"]
    # The port is chosen per run: not part of the result.
    argv = served["cpu_argv"]
    port = argv[argv.index("--port") + 1]
    served["cpu_argv"] = ["<free port>" if arg == port else arg for arg in argv]
    for row in served["adapted"]:
        if row["flag"] == "--port":
            row["cpu"] = "<free port>"
    return served


def print_summary(results: list[dict[str, Any]], converted: list[dict[str, Any]], served: dict[str, Any]) -> None:
    print("\n| case | vLLM + modelformats vs llama.cpp, transformers | min margin | without plugin | un-permute off |")
    print("|---|---|---|---|---|")
    for r in results:
        v = r["vllm with modelformats"]
        controls = [
            "failed as predicted" if c["failed_as_predicted"] else "NOT AS PREDICTED"
            for c in r["negative controls"].values()
        ]
        print(
            f"| {r['layout']} {r['gguf_type']} | {v.get('verdict')} {v.get('identical_tokens', '')} "
            f"(max dlogprob {v.get('max_top1_logprob_diff')}) | {v.get('min_top1_top2_margin')} | "
            f"{controls[0]} | {controls[1]} |"
        )
    print("\n| converted case | plain vLLM vs transformers | max dlogprob | vs llama.cpp | un-permute flipped |")
    print("|---|---|---|---|---|")
    for r in converted:
        v = r["vllm on the converted checkpoint"]
        exact = v.get("vs transformers", {})
        control = next((v for k, v in r.items() if k.startswith("negative control")), None)
        shown = "-" if control is None else "NOT AS PREDICTED"
        if control is not None and control["failed_as_predicted"]:
            shown = "failed as predicted"
        print(
            f"| {r['layout']} {r['gguf_type']} -> {v.get('vllm_architecture', v.get('error'))} | "
            f"{exact.get('verdict')} {exact.get('identical_tokens', '')} | {exact.get('max_top1_logprob_diff')} | "
            f"{v.get('vs llama.cpp', {}).get('verdict')} | {shown} |"
        )
    print(f"\nserved: passed={served['passed']}; argv: {' '.join(served['cpu_argv'])}")
    for row in served["adapted"]:
        print(f"  adapted {row['flag']}: {row['h100']} -> {row['cpu']} ({row['why']})")


def write_cases(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(cases, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--converter", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    started = time.monotonic()
    work: Path = args.work.resolve()
    reports = work / "reports"
    reports.mkdir(parents=True, exist_ok=True)

    cases = build_cases(args.converter, work)
    print(f"built and converted {len(cases)} cases in {time.monotonic() - started:.0f} s", flush=True)
    # The GGUF-plugin runs (steps 3-4) are for the layouts a plugin loads; the references are for every case.
    plugin_cases = [c for c in cases if not c["converted_only"]]
    cases_file = write_cases(reports / "cases.json", cases)
    plugin_file = write_cases(reports / "cases_plugin.json", plugin_cases)
    control_file = write_cases(
        reports / "cases_unpermute_off.json", [{**c, "unpermute": False, "chat": False} for c in plugin_cases]
    )
    stock_file = write_cases(reports / "cases_stock.json", [{**c, "chat": False} for c in plugin_cases])

    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    env.pop("VLLM_PLUGINS", None)
    refs = run_module("references", cases_file, reports / "references.json", env)
    print(f"references (llama.cpp, transformers) done at {time.monotonic() - started:.0f} s", flush=True)
    fixed = run_module("vllm_generate", plugin_file, reports / "vllm_modelformats.json", env)
    print(f"vLLM with the modelformats plugin done at {time.monotonic() - started:.0f} s", flush=True)
    unpermuted = run_module("vllm_generate", control_file, reports / "vllm_unpermute_off.json", env)
    print(f"vLLM with the un-permute off done at {time.monotonic() - started:.0f} s", flush=True)
    stock = run_module("vllm_generate", stock_file, reports / "vllm_stock.json", {**env, "VLLM_PLUGINS": "gguf"})
    print(f"vLLM with vllm-gguf-plugin alone done at {time.monotonic() - started:.0f} s", flush=True)
    converted_cases = convert_checkpoints(cases, work)
    converted_file = reports / "cases_converted.json"
    converted_file.write_text(json.dumps(converted_cases, indent=1) + "\n")
    print(f"modelformats convert of {len(converted_cases)} GGUFs done at {time.monotonic() - started:.0f} s")
    # Plain vLLM: VLLM_PLUGINS="" names no plugin, so neither GGUF plugin (nor any other) is loaded.
    plain = run_module("vllm_generate", converted_file, reports / "vllm_converted.json", {**env, "VLLM_PLUGINS": ""})
    print(f"plain vLLM on the converted checkpoints done at {time.monotonic() - started:.0f} s", flush=True)

    refs_of = {r["case"]: r for r in refs}
    results = [
        verdicts(case, refs_of[case["name"]], f, u, s)
        for case, f, u, s in zip(plugin_cases, fixed["results"], unpermuted["results"], stock["results"], strict=True)
    ]
    fixed_of = {case["name"]: f for case, f in zip(plugin_cases, fixed["results"], strict=True)}

    by_case: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for convert_case, run in zip(converted_cases, plain["results"], strict=True):
        by_case.setdefault(convert_case["case"], []).append((convert_case, run))
    converted = [
        converted_verdicts(
            case,
            refs_of[case["name"]],
            fixed_of.get(case["name"]),
            by_case[case["name"]],
            plain["plugin_modules_imported"],
        )
        for case in cases
    ]

    served = served_run(plugin_cases, fixed["results"], reports)
    print(f"served run done at {time.monotonic() - started:.0f} s", flush=True)

    proof = {
        "schema": SCHEMA,
        "level": LEVEL,
        "versions": {
            name: metadata.version(name)
            for name in (
                "vllm-cpu",
                "vllm-gguf-plugin",
                "llama-cpp-python",
                "transformers",
                "torch",
                "gguf",
                "modelformats",
            )
        },
        "settings": {
            "prompts": list(PROMPTS),
            "tokens_per_prompt": STEPS,
            "head_dim": HEAD_DIM,
            "vllm_dtype_per_gguf_type": {k: v[1] for k, v in GGUF_TYPES.items()},
            "served": f"{TARGET_LAYOUT} {SERVED_TYPE}",
            "converted": {
                "convert_gguf dtype": CONVERTED_DTYPE,
                "base": "the tiny original checkpoint",
                "VLLM_PLUGINS": "",
                "un-permute-flipped control for": list(CONVERTED_CONTROL_TYPES),
                "converted route only": [layout.name for layout in CONVERTED_ONLY],
            },
        },
        "results": results,
        "converted": converted,
        "served": served,
    }
    proof = scrub(proof, work)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(proof, indent=1) + "\n")

    print_summary(results, converted, served)
    print(f"\nwrote {args.output} in {time.monotonic() - started:.0f} s")
    ok = all(r["passed"] and r["negative_controls_failed_as_predicted"] for r in results) and served["passed"]
    ok = ok and all(c["passed"] and c["negative_control_failed_as_predicted"] for c in converted)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
