"""vLLM's release lines as data: one `VllmProfile` per version range, read from its wheel.

Each profile records what that vLLM accepts (file:line per flag, docs/compatibility.md): the
quantization methods it knows, the flags modelformats emits, the GGUF route (in-tree or
vllm-gguf-plugin), the locked transformers/torch/huggingface_hub pins and what its install needs.
`engines.vllm.VllmEngine` decides with them; `nox -s vllm_compat` parses every argv with each
profile's own vLLM. Nothing here imports vLLM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet

from modelformats.vllm_plugin._versions import SUPPORTED_VERSIONS

__all__ = ["DEFAULT_VLLM_VERSION", "PROFILES", "VERIFIED_VLLM_VERSIONS", "VllmProfile"]


@dataclass(frozen=True, kw_only=True, slots=True)
class VllmProfile:
    """What one vLLM release line accepts, read from its wheel."""

    versions: SpecifierSet
    verified: tuple[str, ...]
    # Key of this version's results in vllm_gguf_probe.json ("engines").
    probe_env: str
    # Where GGUF support lives and what the serving image needs for it beyond vLLM.
    gguf_support: str
    gguf_requirements: tuple[str, ...]
    # GGUF architectures whose output order is known only from reading this version's source (a
    # warning on the verdict, so a CPU load result is never read as proof of correct output).
    gguf_output_source_read: Mapping[str, str] = field(default_factory=dict)
    # vLLM's built-in QUANTIZATION_METHODS, in the wheel's order (checked by tools/vllm_compat).
    quantization_methods: tuple[str, ...]
    quantization_methods_source: str
    # Every flag `command()` may emit -> where the wheel defines it.
    flags: Mapping[str, str]
    # GGUF architectures whose output is wrong on this version although every weight loads.
    gguf_wrong_output: Mapping[str, str]
    # Whether modelformats' own vLLM plugin runs on this version (modelformats/vllm_plugin/_versions.py).
    modelformats_plugin: bool
    # The GGUF quant config refuses bfloat16 on compute capability >= 10.0 (0.23: quantization/gguf.py:62-68).
    gguf_refuses_bf16_on_blackwell: bool = False
    # The versions vLLM's own requirements resolve to in locks/<probe_env>.txt, where the parser, the probe
    # and the proofs ran: every plan pins them, so an image cannot drift to a transformers or
    # huggingface_hub this vLLM (or vllm-gguf-plugin's `huggingface_hub.ResolvedRevision` import) rejects.
    engine_pins: tuple[str, ...] = ()
    # What the wheel requires, as read (file:line of the METADATA), for the plan's reasons.
    engine_pins_source: str = ""
    # The out-of-tree quantization plugins (distribution names) in this profile's lock: vllm_compat runs
    # their registration there. A plugin a plan needs but the lock lacks is read in source only.
    locked_quant_plugins: tuple[str, ...] = ()
    # The probe's GGUF cases could not run on this version: every case with a config stopped on this
    # CPU-platform error (the exact message recorded), not on anything GGUF. GGUF is then refused as unproven.
    probe_blocked_by: str | None = None
    probe_blocked_source: str = ""
    # uv overrides without which the wheel's own requirements do not resolve from PyPI, and why.
    install_overrides: tuple[str, ...] = ()
    install_overrides_reason: str = ""


# Both wheels define the engine flags in this file (line numbers differ per version).
_ARGS = "vllm/engine/arg_utils.py"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


PROFILES: tuple[VllmProfile, ...] = (
    VllmProfile(
        versions=SpecifierSet(">=0.23,<0.24"),
        verified=("0.23.0",),
        probe_env="vllm-0.23.0",
        gguf_support="in-tree (vllm/model_executor/model_loader/gguf_loader.py)",
        gguf_requirements=(),
        quantization_methods=_words(
            """awq fp8 fbgemm_fp8 fp_quant modelopt modelopt_fp4 modelopt_mxfp8 modelopt_mixed gguf auto_gptq
            gptq gptq_marlin awq_marlin humming compressed-tensors bitsandbytes experts_int8 quark moe_wna16
            torchao inc mxfp4 gpt_oss_mxfp4 deepseek_v4_fp8 online fp8_per_tensor fp8_per_block
            int8_per_channel_weight_only mxfp8"""
        ),
        quantization_methods_source="vllm/model_executor/layers/quantization/__init__.py:12-46",
        flags={
            "--tokenizer": f"{_ARGS}:788",
            "--trust-remote-code": f"{_ARGS}:791",
            "--hf-overrides": f"{_ARGS}:841",
            "--dtype": f"{_ARGS}:793",
            "--hf-config-path": f"{_ARGS}:795",
            "--max-model-len": f"{_ARGS}:807",
            "--quantization": f"{_ARGS}:808",
            "--enforce-eager": f"{_ARGS}:816",
            "--served-model-name": f"{_ARGS}:837",
            "--distributed-executor-backend": f"{_ARGS}:947",
            "--pipeline-parallel-size": f"{_ARGS}:951",
            "--nnodes": f"{_ARGS}:957",
            "--tensor-parallel-size": f"{_ARGS}:975",
            "--enable-expert-parallel": f"{_ARGS}:1062",
            "--block-size": f"{_ARGS}:1122",
            "--kv-cache-memory-bytes": f"{_ARGS}:1127",
            "--gpu-memory-utilization": f"{_ARGS}:1124",
            "--max-num-batched-tokens": f"{_ARGS}:1365",
            "--max-num-seqs": f"{_ARGS}:1372",
            "--enable-chunked-prefill": f"{_ARGS}:1395 (BooleanOptionalAction, :345)",
            "--no-enable-chunked-prefill": f"{_ARGS}:1395 (BooleanOptionalAction, :345)",
            "--host": "vllm/entrypoints/openai/cli_args.py:228",
            "--port": "vllm/entrypoints/openai/cli_args.py:230",
        },
        gguf_wrong_output={},
        gguf_output_source_read={
            "llama": (
                "vllm/model_executor/models/llama.py:240-243 (vLLM 0.23.0) turns rotary to GPT-J style for "
                "GGUF llama, which matches llama.cpp's Q/K row order; no forward pass ran"
            ),
        },
        modelformats_plugin=False,
        gguf_refuses_bf16_on_blackwell=True,
        engine_pins=("torch==2.11.0", "transformers==4.57.6", "huggingface_hub==0.36.2"),
        engine_pins_source="vllm-0.23.0.dist-info/METADATA Requires-Dist (resolved: locks/vllm-0.23.0.txt)",
    ),
    VllmProfile(
        versions=SpecifierSet(">=0.33,<0.34"),
        verified=("0.33.0",),
        probe_env="vllm-0.33.0",
        gguf_support="vllm-gguf-plugin (GGUF left vLLM in 0.24.0, vllm-project/vllm#39583)",
        gguf_requirements=(f"vllm-gguf-plugin{SUPPORTED_VERSIONS['vllm-gguf-plugin']}",),
        quantization_methods=_words(
            """awq auto_awq fp8 fbgemm_fp8 fp_quant modelopt modelopt_fp4 modelopt_mxfp8 modelopt_mixed
            auto_gptq gptq gptq_marlin awq_marlin humming compressed-tensors experts_int8 quark moe_wna16
            torchao inc mxfp4 gpt_oss_mxfp4 deepseek_v4_fp8 online fp8_per_tensor fp8_per_block
            fp8_per_channel int8_per_channel_weight_only nvfp4_per_token mxfp8"""
        ),
        quantization_methods_source="vllm/model_executor/layers/quantization/__init__.py:15-50",
        flags={
            "--tokenizer": f"{_ARGS}:972",
            "--trust-remote-code": f"{_ARGS}:975",
            "--hf-overrides": f"{_ARGS}:1035",
            "--dtype": f"{_ARGS}:977",
            "--hf-config-path": f"{_ARGS}:979",
            "--max-model-len": f"{_ARGS}:991",
            "--quantization": f"{_ARGS}:992",
            "--enforce-eager": f"{_ARGS}:1000",
            "--served-model-name": f"{_ARGS}:1031",
            "--distributed-executor-backend": f"{_ARGS}:1167",
            "--pipeline-parallel-size": f"{_ARGS}:1171",
            "--nnodes": f"{_ARGS}:1177",
            "--tensor-parallel-size": f"{_ARGS}:1209",
            "--enable-expert-parallel": f"{_ARGS}:1305",
            "--block-size": f"{_ARGS}:1387",
            "--kv-cache-memory-bytes": f"{_ARGS}:1395",
            "--gpu-memory-utilization": f"{_ARGS}:1389",
            "--max-num-batched-tokens": f"{_ARGS}:1740",
            "--max-num-seqs": f"{_ARGS}:1754",
            "--enable-chunked-prefill": f"{_ARGS}:1785 (BooleanOptionalAction, :383-386)",
            "--no-enable-chunked-prefill": f"{_ARGS}:1785 (BooleanOptionalAction, :383-386)",
            "--host": "vllm/entrypoints/common/cli_args.py:293",
            "--port": "vllm/entrypoints/common/cli_args.py:295",
        },
        gguf_wrong_output={
            "llama": (
                "vLLM 0.33.0 builds llama attention with neox-style rotary unconditionally "
                "(vllm/model_executor/models/llama.py:236-248) while llama.cpp stores Q/K rows permuted for "
                "GPT-J-style rotary and vllm-gguf-plugin 0.0.5 hands them over unchanged, so every weight "
                "loads but attention is wrong (issue 9). Use the route with modelformats' vLLM plugin, or "
                "llama.cpp"
            ),
        },
        modelformats_plugin=True,
        engine_pins=("torch==2.14.0", "transformers==5.20.2", "huggingface_hub==2.4.0"),
        engine_pins_source="vllm-0.33.0.dist-info/METADATA Requires-Dist (resolved: locks/vllm-0.33.0.txt)",
    ),
    VllmProfile(
        versions=SpecifierSet(">=0.34,<0.35"),
        verified=("0.34.0",),
        probe_env="vllm-0.34.0",
        gguf_support=(
            "vllm-gguf-plugin (the wheel's `vllm[extra-quant]` extra pulls vllm-gguf-plugin>=0.0.2, "
            "vllm-0.34.0.dist-info/METADATA:139-140)"
        ),
        gguf_requirements=(f"vllm-gguf-plugin{SUPPORTED_VERSIONS['vllm-gguf-plugin']}",),
        quantization_methods=_words(
            """awq auto_awq fp8 w4afp8 fbgemm_fp8 modelopt modelopt_fp4 modelopt_mxfp8 modelopt_mixed auto_gptq
            gptq gptq_marlin awq_marlin humming compressed-tensors experts_int8 quark moe_wna16 torchao inc
            mxfp4 gpt_oss_mxfp4 deepseek_v4_fp8 online fp8_per_tensor fp8_per_block fp8_per_channel
            int8_per_channel_weight_only nvfp4_per_token mxfp8 lut_b_moe mxfp4_hadamard32"""
        ),
        quantization_methods_source="vllm/model_executor/layers/quantization/__init__.py:15-51",
        flags={
            "--tokenizer": f"{_ARGS}:979",
            "--trust-remote-code": f"{_ARGS}:982",
            "--dtype": f"{_ARGS}:984",
            "--hf-config-path": f"{_ARGS}:986",
            "--max-model-len": f"{_ARGS}:998",
            "--quantization": f"{_ARGS}:999",
            "--enforce-eager": f"{_ARGS}:1007",
            "--served-model-name": f"{_ARGS}:1038",
            "--hf-overrides": f"{_ARGS}:1042",
            "--distributed-executor-backend": f"{_ARGS}:1182",
            "--pipeline-parallel-size": f"{_ARGS}:1186",
            "--nnodes": f"{_ARGS}:1192",
            "--tensor-parallel-size": f"{_ARGS}:1224",
            "--enable-expert-parallel": f"{_ARGS}:1320",
            "--block-size": f"{_ARGS}:1402",
            "--kv-cache-memory-bytes": f"{_ARGS}:1410",
            "--gpu-memory-utilization": f"{_ARGS}:1404",
            "--max-num-batched-tokens": f"{_ARGS}:1759",
            "--max-num-seqs": f"{_ARGS}:1773",
            "--enable-chunked-prefill": f"{_ARGS}:1808 (BooleanOptionalAction, :383-385)",
            "--no-enable-chunked-prefill": f"{_ARGS}:1808 (BooleanOptionalAction, :383-385)",
            "--host": "vllm/entrypoints/common/cli_args.py:294",
            "--port": "vllm/entrypoints/common/cli_args.py:296",
        },
        gguf_wrong_output={
            "llama": (
                "vLLM 0.34.0 builds llama attention with neox-style rotary unconditionally "
                "(vllm/model_executor/models/llama.py:236-248, unchanged from 0.33.0) while llama.cpp stores "
                "Q/K rows permuted for GPT-J-style rotary and vllm-gguf-plugin 0.0.5 hands them over "
                "unchanged, so every weight loads but attention is wrong (issue 9); modelformats' vLLM "
                "plugin is proven on 0.33 only. Use llama.cpp, or vLLM 0.33.0 with modelformats' plugin"
            ),
        },
        modelformats_plugin=False,
        locked_quant_plugins=("vllm-bnb-plugin",),
        probe_blocked_by="vLLM on x86 CPUs requires Triton (triton-cpu).",
        probe_blocked_source=(
            "vllm/platforms/cpu.py:241-243 (new in 0.34: CpuPlatform.check_and_update_config raises on x86 "
            "without Triton; triton-cpu is not on PyPI and the CUDA wheel's triton finds no driver on CPU)"
        ),
        engine_pins=("torch==2.14.0", "transformers==5.22.2", "huggingface_hub==2.4.0"),
        engine_pins_source=(
            "vllm-0.34.0.dist-info/METADATA:32-33,85 (transformers>=5.16.1,<5.23.0, huggingface_hub>=2.0.0, "
            "torch==2.14.0; resolved: locks/vllm-0.34.0.txt)"
        ),
        install_overrides=("flashinfer-python==0.7.4",),
        install_overrides_reason=(
            "vllm 0.34.0 requires flashinfer-python==0.7.3 (vllm-0.34.0.dist-info/METADATA:90), which is not "
            "on PyPI (0.7.2.post1 and 0.7.4 are), so `pip install vllm==0.34.0` cannot resolve; install with "
            "`uv pip install --override` naming flashinfer-python==0.7.4 (what locks/vllm-0.34.0.txt and every "
            "check here ran with; flashinfer is a CUDA attention backend none of them imports)"
        ),
    ),
)
VERIFIED_VLLM_VERSIONS: tuple[str, ...] = tuple(v for p in PROFILES for v in p.verified)
# The version plans use unless --vllm-version says otherwise. Not the newest: vllm 0.34.0's requirements
# do not resolve from PyPI without an override (its profile's install_overrides), and modelformats'
# vLLM plugin (the only vLLM route for llama-architecture GGUFs such as the target) is proven on 0.33 only.
DEFAULT_VLLM_VERSION = "0.33.0"
