"""Read llama.cpp's own sources (as vendored in the llama-cpp-python sdist) into a facts dict.

Every fact carries the file:line it came from, relative to the llama.cpp root. Parsing is by small
regular expressions over the C/C++ tables, each checked for a minimum size so that a reshaped
source fails loudly instead of yielding an empty list.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["KNOWN_BUILD_NUMBERS", "SCHEMA", "SERVER_FLAGS", "SdistSources", "extract_facts"]

SCHEMA = "modelformats-llamacpp-facts/1"

# The sdist carries llama.cpp without git history, so `git rev-list --count` (how llama.cpp numbers
# its builds, .github/actions/get-tag-name/action.yml) cannot run on it. Commit -> build number, as
# published builds of that commit are labelled (`b11312-0c1e57098`); add a row when the pin moves.
KNOWN_BUILD_NUMBERS: Mapping[str, int] = {"0c1e57098": 11312}

# The llama-server flags modelformats emits or documents; each must exist in common/arg.cpp.
SERVER_FLAGS = (
    "--model",
    "--ctx-size",
    "--parallel",
    "--n-gpu-layers",
    "--host",
    "--port",
    "--alias",
    "--jinja",
    "--flash-attn",
    "--metrics",
    "--mmproj",
    "--kv-unified",
    "--fit",
    "--override-kv",
)

_VENDORED = "vendor/llama.cpp/"


class SdistSources:
    """Text files of the sdist: llama.cpp's by path relative to its root, the package's by name."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
        self._files: dict[str, str] = {}
        self.package: dict[str, str] = {}
        wanted = {
            "src/llama-arch.cpp",
            "src/llama-model.cpp",
            "src/llama.cpp",
            "src/llama-model-loader.cpp",
            "src/models/llama.cpp",
            "ggml/include/ggml.h",
            "ggml/src/ggml.c",
            "ggml/src/gguf.cpp",
            "ggml/src/ggml-cuda/ggml-cuda.cu",
            "include/llama.h",
            "tools/quantize/quantize.cpp",
            "common/arg.cpp",
            "tools/server/server.cpp",
            "tools/server/server-context.cpp",
            "tools/server/server-task.cpp",
            "src/llama-context.cpp",
            ".github/workflows/docker.yml",
            "docs/docker.md",
        }
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                _, _, inner = member.name.partition("/")
                rel = inner[len(_VENDORED) :] if inner.startswith(_VENDORED) else None
                if rel in wanted or inner in ("PKG-INFO", "CHANGELOG.md"):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    text = handle.read().decode("utf-8")
                    if rel in wanted:
                        self._files[rel] = text
                    else:
                        self.package[inner] = text
        missing = wanted - self._files.keys()
        if missing:
            raise ValueError(f"{archive} lacks llama.cpp files: {', '.join(sorted(missing))}")

    def text(self, path: str) -> str:
        return self._files[path]

    def lines(self, path: str) -> Iterator[tuple[int, str]]:
        yield from enumerate(self._files[path].splitlines(), start=1)


def _at_least(items: list[Any] | dict[str, Any], n: int, what: str) -> None:
    if len(items) < n:
        raise ValueError(f"parsed only {len(items)} {what} (expected >= {n}); the source changed shape")


def _source(src: SdistSources) -> dict[str, Any]:
    version = re.search(r"^Version: (\S+)$", src.package["PKG-INFO"], re.M)
    assert version is not None
    v = version.group(1)
    # CHANGELOG.md: "## [0.3.36]" then "- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098".
    section = src.package["CHANGELOG.md"].split(f"## [{v}]", 1)[1].split("\n## [", 1)[0]
    commit = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section)
    if commit is None:
        raise ValueError(f"CHANGELOG.md section {v} names no llama.cpp commit")
    build = KNOWN_BUILD_NUMBERS.get(commit.group(1))
    return {
        "package": "llama-cpp-python",
        "version": v,
        "sdist": src.archive.name,
        "sdist_sha256": src.sha256,
        "llama_cpp_commit": commit.group(1),
        "llama_cpp_commit_source": f"CHANGELOG.md [{v}]",
        "llama_cpp_build": build,
        "llama_cpp_build_source": (
            "tools/llamacpp_facts/extract.py KNOWN_BUILD_NUMBERS: the sdist has no git history"
            if build is not None
            else None
        ),
    }


def _architectures(src: SdistSources) -> list[dict[str, Any]]:
    """`LLM_ARCH_NAMES` (src/llama-arch.cpp) joined with `llama_model_mapping` (src/llama-model.cpp)."""
    constructible: set[str] = set()
    in_mapping = False
    for _, line in src.lines("src/llama-model.cpp"):
        if line.startswith("static llama_model * llama_model_mapping("):
            in_mapping = True
        elif in_mapping and line.startswith("}"):
            break
        elif in_mapping and (m := re.match(r"\s*case (LLM_ARCH_\w+):", line)):
            constructible.add(m.group(1))
    _at_least(sorted(constructible), 50, "architectures in llama_model_mapping")
    archs: list[dict[str, Any]] = []
    in_names = False
    for number, line in src.lines("src/llama-arch.cpp"):
        if "LLM_ARCH_NAMES = {" in line:
            in_names = True
            continue
        if in_names and line.startswith("};"):
            break
        m = re.match(r'\s*\{\s*(LLM_ARCH_\w+),\s*"([^"]+)"\s*\},?\s*(?://\s*(.*))?$', line)
        if in_names and m:
            enum, name, comment = m.groups()
            if enum == "LLM_ARCH_UNKNOWN":
                continue
            entry: dict[str, Any] = {
                "name": name,
                "enum": enum,
                "loads": enum in constructible and enum != "LLM_ARCH_CLIP",
                "source": f"src/llama-arch.cpp:{number}",
            }
            if comment:
                entry["note"] = comment.strip()
            elif enum not in constructible:
                entry["note"] = "no case in llama_model_mapping (src/llama-model.cpp): 'unsupported model architecture'"
            archs.append(entry)
    _at_least(archs, 50, "LLM_ARCH_NAMES entries")
    return archs


def _cuda_mul_mat_types(src: SdistSources) -> set[str]:
    """Weight types `ggml_backend_cuda_device_supports_op` accepts for MUL_MAT / MUL_MAT_ID."""
    text = src.text("ggml/src/ggml-cuda/ggml-cuda.cu")
    start = text.index("case GGML_OP_MUL_MAT_ID:\n            {")
    block = text[start : text.index("return true;", text.index("switch (a->type)", start))]
    types = set(re.findall(r"case GGML_TYPE_(\w+):", block))
    _at_least(sorted(types), 10, "CUDA MUL_MAT weight types")
    return types


def _ggml_types(src: SdistSources) -> list[dict[str, Any]]:
    """`enum ggml_type` (ggml.h): live members load; commented-out ones are removed from GGUF."""
    removed_names: dict[str, tuple[int, str]] = {}
    for number, line in src.lines("ggml/src/ggml.c"):
        # ggml.c keeps a placeholder with a zero block size for removed ids; gguf.cpp refuses
        # any tensor whose type has block size 0.
        m = re.search(r'\.type_name\s*=\s*"TYPE_(\w+) REMOVED, ([^"]*)"', line)
        if m:
            removed_names[m.group(1)] = (number, f"TYPE_{m.group(1)} REMOVED, {m.group(2)}")
    cuda = _cuda_mul_mat_types(src)
    out: list[dict[str, Any]] = []
    in_enum = False
    for number, line in src.lines("ggml/include/ggml.h"):
        if "enum ggml_type {" in line:
            in_enum = True
            continue
        if in_enum and "GGML_TYPE_COUNT" in line:
            break
        if not in_enum:
            continue
        live = re.match(r"\s*GGML_TYPE_(\w+)\s*=\s*(\d+),", line)
        dead = re.match(r"\s*//\s*GGML_TYPE_(\w+)\s*=\s*(\d+),?\s*(.*)$", line)
        if live:
            name, ident = live.group(1), int(live.group(2))
            out.append(
                {
                    "name": name,
                    "id": ident,
                    "loads": True,
                    "cuda_mul_mat": name in cuda,
                    "source": f"ggml/include/ggml.h:{number}",
                }
            )
        elif dead:
            name, ident, comment = dead.group(1), int(dead.group(2)), dead.group(3).strip()
            reason = removed_names[name][1] if name in removed_names else (comment or "support has been removed")
            where = [f"ggml/include/ggml.h:{number}"]
            if name in removed_names:
                where.append(f"ggml/src/ggml.c:{removed_names[name][0]}")
            out.append(
                {
                    "name": name,
                    "id": ident,
                    "loads": False,
                    "reason": reason,
                    "source": "; ".join(where),
                }
            )
    _at_least(out, 30, "ggml types")
    return out


def _refusal_site(src: SdistSources) -> str:
    for number, line in src.lines("ggml/src/gguf.cpp"):
        if "if (blck_size == 0 || info.t.ne[0] % blck_size != 0)" in line:
            return f"ggml/src/gguf.cpp:{number}"
    raise ValueError("gguf.cpp no longer checks block size 0")


def _file_types(src: SdistSources) -> list[dict[str, Any]]:
    """`enum llama_ftype` (include/llama.h) and the names llama-quantize accepts for each."""
    names: dict[str, list[str]] = {}
    for _, line in src.lines("tools/quantize/quantize.cpp"):
        m = re.match(r'\s*\{\s*"([\w-]+)",\s*LLAMA_FTYPE_(\w+),', line)
        # COPY re-writes tensors unchanged; it names no file type.
        if m and m.group(1) != "COPY":
            names.setdefault(m.group(2), []).append(m.group(1))
    out: list[dict[str, Any]] = []
    for number, line in src.lines("include/llama.h"):
        live = re.match(r"\s*LLAMA_FTYPE_(\w+)\s*=\s*(\d+),\s*(?://\s*(.*))?$", line)
        dead = re.match(r"\s*//\s*LLAMA_FTYPE_(\w+)\s*=\s*(\d+),\s*(?://\s*(.*))?$", line)
        m = live or dead
        # GUESSED (1024) is a reader's fallback, not a type a file declares.
        if not m or m.group(1) == "GUESSED":
            continue
        entry: dict[str, Any] = {
            "name": m.group(1),
            "id": int(m.group(2)),
            "loads": live is not None,
            "source": f"include/llama.h:{number}",
        }
        if m.group(1) in names:
            entry["quantize_names"] = names[m.group(1)]
        if dead and m.group(3):
            entry["reason"] = m.group(3).strip()
        out.append(entry)
    _at_least(out, 30, "llama file types")
    return out


def _server_flags(src: SdistSources) -> dict[str, Any]:
    text = src.text("common/arg.cpp")
    flags: dict[str, Any] = {}
    for flag in SERVER_FLAGS:
        m = re.search(r'\{\s*((?:"[^"]+",\s*)*"' + re.escape(flag) + r'"(?:,\s*"[^"]+")*)\s*\}', text)
        if m is None:
            raise ValueError(f"{flag} is not declared in common/arg.cpp")
        line = text.count("\n", 0, m.start()) + 1
        nxt = text.find("add_opt(", m.end())
        env = re.search(r'set_env\("(\w+)"\)', text[m.end() : nxt if nxt > 0 else None])
        flags[flag] = {
            "aliases": re.findall(r'"([^"]+)"', m.group(1)),
            "env": env.group(1) if env else None,
            "source": f"common/arg.cpp:{line}",
        }
    return flags


def _line_of(src: SdistSources, path: str, needle: str) -> str:
    for number, line in src.lines(path):
        if needle in line:
            return f"{path}:{number}"
    raise ValueError(f"{needle!r} not found in {path}")


def _routes(src: SdistSources) -> dict[str, str]:
    routes: dict[str, str] = {}
    for number, line in src.lines("tools/server/server.cpp"):
        m = re.search(r'ctx_http\.(?:get|post)\s*\("(/(?:health|metrics|v1/models|v1/chat/completions))"', line)
        if m:
            routes.setdefault(m.group(1), f"tools/server/server.cpp:{number}")
    _at_least(list(routes), 4, "server routes")
    return routes


def _metrics(src: SdistSources) -> dict[str, Any]:
    """Prometheus names `/metrics` serves (`llamacpp:<name>`; counters get no extra suffix)."""
    text = src.text("tools/server/server-task.cpp")
    out: dict[str, Any] = {}
    start = text.index("std::vector<metric_item> counters = {")
    middle = text.index("std::vector<metric_item> gauges = {", start)
    end = text.index("std::stringstream prometheus;", middle)
    for kind, block, offset in (("counter", text[start:middle], start), ("gauge", text[middle:end], middle)):
        for m in re.finditer(r'\{\s*"(\w+)",\s*"([^"]*)"', block):
            line = text.count("\n", 0, offset + m.start(1)) + 1
            out[f"llamacpp:{m.group(1)}"] = {
                "type": kind,
                "help": m.group(2),
                "source": f"tools/server/server-task.cpp:{line}",
            }
    _at_least(list(out), 8, "server metrics")
    return out


def _image(src: SdistSources, build: int | None) -> dict[str, Any]:
    workflow = src.text(".github/workflows/docker.yml")
    cuda = re.search(r'"tag": "cuda cuda12",[^}]*"cuda_version": "([\d.]+)"', workflow)
    cuda13 = re.search(r'"tag": "cuda13",[^}]*"cuda_version": "([\d.]+)"', workflow)
    assert cuda is not None and cuda13 is not None, "docker.yml build matrix changed shape"
    return {
        "repository": "ghcr.io/ggml-org/llama.cpp",
        "server_cuda_tag": f"server-cuda-b{build}" if build is not None else None,
        "tag_scheme": ("server-cuda-b<build>: <image type><suffix>-<source tag>, source tag b<git rev-list --count>"),
        "tag_scheme_source": _line_of(
            src, ".github/workflows/docker.yml", 'local merged_versioned_tag="${merged_tag}-${SRC_TAG}"'
        ),
        "cuda_version": cuda.group(1),
        "cuda13_version": cuda13.group(1),
        "dockerfile": ".devops/cuda.Dockerfile",
        "entrypoint": "/app/llama-server",
        # The image is built by a daily schedule (docker.yml `cron: '12 4 * * *'`), not per commit.
        "published_daily": "cron:" in workflow,
        "docs": "docs/docker.md",
    }


def extract_facts(archive: Path) -> dict[str, Any]:
    """All facts the LlamaCppEngine uses, with file:line sources inside llama.cpp."""
    src = SdistSources(archive)
    source = _source(src)
    moe_tensors = [
        "blk.%d.ffn_gate_inp",
        "blk.%d.ffn_gate_exps",
        "blk.%d.ffn_up_exps",
        "blk.%d.ffn_down_exps",
    ]
    loader = "src/llama-model-loader.cpp"
    context = "src/llama-context.cpp"
    return {
        "schema": SCHEMA,
        "source": source,
        "architectures": _architectures(src),
        "ggml_types": _ggml_types(src),
        "ggml_type_refusal": _refusal_site(src),
        "file_types": _file_types(src),
        "llama_moe": {
            "tensors": moe_tensors,
            "tensor_names_source": _line_of(src, "src/llama-arch.cpp", '"blk.%d.ffn_gate_inp"'),
            "loader_source": _line_of(src, "src/models/llama.cpp", "layer.ffn_gate_inp  = create_tensor("),
        },
        "split": {
            "shard_format": "%s-%05d-of-%05d.gguf",
            "shard_format_source": _line_of(src, "src/llama.cpp", '"%s-%05d-of-%05d.gguf"'),
            "first_shard_required": _line_of(src, loader, "model must be loaded with the first split"),
            "count_checked": _line_of(src, loader, "invalid split count, given"),
        },
        "context": {
            "per_slot": _line_of(src, context, "cparams.n_ctx_seq = cparams.n_ctx / cparams.n_seq_max;"),
            "padding": 256,
            "padding_source": _line_of(src, context, "cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256);"),
            "auto_parallel_unifies_kv": _line_of(src, "tools/server/server.cpp", "params.kv_unified = true;"),
            "slot_capped_by_train_ctx": _line_of(
                src,
                "tools/server/server-context.cpp",
                "return std::min(res, llama_model_n_ctx_train(model_tgt));",
            ),
        },
        "server_flags": _server_flags(src),
        "server_routes": _routes(src),
        "server_metrics": _metrics(src),
        "image": _image(src, source["llama_cpp_build"]),
    }
