"""modelformats' vLLM general plugin: llama-architecture GGUFs that load correctly on vLLM 0.33.

vLLM calls `register()` through the entry point `vllm.general_plugins: modelformats` (pyproject.toml)
in every process it starts. On vLLM 0.33.x with vllm-gguf-plugin 0.0.5 it adds a weights adapter to
vllm-gguf-plugin that loads dense Llama and Mixtral-stored-as-`llama` GGUFs with HF's Q/K row order
(docs/vllm-plugin.md). On any other version it logs an error and changes nothing. Nothing else in
modelformats imports this package, and importing it imports neither vLLM nor torch.
"""

from __future__ import annotations

import logging
import os

from modelformats.vllm_plugin._versions import (
    SUPPORTED_VERSIONS,
    check_plugin_selection,
    check_versions,
    installed_versions,
)

__all__ = ["SUPPORTED_VERSIONS", "register"]

# A child of vLLM's `vllm` logger, so messages appear in vLLM's log with its format and level.
logger = logging.getLogger("vllm.plugins.modelformats")


def register() -> None:
    """vLLM general-plugin hook: install the llama-architecture GGUF adapter if the versions fit."""
    problems = check_versions(installed_versions())
    for problem in problems:
        logger.error("%s", problem)
    if problems:
        return
    for problem in check_plugin_selection(os.environ.get("VLLM_PLUGINS")):
        logger.warning("%s", problem)
    from modelformats.vllm_plugin._adapter import install

    if install():
        logger.info("modelformats: llama-architecture GGUF adapter registered with vllm-gguf-plugin")
