"""Which vLLM and vllm-gguf-plugin versions the plugin patches, and the refusal messages.

Pure Python (packaging only): the version gate runs before anything from vLLM is imported, and the
default test run checks it without vLLM installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = [
    "SUPPORTED_VERSIONS",
    "check_plugin_selection",
    "check_versions",
    "installed_versions",
]

# The adapter reads vllm-gguf-plugin 0.0.5 internals (its adapter registry, iterator, name map) and
# encodes how vLLM 0.33's llama.py / mixtral.py build their layers under the GGUF quant config.
# Both were proven together on CPU (nox -s gguf_plugin_proof); any other pair is refused.
SUPPORTED_VERSIONS: Mapping[str, SpecifierSet] = {
    "vllm": SpecifierSet("==0.33.*"),
    "vllm-gguf-plugin": SpecifierSet("==0.0.5"),
}

# vLLM's entry-point name of vllm-gguf-plugin (its entry_points.txt: `gguf = vllm_gguf_plugin:register`).
GGUF_PLUGIN_NAME = "gguf"
OUR_PLUGIN_NAME = "modelformats"


def installed_versions() -> dict[str, str | None]:
    """The installed version of every distribution in SUPPORTED_VERSIONS (None: not installed)."""
    found: dict[str, str | None] = {}
    for distribution in SUPPORTED_VERSIONS:
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[distribution] = None
    return found


def check_versions(installed: Mapping[str, str | None]) -> list[str]:
    """One message per distribution whose installed version is missing or unsupported; [] if all fit."""
    problems: list[str] = []
    for distribution, specifier in SUPPORTED_VERSIONS.items():
        version = installed.get(distribution)
        if version is None:
            problems.append(
                f"{distribution} is not installed; the modelformats vLLM plugin needs {distribution}"
                f"{specifier}. Install it with `pip install 'modelformats[vllm-plugin]'`."
            )
            continue
        try:
            fits = Version(version) in specifier
        except InvalidVersion:
            fits = False
        if not fits:
            problems.append(
                f"{distribution} {version} is not supported by the modelformats vLLM plugin "
                f"(supported: {distribution}{specifier}); its GGUF fixes were NOT applied. Install "
                f"{distribution}{specifier} or a modelformats release that supports {distribution} {version}."
            )
    return problems


def check_plugin_selection(vllm_plugins: str | None) -> list[str]:
    """Problems with the VLLM_PLUGINS value (None: unset, vLLM then loads every installed plugin)."""
    if vllm_plugins is None:
        return []
    selected = {name.strip() for name in vllm_plugins.split(",") if name.strip()}
    if GGUF_PLUGIN_NAME in selected:
        return []
    return [
        f"VLLM_PLUGINS={vllm_plugins!r} selects {OUR_PLUGIN_NAME!r} but not {GGUF_PLUGIN_NAME!r}; vLLM "
        f"0.33 loads GGUF only through vllm-gguf-plugin. Set VLLM_PLUGINS={GGUF_PLUGIN_NAME},"
        f"{OUR_PLUGIN_NAME} or unset it."
    ]
