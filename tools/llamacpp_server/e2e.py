"""End to end on CPU: LlamaCppEngine.command() argv -> real llama-server -> OpenAI API, per layout x quant.

For each case a tiny GGUF is written (gguf package; K-quants and IQ4_XS through llama-quantize from
the same build), llama-server is started with the argv the engine plans (argv[0] swapped for the
local binary, host/port for loopback), and the case passes when:
- `/health` turns 200 and `/v1/models` lists the served name with the planned per-slot context;
- a chat completion returns `max_tokens` tokens, finish_reason "length", both without and with
  `stream=true`, and the streamed text equals the non-streamed text (greedy decoding);
- `/metrics` counts the generated tokens (`llamacpp:tokens_predicted_total`);
- SIGTERM stops the server with exit code 0.
A removed type (Q4_0_4_4) is expected to be refused at load, with llama.cpp's own message.
Results without timings go to src/modelformats/engines/data/llamacpp_e2e.json; timings are printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
from tools.llamacpp_server.build import BUILD_COMMIT, BUILD_NUMBER, LLAMA_CPP_PYTHON_VERSION, LlamaBinaries
from tools.llamacpp_server.server import (
    LlamaServerError,
    LlamaServerProcess,
    free_port,
    http_get,
    http_post_json,
)
from tools.llamacpp_server.tiny_gguf import TinyShape, join_parts, split_bytes, write_tiny_gguf

from modelformats.engines.base import RuntimeSpec, WeightsSpec
from modelformats.engines.llamacpp import LlamaCppEngine
from modelformats.traits import ModelTraits

__all__ = ["E2E_SCHEMA", "QUANTIZE_QUANTS", "run_matrix"]

E2E_SCHEMA = "modelformats-llamacpp-e2e/1"
# The target repo's quants other than Q8_0 (which the gguf package writes itself), made by
# llama-quantize from the F32 file: K-quant mixes and IQ4_XS really hold those block types
# because TinyShape rows are 256 long.
QUANTIZE_QUANTS = ("Q2_K", "Q3_K_S", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_XS")
PROMPT = "Hello! Testing GGUF format support."
MAX_TOKENS = 8
MAX_MODEL_LEN = 512
SLOTS = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class _Files:
    model: Path  # what --model gets
    paths: tuple[Path, ...]
    tensor_types: tuple[str, ...]
    parameters: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    layout: str
    quant: str
    files: str  # single | split | parts
    expect: str = "serve"  # serve | refused
    # `plan --experts-per-token N`: the engine's --override-kv, checked in the server's own log.
    experts_per_token: int | None = None


def _tensor_types(paths: list[Path]) -> list[str]:
    types: set[str] = set()
    for path in paths:
        types |= {t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    return sorted(types)


def _parameter_count(paths: list[Path]) -> int:
    return sum(int(t.n_elements) for path in paths for t in gguf.GGUFReader(path).tensors)


def _quantize(binaries: LlamaBinaries, source: Path, dest: Path, quant: str) -> None:
    subprocess.run(
        [str(binaries.quantize), str(source), str(dest), quant, "2"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _retag_as_removed_type(path: Path, *, old: str = "Q4_0", new_id: int = 31) -> int:
    """Mark every `old` tensor as ggml type `new_id` in place (31 = Q4_0_4_4, same 18-byte blocks).

    That is what a 2024 `Q4_0_4_4` file holds; the gguf package can no longer write the type.
    """
    reader = gguf.GGUFReader(path, "r+")
    count = 0
    for tensor in reader.tensors:
        if tensor.tensor_type.name == old:
            # Tensor-info parts: name length, name, n_dims, dims, type, offset.
            tensor.field.parts[4][0] = new_id
            count += 1
    reader.data.flush()
    del reader
    return count


def _chat(base: str, model: str, *, stream: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": stream,
    }
    if not stream:
        status, body = http_post_json(base + "/v1/chat/completions", payload)
        if status != 200:
            raise AssertionError(f"chat completion answered {status}: {body[:300]}")
        data = json.loads(body)
        choice = data["choices"][0]
        return {
            "text": choice["message"]["content"],
            "finish_reason": choice["finish_reason"],
            "completion_tokens": data["usage"]["completion_tokens"],
        }
    payload["stream_options"] = {"include_usage": True}
    status, body = http_post_json(base + "/v1/chat/completions", payload)
    if status != 200:
        raise AssertionError(f"streamed chat completion answered {status}: {body[:300]}")
    text, finish, tokens, chunks, done = "", None, None, 0, False
    for line in body.splitlines():
        if not line.startswith("data: "):
            continue
        data_text = line.removeprefix("data: ")
        if data_text == "[DONE]":
            done = True
            continue
        chunk = json.loads(data_text)
        chunks += 1
        for choice in chunk.get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    return {
        "text": text,
        "finish_reason": finish,
        "completion_tokens": tokens,
        "chunks": chunks,
        "done": done,
    }


def _metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def _expect_refusal(server: LlamaServerProcess) -> dict[str, Any]:
    """The server must exit on its own at load, naming the removed type."""
    assert server.process is not None
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired as err:
        raise AssertionError("llama-server kept running on a removed tensor type") from err
    log = server.log_path.read_text(errors="replace")
    m = re.search(r"of type \d+ \((TYPE_\w+ REMOVED[^)]*)\)", log)
    result = {"exit_code_nonzero": server.process.returncode != 0, "error": m.group(1) if m else None}
    assert result["exit_code_nonzero"] and m, f"expected a refusal, log:\n{server.log_tail()}"
    return result


def _exercise(base: str, served: str, parameters: int, timings: dict[str, float]) -> dict[str, Any]:
    """/v1/models, chat (plain and streamed), /metrics: the checks of a served case."""
    result: dict[str, Any] = {}
    status, body = http_get(base + "/v1/models")
    assert status == 200, f"/v1/models answered {status}"
    listed = json.loads(body)["data"][0]
    # Every tensor of the file is part of the model llama.cpp built (experts included): the loader
    # also refuses files with tensors it did not create (llama-model-loader.cpp "wrong number of tensors").
    result["n_params_match_file"] = listed["meta"]["n_params"] == parameters
    assert result["n_params_match_file"], f"n_params {listed['meta']['n_params']} != {parameters} in the file"
    result["served_name_listed"] = served == listed["id"] or served in listed.get("aliases", [])
    result["slot_n_ctx"] = listed["meta"]["n_ctx"]
    assert result["served_name_listed"], f"{served!r} not in {listed}"
    # The planned --ctx-size (max_model_len x slots) must give each slot exactly max_model_len.
    assert result["slot_n_ctx"] == MAX_MODEL_LEN, f"slot context {result['slot_n_ctx']} != {MAX_MODEL_LEN}"
    started = time.monotonic()
    plain = _chat(base, served, stream=False)
    timings["chat_s"] = time.monotonic() - started
    streamed = _chat(base, served, stream=True)
    result["completion_tokens"] = plain["completion_tokens"]
    result["finish_reason"] = plain["finish_reason"]
    result["stream_completion_tokens"] = streamed["completion_tokens"]
    result["stream_finish_reason"] = streamed["finish_reason"]
    result["stream_done"] = streamed["done"]
    result["stream_matches"] = streamed["text"] == plain["text"]
    assert plain["completion_tokens"] == MAX_TOKENS and plain["finish_reason"] == "length", plain
    assert streamed["completion_tokens"] == MAX_TOKENS and streamed["finish_reason"] == "length", streamed
    assert streamed["done"] and result["stream_matches"], (plain, streamed)
    assert plain["text"].strip(), f"empty reply {plain}"
    status, metrics = http_get(base + "/metrics")
    predicted = _metric(metrics, "llamacpp:tokens_predicted_total")
    result["metrics_tokens_predicted"] = predicted
    assert status == 200 and predicted == 2 * MAX_TOKENS, f"/metrics {status}: predicted={predicted}"
    return result


def _serve_case(
    engine: LlamaCppEngine, binary: Path, case: Case, files: _Files, work: Path
) -> tuple[dict[str, Any], dict[str, float]]:
    traits = ModelTraits(
        gguf_architecture="llama",
        num_experts=TinyShape.n_expert if case.layout == "llama-moe" else None,
        num_experts_per_tok=TinyShape.n_expert_used if case.layout == "llama-moe" else None,
        is_moe=case.layout == "llama-moe",
        max_position_embeddings=TinyShape.context_length,
    )
    weights = WeightsSpec(
        format="gguf",
        repo_id=f"tiny/{case.layout}",
        revision=None,
        model=str(files.model),
        container="gguf-file",
        quantization="gguf",
        gguf_quant=case.quant,
        gguf_layout=case.files,
        traits=traits,
    )
    served = f"tiny/{case.layout}-{case.quant}-{case.files}"
    runtime = RuntimeSpec(
        served_model_name=served,
        max_model_len=MAX_MODEL_LEN,
        max_num_seqs=SLOTS,
        gpu_memory_utilization=0.9,
        host="127.0.0.1",
        port=free_port(),
        experts_per_token=case.experts_per_token,
    )
    command = engine.command(weights, runtime, engine.check(weights))
    name = f"{case.layout}-{case.quant}-{case.files}" + (
        f"-experts{case.experts_per_token}" if case.experts_per_token else ""
    )
    # The loader's override and hyper-parameter lines are logged at trace level (4); only the
    # experts case asks for them, beside the planned argv.
    observe = ("--log-verbosity", "4") if case.experts_per_token is not None else ()
    server = LlamaServerProcess(binary=binary, args=(*command.argv[1:], *observe), log_path=work / f"{name}.log")
    timings: dict[str, float] = {}
    server.start()
    try:
        if case.expect == "refused":
            return _expect_refusal(server), timings
        timings["ready_s"] = server.wait_healthy(120)
        result = _exercise(server.base_url, served, files.parameters, timings)
        if case.experts_per_token is not None:
            result |= _experts_in_log(server.log_path.read_text(errors="replace"), case.experts_per_token)
    finally:
        stopped = time.monotonic()
        code = server.stop()
        timings["stop_s"] = time.monotonic() - stopped
    result["exit_code"] = code
    assert code == 0, f"exit code {code} after SIGTERM; log:\n{server.log_tail()}"
    return result, timings


def _experts_in_log(log: str, n: int) -> dict[str, Any]:
    """What llama.cpp itself says it did with the override: the loader's 'Using metadata override' line
    (src/llama-model-loader.cpp:187) and the model's `n_expert_used` (src/llama-model.cpp:2098)."""
    # The value is a second log call, so it follows its own timestamp: "... = 0.00.074.890 I 3".
    override = re.search(r"Using metadata override \(\s*int\) '([\w.]+)' = (?:[\d.]+ \w )?(\d+)", log)
    used = re.search(r"n_expert_used\s+=\s+(\d+)", log)
    result = {
        "override_kv_logged": [override.group(1), int(override.group(2))] if override else None,
        "n_expert_used_logged": int(used.group(1)) if used else None,
    }
    assert result["override_kv_logged"] == ["llama.expert_used_count", n], result
    assert result["n_expert_used_logged"] == n, result
    return result


def _flags_in_help(binary: Path, argv: tuple[str, ...]) -> dict[str, bool]:
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    return {
        arg: re.search(rf"(^|[\s,]){re.escape(arg)}([\s,=]|$)", help_text, re.M) is not None
        for arg in argv[1:]
        if arg.startswith("--")
    }


def _build_files(binaries: LlamaBinaries, work: Path) -> list[tuple[Case, Callable[[], _Files]]]:
    """Each case with a function that writes its files: (path given to --model, all files)."""
    cases: list[tuple[Case, Callable[[], _Files]]] = []

    def tiny(layout: str, quant: str, shards: int = 1) -> Callable[[], _Files]:
        def make() -> _Files:
            suffix = f"-{shards}shards" if shards > 1 else ""
            paths = write_tiny_gguf(
                work / f"{layout}{suffix}" / f"{layout}-{quant}.gguf",
                layout=layout,
                quant=quant,
                shards=shards,
            )
            return _Files(
                model=paths[0],
                paths=tuple(paths),
                tensor_types=tuple(_tensor_types(paths)),
                parameters=_parameter_count(paths),
            )

        return make

    def quantized(layout: str, quant: str) -> Callable[[], _Files]:
        def make() -> _Files:
            source = work / layout / f"{layout}-F32.gguf"
            if not source.exists():
                write_tiny_gguf(source, layout=layout, quant="F32")
            dest = work / layout / f"{layout}-{quant}.gguf"
            _quantize(binaries, source, dest, quant)
            return _Files(
                model=dest,
                paths=(dest,),
                tensor_types=tuple(_tensor_types([dest])),
                parameters=_parameter_count([dest]),
            )

        return make

    def parts(layout: str, quant: str) -> Callable[[], _Files]:
        def make() -> _Files:
            (whole,) = write_tiny_gguf(work / "parts" / f"{layout}-{quant}.gguf", layout=layout, quant=quant)
            pieces = split_bytes(whole, 2)
            whole.unlink()
            joined = join_parts(pieces, work / "parts" / f"{layout}-{quant}.joined.gguf")
            return _Files(
                model=joined,
                paths=tuple(pieces),
                tensor_types=tuple(_tensor_types([joined])),
                parameters=_parameter_count([joined]),
            )

        return make

    def removed(layout: str) -> Callable[[], _Files]:
        def make() -> _Files:
            source = work / layout / f"{layout}-F32.gguf"
            if not source.exists():
                write_tiny_gguf(source, layout=layout, quant="F32")
            dest = work / layout / f"{layout}-Q4_0_4_4.gguf"
            _quantize(binaries, source, dest, "Q4_0")
            before = _tensor_types([dest])
            assert _retag_as_removed_type(dest) > 0, "llama-quantize wrote no Q4_0 tensor"
            types = sorted({"Q4_0_4_4" if t == "Q4_0" else t for t in before})
            return _Files(model=dest, paths=(dest,), tensor_types=tuple(types))

        return make

    for layout in ("llama", "llama-moe"):
        cases.append((Case(layout=layout, quant="F32", files="single"), tiny(layout, "F32")))
        cases.append((Case(layout=layout, quant="Q8_0", files="single"), tiny(layout, "Q8_0")))
        cases += [(Case(layout=layout, quant=q, files="single"), quantized(layout, q)) for q in QUANTIZE_QUANTS]
    cases.append((Case(layout="llama-moe", quant="Q8_0", files="split"), tiny("llama-moe", "Q8_0", shards=2)))
    cases.append((Case(layout="llama-moe", quant="Q8_0", files="parts"), parts("llama-moe", "Q8_0")))
    cases.append((Case(layout="llama-moe", quant="Q4_0_4_4", files="single", expect="refused"), removed("llama-moe")))
    # The target's knob: 3 of the tiny model's 4 experts instead of its 2 (`plan --experts-per-token 3`).
    cases.append(
        (Case(layout="llama-moe", quant="Q8_0", files="single", experts_per_token=3), tiny("llama-moe", "Q8_0"))
    )
    return cases


def run_matrix(
    binaries: LlamaBinaries, work: Path, *, only: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every case; return (results document, timing rows). Failures are recorded, not raised."""
    engine = LlamaCppEngine(e2e={"cases": []})
    work.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([str(binaries.server), "--version"], capture_output=True, text=True, check=False)
    version_line = next((ln for ln in (version.stdout + version.stderr).splitlines() if ln.startswith("version:")), "")
    probe_weights = WeightsSpec(
        format="gguf", repo_id="tiny/x", revision=None, model="x.gguf", container="gguf-file",
        traits=ModelTraits(gguf_architecture="llama", is_moe=True, num_experts=4),
    )  # fmt: skip
    probe = engine.command(
        probe_weights,
        RuntimeSpec(
            served_model_name="x", max_model_len=MAX_MODEL_LEN, max_num_seqs=SLOTS, gpu_memory_utilization=0.9,
            experts_per_token=2,
        ),
        engine.check(probe_weights),
    )  # fmt: skip
    flags = _flags_in_help(binaries.server, probe.argv)
    cases_out: list[dict[str, Any]] = []
    timings_out: list[dict[str, Any]] = []
    for case, make in _build_files(binaries, work):
        label = f"{case.layout} {case.quant} {case.files}" + (
            f" experts-per-token {case.experts_per_token}" if case.experts_per_token else ""
        )
        if only and only not in label:
            continue
        row: dict[str, Any] = {
            "layout": case.layout,
            "quant": case.quant,
            "files": case.files,
            "expect": case.expect,
            **({"experts_per_token": case.experts_per_token} if case.experts_per_token else {}),
        }
        started = time.monotonic()
        try:
            files = make()
            row["file_count"] = len(files.paths)
            row["tensor_types"] = list(files.tensor_types)
            result, timings = _serve_case(engine, binaries.server, case, files, work)
            row.update(result)
            row["passed"] = True
        except (AssertionError, LlamaServerError, subprocess.CalledProcessError, OSError) as err:
            row["passed"] = False
            row["failure"] = str(err).splitlines()[0][:300]
            timings = {}
        timings_out.append({"case": label, "total_s": round(time.monotonic() - started, 2), **timings})
        cases_out.append(row)
        verdict = "PASS" if row["passed"] else f"FAIL: {row.get('failure')}"
        print(f"{label}: {verdict}", flush=True)
    document = {
        "schema": E2E_SCHEMA,
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
        "llama_cpp_commit": BUILD_COMMIT,
        "llama_cpp_build": BUILD_NUMBER,
        "server_version": version_line,
        "build": "CPU, tools/llamacpp_server/build.py CMAKE_FLAGS",
        "request": {
            "prompt": PROMPT,
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "max_model_len": MAX_MODEL_LEN,
            "slots": SLOTS,
        },
        "argv_flags_in_help": flags,
        "cases": cases_out,
    }
    return document, timings_out
