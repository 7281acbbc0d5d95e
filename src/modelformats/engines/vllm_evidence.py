"""The recorded evidence vLLM's verdicts are read from, loaded once: the CPU probe of every GGUF layout
(`nox -s engine_probe`), modelformats' vLLM plugin proof (`nox -s gguf_plugin_proof`) and vLLM's CPU
generation proof (`nox -s vllm_cpu_generation`), all under `engines/data/`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "GENERATION_PROOF_FILE",
    "GENERATION_PROOF_SCHEMA",
    "PLUGIN_PROOF_FILE",
    "PLUGIN_PROOF_SCHEMA",
    "PROBE_FILE",
    "load_generation_proof",
    "load_plugin_proof",
    "load_probe",
]

PROBE_FILE = "data/vllm_gguf_probe.json"
PLUGIN_PROOF_FILE = "data/modelformats_plugin_proof.json"
PLUGIN_PROOF_SCHEMA = "modelformats-plugin-proof/1"
GENERATION_PROOF_FILE = "data/vllm_cpu_generation.json"
GENERATION_PROOF_SCHEMA = "modelformats-vllm-cpu-generation/1"


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
