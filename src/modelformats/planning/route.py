"""One way of serving the model (weights x engine), as a record, and the order routes are ranked in.

Routes whose engine cannot load the weights stay refused alternatives with their evidence; loadable routes
rank by how strongly we know they load (`EvidenceLevel`), then by the product's engine preference, then by
price per hour, then by download size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelformats.deployment import ConvertStep
from modelformats.engines.base import Engine, EngineCommand, EvidenceLevel, LoadVerdict, WeightsSpec
from modelformats.engines.builtin import traits_of
from modelformats.errors import ModelFormatsError
from modelformats.formats.base import FileSelection
from modelformats.listing import RepoListing
from modelformats.registry import DetectionResult

if TYPE_CHECKING:
    from modelformats.gpu import GpuDecision

__all__ = ["Route", "route_label", "route_quant"]


@dataclass(frozen=True, kw_only=True)
class Route:
    label: str
    # "as-is" (the repo's own weights) | "base-native" (its base model's weights) | "converted" (the repo's
    # weights rewritten into another format after download, `convert`)
    kind: str
    listing: RepoListing
    detection: DetectionResult
    engine: Engine
    verdict: LoadVerdict
    selection: FileSelection | None = None
    weights: WeightsSpec | None = None
    gpu: GpuDecision | None = None
    command: EngineCommand | None = None
    problem: str | None = None
    # The user error that kept this route from selecting files (a quant that is not there, ...).
    error: ModelFormatsError | None = None
    # A converted route: the conversion run after download, and what the alternative's reason adds.
    convert: ConvertStep | None = None
    note: str | None = None
    # The format the engine serves when it is not the detected one (a converted route's).
    served_format: str | None = None

    @property
    def format(self) -> str:
        return self.served_format or self.detection.detection.format

    @property
    def loads(self) -> bool:
        return self.verdict.loads and self.problem is None and self.command is not None

    @property
    def price(self) -> float | None:
        return self.gpu.price_per_hour if self.gpu is not None else None

    @property
    def reasons(self) -> tuple[str, ...]:
        return (*self.verdict.reasons, *((self.problem,) if self.problem else ()))

    def sort_key(self) -> tuple[int, int, float, int]:
        return (
            self.verdict.level.rank if self.loads else len(EvidenceLevel),
            0 if traits_of(self.engine).preferred else 1,  # the product's primary engine wins ties
            self.price if self.price is not None else float("inf"),
            (self.selection.download_bytes or 0) if self.selection is not None else 0,
        )


def route_quant(route: Route) -> str | None:
    quant = route.selection.quant if route.selection is not None else None
    return quant.upper() if quant is not None else None


def route_label(fmt: str, engine: Engine, kind: str, repo_id: str) -> str:
    what = f"native {fmt} weights of {repo_id}" if kind == "base-native" else f"{fmt} weights"
    return f"{what} on {engine.label}"
