"""GGUF benchmarks (issue 4): bytes planned per recorded GGUF repo, and the header reader's cost.

1. Bytes planned vs the whole repo (what `snapshot_download(repo)` with no patterns fetches) and vs
   the chosen quant's own files (the minimum that can serve the model). Sizes missing from a listing
   are estimated the way the plan estimates them (parameters x bits per weight), marked "~".
2. Reading the header of a GGUF shaped like the target (llama, 28 blocks, 8 experts, Q8_0, 128,256
   tokens, ~280k merges; written by ../shared/tools/make_target_like_gguf.py as a sparse file):
   time, peak memory and bytes read, for `gguf.GGUFReader` (the baseline, measured in the same run)
   and for modelformats' reader on the local file and over HTTP Range requests.

Run: `python benchmarks/bench_gguf.py` (needs the dev dependencies: gguf, numpy). Prints only.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modelformats.formats.base import SelectionContext
from modelformats.formats.gguf import GGUFFormat
from modelformats.gguf.files import inventory_gguf
from modelformats.gguf.header import HttpRangeSource, read_gguf_header
from modelformats.listing import RepoListing
from modelformats.sources.recorded import RecordedSource

ROOT = Path(__file__).resolve().parent.parent
LISTINGS = ROOT / "tests" / "data" / "listings"
MAKE_TARGET = ROOT.parent / "shared" / "tools" / "make_target_like_gguf.py"
# Repos whose listing names no findable tokenizer source: the base model a user would pass.
TOKENIZER_FROM = {
    "DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-GGUF": "DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B",
    "ggml-org/gemma-3-27b-it-GGUF": "google/gemma-3-27b-it",
    "unsloth/DeepSeek-R1-GGUF": "deepseek-ai/DeepSeek-R1",
    "mradermacher/Llama-3-70Bx2-MOE-GGUF": "cloudyu/Llama-3-70Bx2-MOE",
    "unsloth/gemma-3-1b-it-GGUF": "google/gemma-3-1b-it",
}


def _num(value: float | None, width: int, spec: str) -> str:
    return f"{value:{width}{spec}}" if value is not None else " " * (width - 1) + "-"


def _gb(n: float) -> str:
    return f"{n / 1e9:8.2f}"


def _repo_bytes(listing: RepoListing, params: float | None) -> tuple[float, bool]:
    """Every file of the repo; GGUF units without sizes estimated from `params` (True if any was)."""
    total, estimated = 0.0, False
    counted: set[str] = set()
    for unit in inventory_gguf(listing.paths).units:
        size, _ = listing.total_size(unit.files)
        counted.update(unit.files)
        if size is None and params is not None and unit.quant is not None:
            size, estimated = params * unit.quant.bits_per_weight / 8, True
        total += size or 0
    total += sum(f.size or 0 for f in listing.files if f.path not in counted)
    return total, estimated


def bytes_planned() -> None:
    source = RecordedSource.from_paths([LISTINGS])
    fmt = GGUFFormat()
    print("1. bytes planned per recorded GGUF repo (GB; ~ = estimated; whole = snapshot_download without patterns)")
    print(f"{'repo':<58} {'quant':<8} {'planned':>8} {'chosen':>8} {'whole':>9} {'/chosen':>8} {'/whole':>7}")
    for listing in sorted(source, key=lambda x: x.repo_id):
        detection = fmt.detect(listing)
        if detection is None:
            continue
        context = SelectionContext(source=source, tokenizer_from=TOKENIZER_FROM.get(listing.repo_id))
        sel = fmt.select_files(listing, detection, context)
        chosen, _ = listing.total_size(sel.weight_files)
        bpw = float(sel.details["bits_per_weight"])
        planned = float(sel.download_bytes or 0)
        params = planned * 8 / bpw if sel.bytes_estimated and chosen is None else None
        chosen_bytes = float(chosen) if chosen is not None else planned
        whole, whole_est = _repo_bytes(listing, params)
        mark = "~" if sel.bytes_estimated and chosen is None else " "
        print(
            f"{listing.repo_id[:58]:<58} {sel.quant or '':<8} {mark}{_gb(planned)} {_gb(chosen_bytes)} "
            f"{'~' if whole_est else ' '}{_gb(whole)} {planned / chosen_bytes:7.2f}x {planned / whole:6.2f}x"
        )
    print()


# --- header reading -------------------------------------------------------------------------------

_CHILD = """
import json, resource, sys, time
path, which = sys.argv[1], sys.argv[2]
if which == "gguf":
    import gguf
    def run():
        return gguf.GGUFReader(path)
else:
    from modelformats.gguf.header import read_header
    def run():
        return read_header(path)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); out = run(); times.append(time.perf_counter() - t)
    del out
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
traced = None
if which != "gguf":  # GGUFReader under tracemalloc takes ~60 s; its RSS growth says enough
    import tracemalloc
    tracemalloc.start(); run(); traced = tracemalloc.get_traced_memory()[1] / 2**20; tracemalloc.stop()
median = sorted(times)[len(times) // 2]
print(json.dumps({"seconds": median, "rss_mib": (after - before) / 1024, "traced_mib": traced}))
"""


def _child(path: Path, which: str, repeats: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), which, str(repeats)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


class _FileRanges(BaseHTTPRequestHandler):
    """Serves one (sparse) file with Range support, counting the bytes sent."""

    path_on_disk: Path
    sent: list[int]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        size = self.path_on_disk.stat().st_size
        start, _, end = self.headers.get("Range", "bytes=0-").removeprefix("bytes=").partition("-")
        first, last = int(start), min(int(end) if end else size - 1, size - 1)
        with self.path_on_disk.open("rb") as f:
            f.seek(first)
            body = f.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.sent.append(len(body))


def _remote(path: Path) -> tuple[float, int, int]:
    handler = type("Handler", (_FileRanges,), {"path_on_disk": path, "sent": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/target.gguf"
        samples = []
        for _ in range(3):
            handler.sent.clear()
            t = time.perf_counter()
            read_gguf_header(HttpRangeSource(url))
            samples.append(time.perf_counter() - t)
        return statistics.median(samples), sum(handler.sent), len(handler.sent)
    finally:
        server.shutdown()
        server.server_close()


def header_cost() -> None:
    if not MAKE_TARGET.exists():
        print(f"2. header reader: skipped ({MAKE_TARGET} not found; ../shared must be beside the repo)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "target.gguf"
        subprocess.run([sys.executable, str(MAKE_TARGET), str(path)], check=True, capture_output=True)
        ours = read_gguf_header(path)
        header_bytes, file_bytes = ours.data_offset, path.stat().st_size
        base = _child(path, "gguf", 1)
        local = _child(path, "modelformats", 5)
        remote_s, remote_bytes, requests = _remote(path)
    print(f"2. header of the target-shaped GGUF: {header_bytes:,} B header in a {file_bytes:,} B file")
    print(f"{'reader':<34} {'seconds':>8} {'x faster':>9} {'RSS+ MiB':>9} {'traced MiB':>10} {'bytes read':>12}")
    rows = [
        ("gguf.GGUFReader (baseline, mmap)", base, None),
        ("modelformats, local file", local, ours.bytes_read),
        (f"modelformats, HTTP ({requests} Range GETs)", {"seconds": remote_s}, remote_bytes),
    ]
    for name, m, read in rows:
        print(
            f"{name:<34} {m['seconds']:8.3f} {base['seconds'] / m['seconds']:8.1f}x "
            f"{_num(m.get('rss_mib'), 9, '.1f')} {_num(m.get('traced_mib'), 10, '.1f')} "
            f"{_num(read, 12, ',')}" + (f" ({read / header_bytes:.2f}x the header)" if read else "")
        )
    print("   RSS+ = growth of the process's peak RSS (below the import peak reads as 0); traced = tracemalloc peak")
    print(
        f"   same answer: {ours.parameter_count:,} parameters, {dict(ours.tensor_types)}, "
        f"expert_count={ours.expert_count}"
    )


def main() -> None:
    bytes_planned()
    header_cost()


if __name__ == "__main__":
    main()
