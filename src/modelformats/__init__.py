"""modelformats: for a Hugging Face model repo, what is it, which files to fetch, how to serve it, on which GPU.

    from modelformats import plan
    p = plan()                       # the embedded offline default (the target GGUF repo)
    p.to_dict()                      # the DeploymentPlan as JSON-ready data

Re-exports only; every name lives in the module its docstring points to.
"""

from __future__ import annotations

from modelformats.deployment import DeploymentPlan
from modelformats.engines.base import Engine, EvidenceLevel, LoadVerdict, RuntimeSpec, WeightsSpec
from modelformats.errors import ModelFormatsError
from modelformats.formats.base import (
    BaseFormat,
    CapabilityFloor,
    Detection,
    FileSelection,
    JoinPlan,
    ModelFormat,
    SelectionContext,
    ServingFacts,
    TokenizerSource,
)
from modelformats.formats.gguf import GGUFFormat
from modelformats.formats.hf import (
    AWQFormat,
    BitsAndBytesFormat,
    CompressedTensorsFormat,
    FP8Format,
    GPTQFormat,
    PyTorchBinFormat,
    SafeTensorsFormat,
)
from modelformats.gpu import (
    GpuPolicy,
    GpuRequest,
    GpuRule,
    PolicyRegistry,
    RuleMatch,
    RuleRegistry,
    RuleSettings,
    default_policies,
    default_rules,
)
from modelformats.listing import ListingSource, RepoFile, RepoListing, dump_listing, load_listing
from modelformats.planner import DEFAULT_REPO, PlanOptions, plan
from modelformats.registry import DetectionResult, FormatRegistry, default_registry
from modelformats.sources.hub import HubSource
from modelformats.sources.local import LocalDirSource
from modelformats.sources.recorded import RecordedSource, default_source
from modelformats.traits import ModelTraits

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REPO",
    "AWQFormat",
    "BaseFormat",
    "BitsAndBytesFormat",
    "CapabilityFloor",
    "CompressedTensorsFormat",
    "DeploymentPlan",
    "Detection",
    "DetectionResult",
    "Engine",
    "EvidenceLevel",
    "FP8Format",
    "FileSelection",
    "FormatRegistry",
    "GGUFFormat",
    "GPTQFormat",
    "GpuPolicy",
    "GpuRequest",
    "GpuRule",
    "HubSource",
    "JoinPlan",
    "ListingSource",
    "LoadVerdict",
    "LocalDirSource",
    "ModelFormat",
    "ModelFormatsError",
    "ModelTraits",
    "PlanOptions",
    "PolicyRegistry",
    "PyTorchBinFormat",
    "RecordedSource",
    "RepoFile",
    "RepoListing",
    "RuleMatch",
    "RuleRegistry",
    "RuleSettings",
    "RuntimeSpec",
    "SafeTensorsFormat",
    "SelectionContext",
    "ServingFacts",
    "TokenizerSource",
    "WeightsSpec",
    "__version__",
    "default_policies",
    "default_registry",
    "default_rules",
    "default_source",
    "dump_listing",
    "load_listing",
    "plan",
]
