"""vLLM at one verified version, the state its verdicts and commands share: the version's profile, the probe's
results for its environment, the proofs, and how messages name the stack (vLLM, its GGUF plugin, ours)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelformats.engines.base import EvidenceLevel, LoadVerdict, WeightsSpec
from modelformats.engines.vllm_evidence import load_generation_proof, load_plugin_proof, load_probe
from modelformats.engines.vllm_profiles import VllmProfile
from modelformats.formats.base import VllmQuantPlugin

__all__ = ["VllmAtVersion", "load_verdict"]


def load_verdict(
    loads: bool,
    level: EvidenceLevel,
    reasons: Sequence[str] = (),
    evidence: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> LoadVerdict:
    return LoadVerdict(
        loads=loads, level=level, reasons=tuple(reasons), evidence=tuple(evidence), warnings=tuple(warnings)
    )


class VllmAtVersion:
    """The version, profile, probe results and proofs of one vLLM; `VllmEngine` is built on it."""

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

    @property
    def _stack(self) -> str:
        """vLLM and the GGUF plugin it needs, as the probe ran them."""
        plugin = self._probe["versions"].get("vllm-gguf-plugin")
        return f"vLLM {self.version}" + (f" + vllm-gguf-plugin {plugin}" if plugin else "")

    @property
    def _who(self) -> str:
        return self._stack + (" + modelformats' vLLM plugin" if self.modelformats_plugin else "")

    def _quant_plugin(self, weights: WeightsSpec) -> VllmQuantPlugin | None:
        """The format's plugin for its method when this vLLM lacks the method in-tree, else None."""
        plugin = weights.vllm_plugin
        if plugin is None or weights.quantization != plugin.method:
            return None
        return None if plugin.method in self.profile.quantization_methods else plugin
