"""A format strategy from outside modelformats: AMD Quark-quantized safetensors.

It stands for a third-party package: the tests put this folder and a dist-info advertising
`[modelformats.formats] quark = mf_quark_format:QuarkFormat` on sys.path, and nothing inside
src/modelformats names Quark. Everything modelformats needs to serve it is on the strategy.
"""

from __future__ import annotations

from modelformats import CapabilityFloor, Detection, RepoListing, SafeTensorsFormat, ServingFacts
from modelformats.formats.hf import config_quant_method


class QuarkFormat(SafeTensorsFormat):
    """Safetensors whose config.json says quantization_config.quant_method = "quark"."""

    name = "quark"
    priority = 85
    description = "AMD Quark-quantized safetensors"
    serving = ServingFacts(
        engines=("vllm",),
        vllm_quantization="quark",
        # vLLM reads the method from config.json anyway; naming it makes a mismatch fail at startup.
        quantization_flag=True,
        capability_floor=CapabilityFloor(
            key="quark",
            minimum=(7, 0),
            source="vllm 0.33.0 vllm/model_executor/layers/quantization/quark/quark.py:127 get_min_capability",
            reason="vLLM's Quark kernels",
        ),
    )

    def detect(self, listing: RepoListing) -> Detection | None:
        if config_quant_method(listing) != "quark":
            return None
        return super().detect(listing)
