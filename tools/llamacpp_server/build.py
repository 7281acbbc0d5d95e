"""Build a CPU `llama-server` from the llama.cpp sources vendored in the llama-cpp-python sdist.

The sdist is fetched from PyPI with pip (CI installs nothing from outside the repo's own files),
only `vendor/llama.cpp/` is unpacked, and only two targets are built: `llama-server`, and
`llama-quantize` (one more source file on the same libraries) so the end-to-end run can test the
target's K-quants, which the `gguf` package cannot write. The binaries are cached outside the clone,
under `$MODELFORMATS_CACHE/llamacpp/<version>/bin/` (default `~/.cache/modelformats`), with a stamp of
the exact configure flags, so every checkout on the machine (CI included) and every session that
needs llama-server (llamacpp_e2e, smoke, bench) share one compile (about 8 minutes on 2 cores).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILD_COMMIT",
    "BUILD_NUMBER",
    "CMAKE_FLAGS",
    "LLAMA_CPP_PYTHON_VERSION",
    "TARGETS",
    "LlamaBinaries",
    "build_llama_cpp",
    "download_sdist",
    "ensure_llama_binaries",
    "ensure_llama_server",
    "extract_llama_cpp",
    "shared_cache",
]

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# llama-cpp-python 0.3.36 CHANGELOG.md: "update llama.cpp to ggml-org/llama.cpp@0c1e57098". The sdist
# has no git history, so the build number cannot be read from it; b11312 is the number published
# builds of that commit carry (see docs/engines/llamacpp.md). It is compiled in so `--version` says so.
BUILD_COMMIT = "0c1e57098"
BUILD_NUMBER = 11312

# Only what llama-server needs: no tests/examples/app, no web UI (it would need npm or a download
# from Hugging Face), no OpenSSL (the server listens on plain HTTP behind Modal's TLS).
# GGML_NATIVE=OFF keeps the cached binary runnable on any x86-64 CI machine, not only the builder.
CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    f"-DLLAMA_BUILD_NUMBER={BUILD_NUMBER}",
    f"-DLLAMA_BUILD_COMMIT={BUILD_COMMIT}",
)
TARGETS = ("llama-server", "llama-quantize")
_VENDORED = "vendor/llama.cpp/"


@dataclass(frozen=True, kw_only=True, slots=True)
class LlamaBinaries:
    """Paths of the cached CPU builds."""

    server: Path
    quantize: Path


def shared_cache() -> Path:
    """Expensive artifacts shared by every checkout on this machine (noxfile.SHARED_CACHE)."""
    return Path(os.environ.get("MODELFORMATS_CACHE") or Path.home() / ".cache" / "modelformats")


def _log(message: str) -> None:
    print(f"[llamacpp-build] {message}", file=sys.stderr, flush=True)


def download_sdist(dest: Path, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """`pip download` the llama-cpp-python sdist into `dest` (once); return the archive path."""
    name = f"llama_cpp_python-{version}.tar.gz"
    archive = dest / name
    if archive.exists():
        return archive
    dest.mkdir(parents=True, exist_ok=True)
    # Build isolation stays on: pip prepares the sdist's metadata with scikit-build-core, which the
    # calling environment need not have (--no-build-isolation fails with "No module named
    # 'scikit_build_core'"). `--no-binary` names only this package: with `:all:` pip also builds the
    # isolated env's requirements from source, CMake included (minutes of compile for nothing).
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python"]
    subprocess.run([*command, "--dest", str(dest), f"llama-cpp-python=={version}"], check=True)
    if not archive.exists():
        raise FileNotFoundError(f"pip download did not produce {archive}")
    return archive


def extract_llama_cpp(archive: Path, dest: Path) -> Path:
    """Unpack only `vendor/llama.cpp/` of the sdist into `dest`; return the llama.cpp source root."""
    marker = dest / "CMakeLists.txt"
    if marker.exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")
            if inner.startswith(_VENDORED) and len(inner) > len(_VENDORED):
                member.name = inner[len(_VENDORED) :]
                members.append(member)
        tar.extractall(tmp, members=members, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def build_llama_cpp(source: Path, build_dir: Path, *, jobs: int = 2) -> Path:
    """Configure and build only `TARGETS`; return the directory holding the binaries."""
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    cmake = shutil.which("cmake")
    if cmake is None:
        raise FileNotFoundError("cmake is not on PATH; install it (pip install cmake) to build llama-server")
    # The vendored tree carries a `.git` file pointing at a missing submodule dir; keep git from
    # walking up into an unrelated repository while cmake asks for build info.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(source.parent)}
    subprocess.run([cmake, "-S", str(source), "-B", str(build_dir), *generator, *CMAKE_FLAGS], check=True, env=env)
    subprocess.run([cmake, "--build", str(build_dir), "--target", *TARGETS, "-j", str(jobs)], check=True, env=env)
    for target in TARGETS:
        if not (build_dir / "bin" / target).exists():
            raise FileNotFoundError(f"the build finished without producing {build_dir / 'bin' / target}")
    return build_dir / "bin"


def _stamp(version: str) -> str:
    return hashlib.sha256(json.dumps([version, list(CMAKE_FLAGS), list(TARGETS)]).encode()).hexdigest()[:16]


def ensure_llama_binaries(cache: Path, *, version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int = 2) -> LlamaBinaries:
    """Return cached CPU builds for `version`, building them (sdist -> cmake) when missing.

    Layout: `<cache>/llamacpp/<version>/{sdist/, src/, bin/llama-server, bin/llama-quantize, stamp}`.
    """
    root = cache / "llamacpp" / version
    root.mkdir(parents=True, exist_ok=True)
    # Two sessions (llamacpp_e2e, smoke) may ask at once; the second waits and then reuses the build.
    with (root / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_locked(root, version, jobs)


def _ensure_locked(root: Path, version: str, jobs: int) -> LlamaBinaries:
    binaries = LlamaBinaries(server=root / "bin" / "llama-server", quantize=root / "bin" / "llama-quantize")
    stamp = root / "stamp"
    key = _stamp(version)
    if all(p.exists() for p in (binaries.server, binaries.quantize)) and stamp.exists() and stamp.read_text() == key:
        _log(f"reusing {binaries.server.parent} ({key})")
        return binaries
    started = time.monotonic()
    archive = download_sdist(root / "sdist", version)
    source = extract_llama_cpp(archive, root / "src")
    built = build_llama_cpp(source, root / "build", jobs=jobs)
    binaries.server.parent.mkdir(parents=True, exist_ok=True)
    for target in TARGETS:
        shutil.copy2(built / target, root / "bin" / target)
    stamp.write_text(key)
    # The object files are ~300 MB and the binaries are static: bin/, sdist/ and src/ are kept.
    shutil.rmtree(root / "build", ignore_errors=True)
    _log(f"built {', '.join(TARGETS)} in {time.monotonic() - started:.0f} s")
    return binaries


def ensure_llama_server(cache: Path, *, version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int = 2) -> Path:
    """The cached CPU `llama-server` binary (built on first use); see `ensure_llama_binaries`."""
    return ensure_llama_binaries(cache, version=version, jobs=jobs).server
