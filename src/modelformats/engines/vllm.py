"""vLLM as an `Engine`: one profile per version range (`engines.vllm_profiles`), GGUF verdicts from a CPU probe.

Profiles are data read from the released wheels (file:line in each entry, docs/compatibility.md):
the quantization methods a version knows, the flags we emit, what GGUF support needs installed.
Whether a GGUF loads is never decided here by hand: `data/vllm_gguf_probe.json` records what each
vLLM's own config resolution, GGUF name map and `load_model` did on CPU with a tiny GGUF of every
layout (`nox -s engine_probe`), and `check()` reads the case that matches the weights. Llama-type
GGUFs on vLLM 0.33 are wrong without modelformats' vLLM plugin (Q/K rotary order, issue 9); with it,
the evidence is `data/modelformats_plugin_proof.json` (`nox -s gguf_plugin_proof`).

Every argv this engine builds is parsed by the real vLLM of its profile in `nox -s vllm_compat`.
Nothing here imports vLLM.

This module holds the engine itself (its traits, `check()` for Hugging Face checkpoints, `vllm_engine()`);
its parts, one job each: `vllm_evidence` (the recorded probe and proofs), `vllm_version` (the state they
share), `vllm_gguf` (GGUF verdicts), `vllm_command` (the argv, requirements and environment).
"""

from __future__ import annotations

from packaging.requirements import Requirement

from modelformats.engines.base import EngineTraits, EvidenceLevel, LoadVerdict, WeightsSpec
from modelformats.engines.vllm_command import VllmCommands
from modelformats.engines.vllm_evidence import load_generation_proof, load_plugin_proof, load_probe
from modelformats.engines.vllm_gguf import VllmGgufChecks
from modelformats.engines.vllm_profiles import DEFAULT_VLLM_VERSION, PROFILES, VERIFIED_VLLM_VERSIONS, VllmProfile
from modelformats.engines.vllm_version import load_verdict
from modelformats.errors import UnsupportedEngineVersionError

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


def vllm_engine(version: str | None = None, *, modelformats_plugin: bool = False) -> VllmEngine:
    """The engine for a verified vLLM version (None: DEFAULT_VLLM_VERSION)."""
    wanted = version or DEFAULT_VLLM_VERSION
    for profile in PROFILES:
        if wanted in profile.verified:
            return VllmEngine(profile, wanted, modelformats_plugin=modelformats_plugin)
    raise UnsupportedEngineVersionError("vllm", wanted, VERIFIED_VLLM_VERSIONS)


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


class VllmEngine(VllmGgufChecks, VllmCommands):
    """vLLM at one verified version, optionally with modelformats' vLLM plugin in the image."""

    name = "vllm"
    traits = VLLM_TRAITS
    # GGUF on vLLM needs the base model's tokenizer and config.json (--tokenizer, --hf-config-path).
    needs_tokenizer_files = True
    # `--quantization fp8` on a 16-bit checkpoint: Fp8Config without checkpoint scales quantizes linear and
    # MoE weights at load (vllm/model_executor/layers/quantization/fp8.py, is_checkpoint_fp8_serialized=False).
    online_quantization: tuple[str, ...] = ("fp8",)

    def __repr__(self) -> str:
        plugin = ", modelformats_plugin=True" if self.modelformats_plugin else ""
        return f"vllm_engine({self.version!r}{plugin})"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" + (" + modelformats plugin" if self.modelformats_plugin else "")

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
            return load_verdict(
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
            return load_verdict(
                True,
                EvidenceLevel.SOURCE_READ,
                evidence=evidence,
                warnings=[*warnings, "config.json architectures unknown, so vLLM's model registry was not consulted"],
            )
        if arch not in self._probe["registry_architectures"]:
            return load_verdict(
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
            return load_verdict(True, EvidenceLevel.SOURCE_READ, evidence=evidence, warnings=warnings)
        return load_verdict(True, EvidenceLevel.ENGINE_NATIVE, evidence=evidence, warnings=warnings)
