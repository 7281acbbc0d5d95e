"""The engines this package ships, by the names formats and requests use: one table each, no branches.

`build_engine(kind)` builds the engine a format names in `ServingFacts.engines` (`ENGINE_KINDS`);
`traits_of(engine)` is what an engine declares as `traits`, or a built-in engine's from the table;
`engine_traits(name)` gives a built-in engine's traits by its `Engine.name`, for a `GpuRequest` that
names its engine without passing `engine_traits` (the planner always passes `traits_of(engine)`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from modelformats.engines.base import Engine, EngineTraits
from modelformats.engines.llamacpp import LLAMACPP_TRAITS, LlamaCppEngine
from modelformats.engines.vllm import VLLM_TRAITS, vllm_engine
from modelformats.errors import InvalidRequestError

__all__ = [
    "BUILTIN_ENGINE_TRAITS",
    "ENGINE_BUILDERS",
    "LLAMACPP_TRAITS",
    "build_engine",
    "engine_traits",
    "traits_of",
]

# Engine.name -> its traits.
BUILTIN_ENGINE_TRAITS: Mapping[str, EngineTraits] = MappingProxyType({"vllm": VLLM_TRAITS, "llamacpp": LLAMACPP_TRAITS})
# ENGINE_KINDS -> how to build it for a target vLLM version (None: the default).
ENGINE_BUILDERS: Mapping[str, Callable[[str | None], Engine]] = MappingProxyType(
    {
        "vllm": vllm_engine,
        "vllm+modelformats-plugin": lambda version: vllm_engine(version, modelformats_plugin=True),
        "llamacpp": lambda version: LlamaCppEngine(),
    }
)


def build_engine(kind: str, vllm_version: str | None = None) -> Engine:
    """The engine behind an `ENGINE_KINDS` name (formats name engines; the planner builds them)."""
    builder = ENGINE_BUILDERS.get(kind)
    if builder is None:
        raise InvalidRequestError(f"Unknown engine {kind!r}; known: {', '.join(ENGINE_BUILDERS)}.")
    return builder(vllm_version)


def traits_of(engine: Engine) -> EngineTraits:
    """The traits `engine` declares (its `traits` attribute), else the built-in engine of its name's."""
    declared = getattr(engine, "traits", None)
    return declared if isinstance(declared, EngineTraits) else engine_traits(engine.name)


def engine_traits(name: str) -> EngineTraits:
    """The traits of the built-in engine `name` ("vllm", "llamacpp")."""
    traits = BUILTIN_ENGINE_TRAITS.get(name)
    if traits is None:
        raise InvalidRequestError(f"Engine {name!r} is not one of: {', '.join(BUILTIN_ENGINE_TRAITS)}.")
    return traits
