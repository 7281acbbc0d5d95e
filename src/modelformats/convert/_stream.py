"""The conversion's data path: GGUF row chunks read, decoded on a few threads, yielded in order.

A `Piece` is one output tensor (a row range of one GGUF tensor: the whole tensor, or one expert of a
merged expert tensor); a `Job` is one chunk of its rows. numpy and `os.pread` release the GIL, so
`in_order` runs jobs on WORKERS threads while the caller writes the finished ones; at most
WORKING_BYTES of jobs are in flight, so memory stays bounded whatever the model's size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelformats.convert._decode import decode
from modelformats.convert._safetensors import TensorSpec, encode
from modelformats.errors import ConversionError
from modelformats.gguf.hf_names import unpermute_qk

__all__ = ["CHUNK_ELEMENTS", "WORKERS", "WORKING_BYTES", "Job", "Piece", "in_order", "jobs", "run_job"]

# Rows are read and dequantized in chunks of about this many elements (32 MiB of float32).
CHUNK_ELEMENTS = 8 * 1024 * 1024
# Chunks are decoded on this many threads, with at most WORKING_BYTES of them in flight.
WORKERS = min(4, os.cpu_count() or 1)
WORKING_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class Piece:
    """One output tensor: a row range of one GGUF tensor, un-permuted or not."""

    spec: TensorSpec
    file: int  # index into the GGUF files
    offset: int  # absolute byte offset of the first row
    rows: int
    row_bytes: int
    qtype: int
    unpermute_heads: int | None


@dataclass(frozen=True, slots=True)
class Job:
    """One chunk of rows of one piece: read, dequantize, un-permute if needed, encode."""

    piece: Piece
    first: int
    rows: int
    last: bool  # the piece's last chunk

    @property
    def working_bytes(self) -> int:
        return self.rows * self.piece.spec.shape[-1] * 4 + self.rows * self.piece.row_bytes


def jobs(pieces: Iterable[Piece]) -> Iterator[Job]:
    for piece in pieces:
        width = piece.spec.shape[-1]
        # Q/K rows are un-permuted across the whole tensor: one chunk.
        step = piece.rows if piece.unpermute_heads is not None else max(1, CHUNK_ELEMENTS // width)
        for first in range(0, piece.rows, step):
            yield Job(piece=piece, first=first, rows=min(step, piece.rows - first), last=first + step >= piece.rows)


def run_job(handle: Any, job: Job, dtype: str) -> np.ndarray:
    piece, rows = job.piece, job.rows
    width = piece.spec.shape[-1]
    raw = os.pread(handle.fileno(), rows * piece.row_bytes, piece.offset + job.first * piece.row_bytes)
    if len(raw) != rows * piece.row_bytes:
        raise ConversionError(handle.name, f"the file ends inside tensor {piece.spec.name}", "download the GGUF again")
    data = np.frombuffer(raw, dtype=np.uint8).reshape(rows, piece.row_bytes)
    if piece.unpermute_heads is None:
        return decode(data, piece.qtype, width, dtype)
    values = decode(data, piece.qtype, width, "float32")
    # A Q/K bias (one row) is permuted by llama.cpp as its weight's rows: un-permute it as a vector.
    flat = len(piece.spec.shape) == 1
    values = unpermute_qk(values.reshape(-1) if flat else values, piece.unpermute_heads).reshape(rows, width)
    return encode(values, dtype)


def in_order(jobs: Iterable[Job], run: Callable[[Job], np.ndarray]) -> Iterator[tuple[Job, np.ndarray]]:
    """Run jobs on WORKERS threads (numpy and pread release the GIL), yielding results in job order.

    At most WORKING_BYTES of jobs are in flight (always at least one), so memory stays bounded.
    """
    pending: deque[tuple[Job, Future[np.ndarray]]] = deque()
    in_flight = 0
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="convert")
    try:
        for job in jobs:
            while pending and in_flight + job.working_bytes > WORKING_BYTES:
                done, future = pending.popleft()
                in_flight -= done.working_bytes
                yield done, future.result()
            pending.append((job, pool.submit(run, job)))
            in_flight += job.working_bytes
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
