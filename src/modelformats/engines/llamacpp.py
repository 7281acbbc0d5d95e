"""llama.cpp's OpenAI-compatible server (`llama-server`) as an `Engine`.

It is the route for GGUF layouts vLLM cannot load, the target among them: a Mixtral that llama.cpp
stores as `general.architecture = llama` with `llama.expert_count` and merged `ffn_*_exps`
tensors, which llama.cpp builds natively (src/models/llama.cpp:78-82).

Everything here is answered from two generated data files, never by importing llama.cpp:
- `data/llamacpp_facts.json` — read from llama.cpp's sources as vendored in the llama-cpp-python
  sdist (`python -m tools.llamacpp_facts`): architectures, tensor/file types, flags, image tags;
- `data/llamacpp_e2e.json` — what `nox -s llamacpp_e2e` ran on CPU: a real llama-server built
  from those sources serving tiny GGUFs of each layout and quant through the OpenAI API.
Paths in messages are relative to the llama.cpp source root of that build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from modelformats.engines.base import (
    EngineCommand,
    EngineTraits,
    EvidenceLevel,
    LoadVerdict,
    RuntimeSpec,
    WeightsSpec,
)
from modelformats.errors import InvalidRequestError
from modelformats.gguf.files import is_byte_part
from modelformats.naming import parse_shard_name

__all__ = [
    "FILE_LAYOUTS",
    "LLAMACPP_TRAITS",
    "CudaBuildRecipe",
    "LlamaCppEngine",
    "load_e2e_results",
    "load_facts",
]

# `WeightsSpec.gguf_layout` values this engine understands (None means "single").
FILE_LAYOUTS: Mapping[str, str] = {
    "single": "one .gguf file",
    "split": "llama.cpp split shards <prefix>-0000N-of-0000M.gguf; the server is given shard 1",
    "parts": "raw byte pieces .gguf.partXofY; joined into one .gguf before the server starts",
}
# llama.cpp derives every shard name from shard 1 with "%s-%05d-of-%05d.gguf" (src/llama.cpp:552),
# so only five-digit numbering is found; shard 1 must be the file given (llama-model-loader.cpp:605).
_LLAMA_CPP_SHARD_WIDTH = 5
# The official server images start the binary from here (.devops/cuda.Dockerfile ENTRYPOINT).
_SERVER_PATH = "/app/llama-server"


@cache
def load_facts() -> Mapping[str, Any]:
    """The generated llama.cpp facts (schema `modelformats-llamacpp-facts/1`)."""
    text = resources.files("modelformats.engines").joinpath("data/llamacpp_facts.json").read_text()
    facts: Mapping[str, Any] = json.loads(text)
    return facts


@cache
def load_e2e_results() -> Mapping[str, Any]:
    """What the CPU end-to-end session proved (schema `modelformats-llamacpp-e2e/1`)."""
    text = resources.files("modelformats.engines").joinpath("data/llamacpp_e2e.json").read_text()
    results: Mapping[str, Any] = json.loads(text)
    return results


@dataclass(frozen=True, kw_only=True, slots=True)
class CudaBuildRecipe:
    """How to build a CUDA `llama-server` from the same sources when the official image is not used.

    Mirrors llama.cpp's own .devops/cuda.Dockerfile, limited to the server target.
    """

    base_image: str
    runtime_image: str
    apt_packages: tuple[str, ...]
    fetch: tuple[str, ...]
    source_dir: str
    configure: tuple[str, ...]
    build: tuple[str, ...]
    install: tuple[str, ...]
    binary: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_image": self.base_image,
            "runtime_image": self.runtime_image,
            "apt_packages": list(self.apt_packages),
            "fetch": list(self.fetch),
            "source_dir": self.source_dir,
            "configure": list(self.configure),
            "build": list(self.build),
            "install": list(self.install),
            "binary": self.binary,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class _Proof:
    """Passed serving cases of llamacpp_e2e.json, indexed the ways `check` asks."""

    # (layout, quant) -> case, single-file runs only
    layouts: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    # (layout, file layout) -> first case that ran it
    files: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    # layout -> every tensor type that was in a served file
    tensor_types: Mapping[str, frozenset[str]] = field(default_factory=dict)


# How llama-server is sized and laid out: no utilization knob (a compute buffer and the whole --ctx-size
# allocated up front), MLA's latent cached only with key_length_mla (src/models/deepseek2.cpp), whole
# layers split over the GPUs of one container, no multi-node mode here, a CUDA build for every Modal GPU.
LLAMACPP_TRAITS = EngineTraits(
    display_name="llama.cpp",
    longer_context="llama.cpp accepts it but the model was never trained past its own length, so output degrades",
)


class LlamaCppEngine:
    """llama.cpp's `llama-server` at the build vendored by llama-cpp-python (see `load_facts`)."""

    name = "llamacpp"
    traits = LLAMACPP_TRAITS
    # llama-server reads the tokenizer and chat template from the GGUF itself (`--jinja`).
    needs_tokenizer_files = False

    def __init__(self, facts: Mapping[str, Any] | None = None, e2e: Mapping[str, Any] | None = None) -> None:
        self._facts = facts if facts is not None else load_facts()
        self._e2e = e2e if e2e is not None else load_e2e_results()
        source = self._facts["source"]
        build = source.get("llama_cpp_build")
        self.commit: str = source["llama_cpp_commit"]
        self.version: str = f"b{build}" if build is not None else self.commit
        self.package: str = f"{source['package']}=={source['version']}"
        self._archs = {a["name"]: a for a in self._facts["architectures"]}
        self._types = {t["name"]: t for t in self._facts["ggml_types"]}
        self._ftypes = _file_type_index(self._facts["file_types"])
        self._proof = _index_proof(self._e2e)

    def __repr__(self) -> str:
        return f"<LlamaCppEngine {self.version} ({self.commit})>"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def min_compute_capability(self, weights: WeightsSpec) -> tuple[int, int] | None:
        """None: llama.cpp's CUDA build runs on every GPU Modal offers (all >= 7.5)."""
        return None

    # --- types ---------------------------------------------------------------------------------

    def refuse_gguf_quant(self, name: str) -> str | None:
        """Why llama.cpp cannot load a GGUF tensor type or file quant `name`, or None.

        Takes ggml tensor type names (Q8_0, Q4_0_4_4, IQ4_NL_8_8) and file quant names
        (Q4_K_M, IQ3_M, MXFP4_MOE). A name llama.cpp has never used (UD-Q4_K_XL) is not refused:
        file names do not decide what loads, the tensor types inside do.
        """
        key = name.strip().upper()
        entry = self._types.get(key) or self._ftypes.get(key)
        if entry is None or entry["loads"]:
            return None
        reason = entry.get("reason") or "removed"
        return (
            f"llama.cpp {self.version} cannot load GGUF type {key}: {reason} ({entry['source']}; a tensor "
            f"of a removed type has block size 0 and is rejected at {self._facts['ggml_type_refusal']}). "
            "Choose another quant."
        )

    def _cpu_fallback_types(self, names: Sequence[str]) -> list[str]:
        """Tensor types llama.cpp loads but whose matmuls the CUDA backend does not take (run on CPU)."""
        out = []
        for name in names:
            entry = self._types.get(name.upper())
            if entry is not None and entry["loads"] and not entry.get("cuda_mul_mat", True):
                out.append(name.upper())
        return out

    # --- check ---------------------------------------------------------------------------------

    def check(self, weights: WeightsSpec) -> LoadVerdict:
        if weights.container != "gguf-file":
            return LoadVerdict(
                loads=False,
                level=EvidenceLevel.REFUSED,
                reasons=(
                    f"llama-server loads GGUF files only; {weights.repo_id!r} is served as "
                    f"{weights.format} weights. Use vLLM, or a GGUF conversion of the model.",
                ),
            )
        reasons: list[str] = []
        evidence: list[str] = []
        warnings: list[str] = []
        traits = weights.traits
        arch = traits.gguf_architecture
        if arch is None:
            warnings.append(
                "The GGUF architecture was not read (no header): llama.cpp loads "
                f"{sum(a['loads'] for a in self._archs.values())} architectures; read one header to be sure."
            )
        elif (entry := self._archs.get(arch)) is None or not entry["loads"]:
            where = entry["source"] if entry else "src/llama-arch.cpp LLM_ARCH_NAMES"
            why = entry.get("note", "not constructible") if entry else "not a known architecture"
            reasons.append(
                f"llama.cpp {self.version} cannot load GGUF architecture {arch!r}: {why} ({where}). "
                "Use an engine that supports it, or a newer llama.cpp."
            )
        else:
            evidence.append(f"llama.cpp {self.version} builds architecture {arch!r} ({entry['source']})")
            if arch == "llama" and (traits.num_experts or 0) > 1:
                moe = self._facts["llama_moe"]
                evidence.append(
                    f"llama + expert_count={traits.num_experts}: router and merged expert tensors "
                    f"{', '.join(moe['tensors'])} are loaded by {moe['loader_source']}"
                )
        types = list(weights.gguf_tensor_types or ())
        checked = types or ([weights.gguf_quant] if weights.gguf_quant else [])
        for type_name in checked:
            if (why := self.refuse_gguf_quant(type_name)) is not None:
                reasons.append(why)
        if slow := self._cpu_fallback_types(types or [q for q in checked if q.upper() in self._types]):
            warnings.append(
                f"Tensor types {', '.join(slow)} load, but llama.cpp's CUDA backend has no matrix "
                "multiplication for them (ggml-cuda.cu supports_op): those run on the CPU, slowly."
            )
        reasons += self._check_files(weights, evidence)
        if weights.needs_projector:
            if _projector(weights) is None:
                warnings.append(
                    "The model is multimodal but no projector (mmproj) file is given: llama-server "
                    "serves it text-only; pass the mmproj file to serve images (--mmproj)."
                )
            else:
                evidence.append(f"multimodal projector passed with --mmproj ({self._flag_source('--mmproj')})")
        if reasons:
            return LoadVerdict(
                loads=False, level=EvidenceLevel.REFUSED, reasons=tuple(reasons), evidence=tuple(evidence)
            )
        level, proof = self._evidence_level(weights)
        return LoadVerdict(loads=True, level=level, evidence=(*evidence, *proof), warnings=tuple(warnings))

    def _check_files(self, weights: WeightsSpec, evidence: list[str]) -> list[str]:
        layout = weights.gguf_layout or "single"
        model = weights.model
        split = self._facts["split"]
        if layout not in FILE_LAYOUTS:
            return [
                f"Unknown GGUF file layout {layout!r}; expected one of {', '.join(FILE_LAYOUTS)} "
                "(modelformats.engines.llamacpp.FILE_LAYOUTS)."
            ]
        if is_byte_part(model):
            return [
                f"{model!r} is one raw piece of a split file, not a GGUF: join the .partXofY pieces "
                "in order (the plan's download.joins) and give llama-server the joined .gguf."
            ]
        shard = parse_shard_name(model)
        if layout == "split" or shard is not None:
            first = (
                shard is not None
                and shard.index == 1
                and shard.ext.lower() == ".gguf"
                and shard.index_width == shard.total_width == _LLAMA_CPP_SHARD_WIDTH
            )
            if not first:
                return [
                    f"{model!r} is not shard 1 in llama.cpp's naming: llama-server must be given "
                    f"<prefix>-00001-of-NNNNN.gguf ({split['first_shard_required']}) and derives the "
                    f"other shards with {split['shard_format']!r} ({split['shard_format_source']}). "
                    "Rename the shards to five-digit numbering, or merge them with llama-gguf-split --merge."
                ]
            evidence.append(
                f"split GGUF: llama-server loads shard 1 and finds the rest by name "
                f"({split['shard_format_source']}, {split['count_checked']})"
            )
        if layout == "parts":
            evidence.append("raw .partXofY pieces: joined into one .gguf before the server starts")
        return []

    def _layout_key(self, weights: WeightsSpec) -> str | None:
        traits = weights.traits
        if traits.gguf_architecture != "llama":
            return None
        return "llama-moe" if (traits.num_experts or 0) > 1 else "llama"

    def _evidence_level(self, weights: WeightsSpec) -> tuple[EvidenceLevel, tuple[str, ...]]:
        """CPU_END_TO_END when this layout ran with this quant (and this file layout) here."""
        key = self._layout_key(weights)
        quant = (weights.gguf_quant or "").upper()
        files = weights.gguf_layout or "single"
        if key is None:
            return EvidenceLevel.SOURCE_READ, ()
        ran_quant = self._proof.layouts.get((key, quant))
        ran_files = self._proof.files.get((key, files))
        tested = sorted({q for (k, q) in self._proof.layouts if k == key})
        build = self._e2e.get("llama_cpp_build")
        # A header read may show tensor types the tiny files never held (a custom mix).
        untested_types = sorted(
            {t.upper() for t in weights.gguf_tensor_types or ()} - self._proof.tensor_types.get(key, frozenset())
        )
        if ran_quant is not None and ran_files is not None and not untested_types:
            line = (
                f"ran end to end on CPU: llama-server b{build} served a tiny {key} GGUF in {quant} "
                f"through /v1/chat/completions (stream and non-stream) and /metrics"
            )
            if files != "single":
                line += f"; {files} file layout ran with {ran_files['quant']}"
            return EvidenceLevel.CPU_END_TO_END, (line + " (src/modelformats/engines/data/llamacpp_e2e.json)",)
        if ran_quant is None:
            untested = quant or "this quant"
        elif ran_files is None:
            untested = f"the {files} file layout"
        else:
            untested = f"tensor types {', '.join(untested_types)}"
        return EvidenceLevel.SOURCE_READ, (
            f"not run here for {untested}; the {key} layout ran end to end on CPU with "
            f"{', '.join(tested) or 'nothing'} (llamacpp_e2e.json)",
        )

    def _flag_source(self, flag: str) -> str:
        return str(self._facts["server_flags"][flag]["source"])

    # --- command -------------------------------------------------------------------------------

    def command(self, weights: WeightsSpec, runtime: RuntimeSpec, verdict: LoadVerdict) -> EngineCommand:
        """`llama-server` argv for the official CUDA image, with why each number is what it is.

        `verdict` is this engine's `check(weights)`. A refused one still gets its argv: the CPU end-to-end
        session (`nox -s llamacpp_e2e`) starts the real server on refused types to prove the refusal.
        """
        if runtime.nnodes > 1 or runtime.pipeline_parallel_size > 1:
            raise InvalidRequestError(
                f"llama-server runs on one machine, but the plan asks for {runtime.nnodes} node(s) and "
                f"pipeline_parallel_size={runtime.pipeline_parallel_size}. Choose a GPU that holds the "
                "model on one node (llama.cpp splits layers across that node's GPUs), or use vLLM."
            )
        context = self._facts["context"]
        slots = runtime.max_num_seqs
        # Without a unified KV cache each of the `slots` sequences gets n_ctx / n_seq_max tokens
        # (src/llama-context.cpp:295), so a per-request limit of max_model_len needs L x slots.
        ctx_size = runtime.max_model_len * slots
        argv: list[str] = [
            _SERVER_PATH,
            "--model",
            weights.model,
            "--ctx-size",
            str(ctx_size),
            "--parallel",
            str(slots),
            "--no-kv-unified",
            "--n-gpu-layers",
            "all",
            "--flash-attn",
            "auto",
            "--jinja",
            "--alias",
            runtime.served_model_name,
            "--host",
            runtime.host,
            "--port",
            str(runtime.port),
            "--metrics",
        ]
        if (projector := _projector(weights)) is not None:
            argv += ["--mmproj", projector]
        notes: list[str] = []
        if runtime.experts_per_token is not None:
            argv += ["--override-kv", self._experts_override(weights, runtime.experts_per_token)]
            notes.append(
                f"--override-kv ({self._flag_source('--override-kv')}) sets the GGUF key expert_used_count to "
                f"{runtime.experts_per_token}: each token is routed to {runtime.experts_per_token} experts "
                "instead of the number the file records."
            )
        notes += [
            f"--ctx-size {ctx_size} = max_model_len {runtime.max_model_len} x --parallel {slots}: with "
            "--no-kv-unified llama-server gives each slot n_ctx / n_parallel tokens "
            f"({context['per_slot']}); "
            f"both are rounded up to multiples of {context['padding']} ({context['padding_source']}).",
            "--n-gpu-layers all offloads every layer; with several GPUs visible llama.cpp splits layers "
            "across them (--split-mode layer, its default).",
            "--jinja renders the chat template stored in the GGUF (tokenizer.chat_template); --metrics "
            "serves Prometheus text at /metrics; --flash-attn auto enables flash attention where the "
            "backend supports the head size.",
        ]
        trained = weights.traits.max_position_embeddings
        if trained is not None and runtime.max_model_len > trained:
            notes.append(
                f"max_model_len {runtime.max_model_len} exceeds the model's training context {trained}: "
                f"llama-server caps each slot at {trained} ({context['slot_capped_by_train_ctx']})."
            )
        image = self._facts["image"]
        tag = image.get("server_cuda_tag")
        notes.append(
            f"Image {image['repository']}:{tag} is llama.cpp's CUDA {image['cuda_version']} server image for "
            f"build {self.version} (tag scheme {image['tag_scheme_source']}); it was not pulled here. "
            "If it is missing, build the same sources with LlamaCppEngine.cuda_build_recipe()."
        )
        return EngineCommand(
            argv=tuple(argv),
            requirements=(),
            image=f"{image['repository']}:{tag}" if tag else None,
            notes=tuple(notes),
        )

    @staticmethod
    def _experts_override(weights: WeightsSpec, n: int) -> str:
        """`<arch>.expert_used_count=int:N`: llama.cpp keys hyper-parameters by the GGUF architecture."""
        arch = weights.traits.gguf_architecture
        if arch is None:
            raise InvalidRequestError(
                f"--experts-per-token {n}: llama-server overrides the GGUF key <arch>.expert_used_count, but the "
                f"architecture of {weights.repo_id!r} is unknown (no GGUF header or Hub GGUF summary was read). "
                "Plan with the Hub online, or with a listing that records the GGUF header."
            )
        return f"{arch}.expert_used_count=int:{n}"

    def cuda_build_recipe(
        self, cuda_architectures: Sequence[str] = ("75", "80", "86", "89", "90", "100")
    ) -> CudaBuildRecipe:
        """Build the same llama.cpp with CUDA: what .devops/cuda.Dockerfile does, server target only.

        The default architectures cover Modal's T4 (7.5), A100 (8.0), A10G (8.6), L4/L40S (8.9),
        H100/H200 (9.0) and B200 (10.0); fewer build faster.
        """
        image = self._facts["image"]
        source = self._facts["source"]
        cuda = image["cuda_version"]
        src_dir = f"llama_cpp_python-{source['version']}/vendor/llama.cpp"
        return CudaBuildRecipe(
            base_image=f"nvidia/cuda:{cuda}-devel-ubuntu24.04",
            runtime_image=f"nvidia/cuda:{cuda}-runtime-ubuntu24.04",
            apt_packages=("build-essential", "cmake", "git", "libgomp1", "python3-pip", "curl"),
            fetch=(
                f"pip download --no-deps --no-binary llama-cpp-python {self.package}",
                f"tar -xzf llama_cpp_python-{source['version']}.tar.gz {src_dir}",
            ),
            source_dir=src_dir,
            configure=(
                "cmake",
                "-S",
                ".",
                "-B",
                "build",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_CUDA=ON",
                "-DGGML_NATIVE=OFF",
                f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(cuda_architectures)}",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_APP=OFF",
                "-DLLAMA_BUILD_UI=OFF",
                "-DLLAMA_USE_PREBUILT_UI=OFF",
                "-DLLAMA_OPENSSL=OFF",
                f"-DLLAMA_BUILD_NUMBER={source['llama_cpp_build']}",
                f"-DLLAMA_BUILD_COMMIT={self.commit}",
            ),
            build=("cmake", "--build", "build", "--target", "llama-server", "-j"),
            install=("mkdir", "-p", "/app", "&&", "cp", "build/bin/llama-server", _SERVER_PATH),
            binary=_SERVER_PATH,
            notes=(
                "The CPU build of the same flags (without -DGGML_CUDA) is what nox -s llamacpp_e2e runs.",
                "-DCMAKE_CUDA_ARCHITECTURES: one entry per GPU generation you deploy on; each adds "
                "minutes of nvcc time.",
            ),
        )


def _projector(weights: WeightsSpec) -> str | None:
    # WeightsSpec has no projector path yet (only `needs_projector`); read it once it is added.
    value = getattr(weights, "projector", None)
    return value if isinstance(value, str) and value else None


def _file_type_index(file_types: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """File-type names as users write them: MOSTLY_Q4_K_M, Q4_K_M (and llama-quantize aliases)."""
    index: dict[str, Mapping[str, Any]] = {}
    for entry in file_types:
        name = str(entry["name"])
        short = name.removeprefix("MOSTLY_").removeprefix("ALL_")
        for key in (name, short, *entry.get("quantize_names", ())):
            index.setdefault(key.upper(), entry)
    return index


def _index_proof(e2e: Mapping[str, Any]) -> _Proof:
    layouts: dict[tuple[str, str], Mapping[str, Any]] = {}
    files: dict[tuple[str, str], Mapping[str, Any]] = {}
    types: dict[str, set[str]] = {}
    for case in e2e.get("cases", ()):
        # A case that proved a refusal (a removed type) is no evidence that anything loads.
        if not case.get("passed") or case.get("expect", "serve") != "serve":
            continue
        if case["files"] == "single":
            layouts[(case["layout"], case["quant"])] = case
        files.setdefault((case["layout"], case["files"]), case)
        types.setdefault(case["layout"], set()).update(case.get("tensor_types", ()))
    return _Proof(layouts=layouts, files=files, tensor_types={k: frozenset(v) for k, v in types.items()})
