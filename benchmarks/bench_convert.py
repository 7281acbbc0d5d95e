"""`modelformats convert` throughput and peak memory vs a naive GGUFReader full-load (issue 18).

The input is a GGUF shaped like the target (llama, hidden 3072, 24/8 heads, 8 experts of 8192,
128,256-token vocab, Q8_0 - the tensors of ../shared/tools/make_target_like_gguf.py) but with
`--layers` decoder blocks (default 1) instead of 28, filled with random Q8_0 blocks (finite fp16
scales), because this machine's shared disk cannot hold the 19.6 GB file and its 37 GB bf16 output.
Each block is the target's own tensor shapes, so per-tensor cost, chunking and peak memory are the
target's; throughput scales with bytes. Measured in the same run, each in a fresh subprocess:

- read: the file read sequentially in 8 MiB chunks (what the disk delivers);
- write: as many bytes as the bfloat16 checkpoint holds, written sequentially and flushed (what the disk
  takes; the output is ~1.9x the Q8_0 input, so on most disks writing, not reading, is the I/O floor);
- convert: `convert_gguf(..., dtype="bfloat16")` writing the checkpoint to a scratch directory (it
  flushes its files before the final rename);
- convert-ram: the same into /dev/shm (memory), when it has room: the CPU's share without disk writes;
- naive: `gguf.GGUFReader` + `dequantize` of every tensor, all held (as float16) then written - what a
  script that builds a full state dict before saving does.

Every run starts with the GGUF evicted from the page cache (posix_fadvise DONTNEED) and ends with its
output flushed to disk, so "read" is the disk, not memory.

Prints MB/s (GGUF bytes per second), peak RSS, and the ratios. Deletes its files. Run:
`python benchmarks/bench_convert.py [--layers N] [--workdir DIR]` (dev dependencies: gguf, numpy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

E, FF, HEADS, KV, VOCAB, EXPERTS = 3072, 8192, 24, 8, 128256, 8
HD = E // HEADS
CHUNK = 8 * 1024 * 1024


def make_gguf(path: Path, layers: int) -> int:
    """Write the target-shaped GGUF with random Q8_0 data; return its size."""
    import gguf

    q8 = gguf.GGMLQuantizationType.Q8_0
    block, size = gguf.GGML_QUANT_SIZES[q8]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(131072)
    writer.add_embedding_length(E)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(FF)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV)
    writer.add_expert_count(EXPERTS)
    writer.add_expert_used_count(2)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_bos_token_id(128000)
    writer.add_eos_token_id(128009)
    shapes: list[tuple[str, tuple[int, ...], bool]] = [
        ("token_embd.weight", (VOCAB, E), True),
        ("output.weight", (VOCAB, E), True),
        ("output_norm.weight", (E,), False),
    ]
    for b in range(layers):
        p = f"blk.{b}."
        shapes += [
            (p + "attn_norm.weight", (E,), False),
            (p + "ffn_norm.weight", (E,), False),
            (p + "attn_q.weight", (E, E), True),
            (p + "attn_k.weight", (KV * HD, E), True),
            (p + "attn_v.weight", (KV * HD, E), True),
            (p + "attn_output.weight", (E, E), True),
            (p + "ffn_gate_inp.weight", (EXPERTS, E), False),
            (p + "ffn_gate_exps.weight", (EXPERTS, FF, E), True),
            (p + "ffn_up_exps.weight", (EXPERTS, FF, E), True),
            (p + "ffn_down_exps.weight", (EXPERTS, E, FF), True),
        ]
    total = 0
    for name, shape, quantized in shapes:
        n = int(np.prod(shape))
        nbytes = n // block * size if quantized else n * 4
        total += nbytes + (-nbytes % 32)  # GGUF aligns every tensor to 32 bytes
        if quantized:
            byte_shape = (*shape[:-1], shape[-1] // block * size)
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=q8)
        else:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size + total + 32)  # a hole, filled below
    _fill(path)
    return path.stat().st_size


def _fill(path: Path) -> None:
    """Write random Q8_0 blocks (finite fp16 scales) and random F32 values into every tensor's place."""
    import gguf

    q8 = gguf.GGMLQuantizationType.Q8_0
    _, size = gguf.GGML_QUANT_SIZES[q8]
    reader = gguf.GGUFReader(str(path))
    infos = [(int(t.data_offset), int(t.n_bytes), t.tensor_type) for t in reader.tensors]
    del reader
    rng = np.random.default_rng(0)
    with path.open("r+b") as handle:
        for offset, nbytes, kind in infos:
            done = 0
            while done < nbytes:
                if kind == q8:
                    blocks = min(CHUNK // size, (nbytes - done) // size)
                    data = np.empty((blocks, size), dtype=np.uint8)
                    data[:, :2] = rng.uniform(1e-3, 1e-2, blocks).astype("<f2").view(np.uint8).reshape(blocks, 2)
                    data[:, 2:] = rng.integers(-127, 128, (blocks, size - 2), dtype=np.int8).view(np.uint8)
                else:
                    data = rng.standard_normal(min(CHUNK, nbytes - done) // 4).astype("<f4")
                raw = data.tobytes()
                os.pwrite(handle.fileno(), raw, offset + done)
                done += len(raw)


def _drop_cache(path: Path) -> None:
    """Evict the file's pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def worker(kind: str, gguf_path: Path, out: Path) -> None:
    _drop_cache(gguf_path)
    start = time.perf_counter()
    if kind == "read":
        with gguf_path.open("rb", buffering=0) as handle:
            while handle.read(CHUNK):
                pass
    elif kind == "write":
        # The bytes the bf16 checkpoint holds, written sequentially and flushed, as convert does.
        out.mkdir()
        remaining = _bf16_bytes(gguf_path)
        block = np.random.default_rng(0).integers(0, 256, CHUNK, dtype=np.uint8).tobytes()
        with (out / "model.safetensors").open("wb") as handle:
            while remaining > 0:
                remaining -= handle.write(block[: min(CHUNK, remaining)])
            handle.flush()
            os.fsync(handle.fileno())
    elif kind.startswith("convert"):
        from modelformats.convert import convert_gguf

        convert_gguf(gguf_path, out, dtype="bfloat16", base=_base(gguf_path.parent))
    else:
        import gguf
        from gguf.quants import dequantize

        reader = gguf.GGUFReader(str(gguf_path))
        state = {t.name: dequantize(t.data, t.tensor_type).astype(np.float16) for t in reader.tensors}
        out.mkdir()
        with (out / "weights.bin").open("wb") as handle:
            for values in state.values():
                handle.write(values.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak}))


def _bf16_bytes(gguf_path: Path) -> int:
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    return sum(int(t.n_elements) * 2 for t in reader.tensors)


def _base(folder: Path) -> Path:
    """A --base folder (config + tokenizer stand-in) so the benchmark measures weights, not transformers."""
    base = folder / "base"
    if not base.exists():
        base.mkdir()
        config = {
            "architectures": ["MixtralForCausalLM"],
            "model_type": "mixtral",
            "hidden_size": E,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV,
            "vocab_size": VOCAB,
            "num_local_experts": EXPERTS,
        }
        (base / "config.json").write_text(json.dumps(config))
        (base / "tokenizer.json").write_text("{}")
    return base


def measure(kind: str, gguf_path: Path, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(gguf_path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-naive", action="store_true", help="the naive baseline needs ~2 bytes/param of RAM")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "GGUF", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return 0
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench_convert-") as tmp:
        work = Path(tmp)
        gguf_path = work / "target-like-Q8_0.gguf"
        size = make_gguf(gguf_path, args.layers)
        out_bytes = _bf16_bytes(gguf_path)
        print(
            f"input: target-shaped Q8_0 GGUF, {args.layers} block(s) of 28, {size / 1e9:.2f} GB (random data); "
            f"output: {out_bytes / 1e9:.2f} GB of bfloat16"
        )
        memory = Path("/dev/shm")
        kinds = {"read": work, "write": work, "convert": work}
        if memory.is_dir() and shutil.disk_usage(memory).free > 2 * out_bytes:
            kinds["convert-ram"] = memory
        if not args.skip_naive:
            kinds["naive"] = work
        results = {
            kind: measure(kind, gguf_path, folder / f"bench_convert-out-{kind}") for kind, folder in kinds.items()
        }
        print("every run starts with the GGUF evicted from the page cache and ends with its output flushed to disk")
        print(f"{'':12} {'seconds':>8} {'MB/s':>8} {'peak RSS':>10}   (MB/s: GGUF bytes per second)")
        for kind, r in results.items():
            print(f"{kind:12} {r['seconds']:8.1f} {size / r['seconds'] / 1e6:8.0f} {r['peak_rss'] / 2**30:8.2f} GiB")
        read, write, convert = results["read"], results["write"], results["convert"]
        floor = max(read["seconds"], write["seconds"])
        print(
            f"convert to disk takes {convert['seconds'] / read['seconds']:.1f}x the disk read "
            f"(goal: <= 2x) and {convert['seconds'] / floor:.2f}x the I/O floor (max of reading the GGUF, "
            f"{read['seconds']:.1f} s, and writing its {out_bytes / 1e9:.2f} GB output, {write['seconds']:.1f} s)"
        )
        if "convert-ram" in results:
            ram = results["convert-ram"]
            print(
                f"convert to memory (/dev/shm, no disk writes: the CPU's share) takes "
                f"{ram['seconds'] / read['seconds']:.1f}x the disk read"
            )
        if "naive" in results:
            naive = results["naive"]
            print(
                f"convert vs naive: {naive['seconds'] / convert['seconds']:.2f}x the speed, "
                f"{convert['peak_rss'] / naive['peak_rss']:.2f}x the peak RSS"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
