"""Run inside a vLLM environment (nox -s gguf_multifile_probe): how vLLM treats multi-file GGUFs.

Checks the facts docs/formats/gguf.md states, with vLLM's own functions on CPU, and exits 1 if one
no longer holds: shard discovery from shard 1 skips missing shards silently; a `.gguf.partXofY`
piece passes vLLM's GGUF check (so it must be joined first); a directory is not a GGUF reference;
gguf.GGUFReader fails on a byte part.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np


def main() -> int:
    # Runs only inside a vLLM environment; which GGUF code exists depends on the version.
    try:  # vLLM <= 0.23: in-tree GGUF
        from vllm.model_executor.model_loader.gguf_loader import (
            GGUFModelLoader as Discover,
        )
        from vllm.transformers_utils.gguf_utils import is_gguf

        where = "vllm in-tree"
    except ImportError:  # vLLM >= 0.24: vllm-gguf-plugin
        from vllm_gguf_plugin.gguf_utils import is_gguf
        from vllm_gguf_plugin.weights_adapter.default import (
            GGUFWeightsAdapter as Discover,
        )

        where = "vllm-gguf-plugin"
    tmp = Path(tempfile.mkdtemp())
    for i in (1, 3):
        (tmp / f"m-Q8_0-0000{i}-of-00003.gguf").write_bytes(b"GGUF")
    found = [Path(p).name for p in Discover._get_all_gguf_files(str(tmp / "m-Q8_0-00001-of-00003.gguf"))]
    writer = gguf.GGUFWriter(tmp / "t.gguf", "llama")
    writer.add_tensor("a", np.zeros((64, 64), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = (tmp / "t.gguf").read_bytes()
    part = tmp / "t.gguf.part1of2"
    part.write_bytes(data[: len(data) // 2])
    try:
        gguf.GGUFReader(part)
        reader_fails = False
    except ValueError:
        reader_fails = True
    facts = {
        "missing shard skipped silently": found == ["m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf"],
        "a byte part passes is_gguf": bool(is_gguf(str(part))),
        "a directory is not a GGUF": not is_gguf(str(tmp)),
        "GGUFReader fails on a byte part": reader_fails,
    }
    for fact, holds in facts.items():
        print(f"{where}: {fact}: {'yes' if holds else 'NO'}")
    return 0 if all(facts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
