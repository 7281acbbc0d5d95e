"""Unpack llama.cpp's own HF->GGUF converter from a llama-cpp-python sdist.

The sdist vendors llama.cpp under `vendor/llama.cpp/`; the converter is `convert_hf_to_gguf.py` plus
its `conversion/` package and the matching `gguf-py/` (the converter puts that on sys.path itself).
Usage: extract_converter.py SDIST_DIR DEST_DIR. Writes DEST_DIR/SOURCE.json (sdist name and sha256).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path

VENDOR = "vendor/llama.cpp/"
WANTED = ("convert_hf_to_gguf.py", "LICENSE", "conversion/", "gguf-py/gguf/", "gguf-py/pyproject.toml")


def extract(sdist: Path, dest: Path) -> list[str]:
    """Extract the converter files of `sdist` into `dest`; return their paths relative to dest."""
    written: list[str] = []
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")
            if not inner.startswith(VENDOR) or not member.isfile():
                continue
            relative = inner.removeprefix(VENDOR)
            if relative.startswith(WANTED) or relative in WANTED:
                member.name = relative
                members.append(member)
                written.append(relative)
        # filter="data" refuses absolute paths, links out of dest and device files.
        tar.extractall(dest, members=members, filter="data")
    return written


def main() -> None:
    sdist_dir, dest = Path(sys.argv[1]), Path(sys.argv[2])
    sdists = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
    if len(sdists) != 1:
        raise SystemExit(f"expected one llama_cpp_python sdist in {sdist_dir}, found {sdists}")
    sdist = sdists[0]
    dest.mkdir(parents=True, exist_ok=True)
    written = extract(sdist, dest)
    if "convert_hf_to_gguf.py" not in written:
        raise SystemExit(f"{sdist.name} has no {VENDOR}convert_hf_to_gguf.py")
    source = {
        "sdist": sdist.name,
        "sha256": hashlib.sha256(sdist.read_bytes()).hexdigest(),
        "files": len(written),
    }
    (dest / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
    print(f"extracted {len(written)} converter files from {sdist.name} into {dest}")


if __name__ == "__main__":
    main()
