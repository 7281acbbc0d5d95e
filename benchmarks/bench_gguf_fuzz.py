"""Fuzzing the GGUF header reader (issue 15): 10,000 mutated headers, counted.

Seeds are valid files written by the `gguf` package's writer (a llama with a 300-token vocabulary, so
long string arrays are walked; an MoE with 3-D expert tensors; a big-endian file). Each case applies
1-4 mutations — a random byte, a random bit, a u64 or u32 overwritten with a boundary value, a cut —
placed mostly inside the tensor infos, so the fuzzing gets past the metadata and reaches the checks
on dimensions, types and offsets.

Reported, and required to be 0: crashes (any exception but GGUFHeaderError), hangs (a case taking
more than 2 s), and accepted impossible headers. "Impossible" is decided by an independent walker
written here from the GGUF grammar (not the reader's code): a tensor with 0 or > 4 dimensions, a zero
dimension, more than 2**36 elements, a ggml type id gguf does not know, data that does not start where
the previous tensor's ends (padded to the alignment) or ends past the file, or a key or tensor name
that is not UTF-8. The baseline, measured in the same run, is the unmutated seeds: all must be
accepted, and the oracle must find them possible.

Run: `python benchmarks/bench_gguf_fuzz.py [cases] [seed]` (default 10,000 cases, seed 15). Exit
status 1 when any required count is not 0.
"""

from __future__ import annotations

import random
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from modelformats.errors import GGUFHeaderError
from modelformats.gguf.header import HeaderLimits, read_gguf_header

HANG_SECONDS = 2.0
BOUNDARY_U64 = (0, 1, 2**31, 2**32, 2**32 + 1, 2**36 + 1, 2**62, 2**63, 2**64 - 1)
BOUNDARY_U32 = (0, 1, 4, 5, 9, 12, 39, 41, 42, 200, 2**31, 2**32 - 1)
KNOWN_TYPES = frozenset(t.value for t in gguf.GGMLQuantizationType)
BLOCKS = {t.value: gguf.GGML_QUANT_SIZES[t] for t in gguf.GGMLQuantizationType if t in gguf.GGML_QUANT_SIZES}
LIMITS = HeaderLimits(max_header_bytes=1 << 20)


class _Bytes:
    name = "<fuzz>"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]


# --- seeds -----------------------------------------------------------------------------------------------


def _write(path: Path, *, moe: bool = False, big_endian: bool = False) -> bytes:
    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    w = gguf.GGUFWriter(path, "llama", endianess=endian)
    w.add_name("fuzz seed")
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_token_list([f"tok{i}" for i in range(300)])
    w.add_token_scores([0.0] * 300)
    rng = np.random.default_rng(0)
    if moe:
        w.add_expert_count(4)
    w.add_tensor("token_embd.weight", rng.random((300, 64), dtype=np.float32))
    for layer in range(2):
        if moe:
            w.add_tensor(f"blk.{layer}.ffn_up_exps.weight", rng.random((4, 128, 64), dtype=np.float32))
        w.add_tensor(f"blk.{layer}.attn_q.weight", rng.random((64, 64)).astype(np.float16))
        w.add_tensor(f"blk.{layer}.attn_norm.weight", rng.random(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def seeds() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return {
            "llama": _write(Path(tmp) / "a.gguf"),
            "moe": _write(Path(tmp) / "b.gguf", moe=True),
            "big-endian": _write(Path(tmp) / "c.gguf", big_endian=True),
        }


# --- the independent oracle ------------------------------------------------------------------------------


class ImpossibleHeaderError(Exception):
    """The oracle's verdict on an accepted header."""


_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class _Walker:
    """The GGUF grammar, walked over bytes; raises ImpossibleHeaderError for what no loader should accept."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.order = ">" if struct.unpack_from("<I", data, 4)[0] & 0xFFFF == 0 else "<"
        self.pos = 8

    def unpack(self, code: str) -> tuple[Any, ...]:
        values = struct.unpack_from(self.order + code, self.data, self.pos)
        self.pos += struct.calcsize(self.order + code)
        return values

    def string(self, what: str) -> str:
        (n,) = self.unpack("Q")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImpossibleHeaderError(f"{what} is not UTF-8") from None

    def value(self, type_id: int) -> Any:
        if type_id in _SCALARS:
            return self.unpack(_SCALARS[type_id])[0]
        if type_id == 8:
            (n,) = self.unpack("Q")
            self.pos += n
            return None
        item, length = self.unpack("IQ")
        for _ in range(length):
            self.value(item)
        return None

    def metadata(self, n_kv: int) -> int:
        alignment = 32
        for _ in range(n_kv):
            key = self.string("a key")
            (type_id,) = self.unpack("I")
            val = self.value(type_id)
            if key == "general.alignment":
                alignment = val
        return alignment

    def tensors(self, n_tensors: int, alignment: int) -> int:
        """The end of the last tensor's data, relative to the data section."""
        expected = last_end = 0
        for _ in range(n_tensors):
            name = self.string("a tensor name")
            (n_dims,) = self.unpack("I")
            if not 1 <= n_dims <= 4:
                raise ImpossibleHeaderError(f"{name}: {n_dims} dimensions")
            dims = self.unpack("Q" * n_dims)
            type_id, offset = self.unpack("IQ")
            elements = 1
            for d in dims:
                elements *= d
            if 0 in dims or elements > 2**36:
                raise ImpossibleHeaderError(f"{name}: dimensions {dims}")
            if type_id not in KNOWN_TYPES or type_id not in BLOCKS:
                raise ImpossibleHeaderError(f"{name}: type id {type_id}")
            block, size = BLOCKS[type_id]
            if elements % block:
                raise ImpossibleHeaderError(f"{name}: partial block")
            if offset != expected:
                raise ImpossibleHeaderError(f"{name}: offset {offset}, expected {expected}")
            nbytes = elements // block * size
            last_end = offset + nbytes
            expected = offset + -(-nbytes // alignment) * alignment
        return last_end


def _oracle(data: bytes) -> tuple[int, int]:
    """Walk the header by the GGUF grammar; raise ImpossibleHeaderError for a header no loader should accept.

    Returns (start of the tensor infos, number of tensors)."""
    walker = _Walker(data)
    n_tensors, n_kv = walker.unpack("QQ")
    alignment = walker.metadata(n_kv)
    infos_at = walker.pos
    last_end = walker.tensors(n_tensors, alignment)
    data_start = -(-walker.pos // alignment) * alignment
    if n_tensors and data_start + last_end > len(data):
        raise ImpossibleHeaderError(f"tensor data ends at {data_start + last_end}, the file is {len(data)} bytes")
    return infos_at, n_tensors


# --- mutations ---------------------------------------------------------------------------------------------


def mutate(rng: random.Random, seed: bytes, infos_at: int, data_at: int) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        # 70 % of mutations land in the tensor infos, the rest anywhere in the header.
        lo = infos_at if rng.random() < 0.7 else 0
        at = rng.randrange(lo, data_at)
        kind = rng.choice(("byte", "bit", "u64", "u32", "cut"))
        if kind == "byte":
            data[at] = rng.randrange(256)
        elif kind == "bit":
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "u64" and at + 8 <= len(data):
            data[at : at + 8] = struct.pack("<Q", rng.choice(BOUNDARY_U64))
        elif kind == "u32" and at + 4 <= len(data):
            data[at : at + 4] = struct.pack("<I", rng.choice(BOUNDARY_U32))
        elif kind == "cut":
            cut_at = rng.randrange(at, len(data))
            del data[cut_at:]
            break
    return bytes(data)


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError


def run(cases: int, seed: int) -> int:
    rng = random.Random(seed)
    corpus = seeds()
    layout = {}
    for name, data in corpus.items():
        header = read_gguf_header(_Bytes(data), limits=LIMITS)  # the baseline: every seed reads
        infos_at, _ = _oracle(data)  # ... and is possible
        layout[name] = (infos_at, header.data_offset)
    signal.signal(signal.SIGALRM, _on_alarm)
    outcome: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    impossible: list[str] = []
    reached = 0
    slowest = 0.0
    started = time.perf_counter()
    for _ in range(cases):
        name = rng.choice(sorted(corpus))
        infos_at, data_at = layout[name]
        data = mutate(rng, corpus[name], infos_at, data_at)
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        try:
            read_gguf_header(_Bytes(data), limits=LIMITS)
        except GGUFHeaderError as exc:
            outcome["refused"] += 1
            reached += exc.offset >= infos_at
            continue
        except TimeoutError:
            outcome["hang"] += 1
            continue
        except Exception as exc:  # counting every crash is the point
            outcome["crash"] += 1
            crashes[f"{type(exc).__name__}: {exc}"[:120]] += 1
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            slowest = max(slowest, time.perf_counter() - t0)
        outcome["accepted"] += 1
        reached += 1
        try:
            _oracle(data)
        except ImpossibleHeaderError as why:
            impossible.append(f"{name}: {why}")
        except (struct.error, IndexError, RecursionError, TypeError, ValueError) as exc:
            impossible.append(f"{name}: the oracle cannot walk it ({type(exc).__name__})")
    elapsed = time.perf_counter() - started
    _report(
        cases,
        seed,
        seeds_n=len(corpus),
        elapsed=elapsed,
        outcome=outcome,
        crashes=crashes,
        impossible=impossible,
        reached=reached,
        slowest=slowest,
    )
    return 1 if outcome["crash"] or outcome["hang"] or impossible else 0


def _report(
    cases: int,
    seed: int,
    *,
    seeds_n: int,
    elapsed: float,
    outcome: Counter[str],
    crashes: Counter[str],
    impossible: list[str],
    reached: int,
    slowest: float,
) -> None:
    print(f"GGUF header fuzz: {cases:,} cases from {seeds_n} seeds (random seed {seed}), {elapsed:.1f} s")
    print(f"  baseline: {seeds_n}/{seeds_n} unmutated seeds accepted and possible")
    print(f"  accepted {outcome['accepted']:,}, refused with GGUFHeaderError {outcome['refused']:,}")
    print(f"  reached the tensor infos: {reached:,} ({reached / cases:.0%})")
    print(f"  slowest case: {slowest * 1000:.1f} ms")
    print(f"  crashes (other exceptions): {outcome['crash']}")
    for text, n in crashes.most_common(5):
        print(f"    {n} x {text}")
    print(f"  hangs (> {HANG_SECONDS:g} s): {outcome['hang']}")
    print(f"  accepted impossible headers: {len(impossible)}")
    for text in impossible[:5]:
        print(f"    {text}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    s = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    raise SystemExit(run(n, s))
