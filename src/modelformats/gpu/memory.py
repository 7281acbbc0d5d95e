"""The records of a memory estimate: weights size, GPU layout, named terms, and the per-GPU sums a fit
check compares (`MemoryEstimate`), with the plan's JSON view of them (`MemorySummary`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Layout", "MemoryEstimate", "MemorySummary", "MemoryTerm", "WeightsSize", "format_bytes"]


def format_bytes(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsSize:
    """Bytes of weights on the GPU(s), and how that number was obtained."""

    bytes: int
    basis: str
    assumed: bool = False
    exact_with: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """How the model is spread: tensor parallel within a node, pipeline stages (across nodes too)."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    nodes: int = 1
    enable_expert_parallel: bool = False
    # llama.cpp's default split across GPUs of one container: whole layers per GPU.
    layer_split: int = 1

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.layer_split


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryTerm:
    """One named part of the estimate; `bytes` over all GPUs, `per_gpu_bytes` on the fullest GPU."""

    name: str
    bytes: int
    per_gpu_bytes: int
    formula: str
    basis: str
    assumed: bool = False
    exact_with: str | None = None
    # False: outside vLLM's gpu_memory_utilization budget (the CUDA context).
    in_budget: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "bytes": self.bytes,
            "per_gpu_bytes": self.per_gpu_bytes,
            "formula": self.formula,
            "basis": self.basis,
            "assumed": self.assumed,
            "in_budget": self.in_budget,
        }
        if self.exact_with is not None:
            out["exact_with"] = self.exact_with
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemoryTerm:
        return cls(
            name=str(d["name"]),
            bytes=int(d["bytes"]),
            per_gpu_bytes=int(d["per_gpu_bytes"]),
            formula=str(d["formula"]),
            basis=str(d["basis"]),
            assumed=bool(d.get("assumed", False)),
            exact_with=d.get("exact_with"),
            in_budget=bool(d.get("in_budget", True)),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class MemorySummary:
    """The plan's view of a memory estimate (its `memory` object): exactly the fields the JSON carries.

    `MemoryEstimate` holds the layout and computes its sums; a plan file keeps the sums and the GPU count
    only, so this record carries them as values, and `from_dict(to_dict())` gives it back unchanged.
    """

    engine: str
    total_bytes: int
    # On the fullest GPU: in and outside the gpu_memory_utilization budget, and both.
    per_gpu_bytes: int
    per_gpu_in_budget_bytes: int
    per_gpu_outside_budget_bytes: int
    # GPUs the model is spread over (the layout's world size).
    gpus: int
    max_model_len: int
    max_num_seqs: int
    kv_tokens: int
    kv_bytes_per_token: int
    assumed: bool
    terms: tuple[MemoryTerm, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "total_bytes": self.total_bytes,
            "per_gpu_bytes": self.per_gpu_bytes,
            "per_gpu_in_budget_bytes": self.per_gpu_in_budget_bytes,
            "per_gpu_outside_budget_bytes": self.per_gpu_outside_budget_bytes,
            "gpus": self.gpus,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "kv_tokens": self.kv_tokens,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "assumed": self.assumed,
            "terms": [t.to_dict() for t in self.terms],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemorySummary:
        return cls(
            engine=str(d["engine"]),
            total_bytes=int(d["total_bytes"]),
            per_gpu_bytes=int(d["per_gpu_bytes"]),
            per_gpu_in_budget_bytes=int(d["per_gpu_in_budget_bytes"]),
            per_gpu_outside_budget_bytes=int(d["per_gpu_outside_budget_bytes"]),
            gpus=int(d.get("gpus", 1)),
            max_model_len=int(d["max_model_len"]),
            max_num_seqs=int(d["max_num_seqs"]),
            kv_tokens=int(d["kv_tokens"]),
            kv_bytes_per_token=int(d["kv_bytes_per_token"]),
            assumed=bool(d.get("assumed", False)),
            terms=tuple(MemoryTerm.from_dict(t) for t in d.get("terms", ())),
            notes=tuple(d.get("notes", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryEstimate:
    """All terms for one layout, with the per-GPU sums a fit check compares against."""

    engine: str
    terms: tuple[MemoryTerm, ...]
    layout: Layout
    max_model_len: int
    max_num_seqs: int
    kv_tokens: int
    kv_bytes_per_token: int
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.terms)

    @property
    def per_gpu_in_budget_bytes(self) -> int:
        return sum(t.per_gpu_bytes for t in self.terms if t.in_budget)

    @property
    def per_gpu_outside_budget_bytes(self) -> int:
        return sum(t.per_gpu_bytes for t in self.terms if not t.in_budget)

    @property
    def assumed(self) -> bool:
        return any(t.assumed for t in self.terms)

    def term(self, name: str) -> MemoryTerm:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def shortfall_bytes(self, usable_bytes: int, utilization: float) -> int:
        """Bytes per GPU by which this misses a GPU of `usable_bytes` at `utilization` (<= 0: it fits)."""
        budget = math.floor(usable_bytes * utilization)
        inside = self.per_gpu_in_budget_bytes - budget
        outside = self.per_gpu_outside_budget_bytes - (usable_bytes - budget)
        return max(inside, outside)

    def fits(self, usable_bytes: int, utilization: float) -> bool:
        return self.shortfall_bytes(usable_bytes, utilization) <= 0

    def summary(self) -> str:
        """`weights 19.56 GB + kv_cache 21.78 GB + ... = 45.71 GB`."""
        parts = " + ".join(f"{t.name} {format_bytes(t.bytes)}" for t in self.terms)
        return f"{parts} = {format_bytes(self.total_bytes)}"

    def memory_summary(self) -> MemorySummary:
        """What a plan keeps of this estimate (its `memory` object), typed."""
        return MemorySummary(
            engine=self.engine,
            total_bytes=self.total_bytes,
            per_gpu_bytes=self.per_gpu_in_budget_bytes + self.per_gpu_outside_budget_bytes,
            per_gpu_in_budget_bytes=self.per_gpu_in_budget_bytes,
            per_gpu_outside_budget_bytes=self.per_gpu_outside_budget_bytes,
            gpus=self.layout.world_size,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            kv_tokens=self.kv_tokens,
            kv_bytes_per_token=self.kv_bytes_per_token,
            assumed=self.assumed,
            terms=self.terms,
            notes=self.notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.memory_summary().to_dict()
