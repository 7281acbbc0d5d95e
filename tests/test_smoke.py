"""The smoke client against a real local HTTP server that speaks OpenAI-style SSE, and misbehaves on request.

The server is stdlib `http.server` in a thread, streaming with chunked transfer encoding as uvicorn
(vLLM) and llama.cpp's server do. Each test picks a behaviour; the client must report, never crash,
and never wait longer than its bounds.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelformats.errors import InvalidRequestError
from modelformats.smoke import (
    DEFAULT_PROMPTS,
    GpuMemory,
    add_smoke_parser,
    load_prompts,
    parse_prometheus,
    read_metrics,
    render_report,
    run_smoke,
    stream_chat,
    wait_for_health,
)

# Exposition text in the shape vLLM 0.33 writes (labels on every sample, counters with _total).
VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} {kv}
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} {prompt}
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7e+09
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} {generation}
"""

# The shape of llama.cpp's server-task.cpp `to_metrics()` (no labels, no KV-cache gauge).
LLAMACPP_METRICS = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt}
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {generation}
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing {running}
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""

PIECES = ("Hel", "lo", " there", "!")


class Behaviour:
    """What the server does; tests set the attributes before calling the client."""

    def __init__(self) -> None:
        self.chat = "ok"
        self.health = "ok"  # ok | missing | loading
        self.loading_probes = 0
        self.metrics = "vllm"  # vllm | llamacpp | missing | disabled
        self.models = "ok"  # ok | missing
        self.usage = True
        self.release = threading.Event()
        self.health_calls = 0
        self.chat_calls = 0
        self.running = 0
        self.prompt_tokens = 100
        self.generation_tokens = 1000
        self.bodies: list[dict] = []
        # A key the server demands (vLLM behind the Modal example's middleware): every path but /health
        # answers 401 without `Authorization: Bearer <key>`; `health_needs_key` guards /health too.
        self.api_key: str | None = None
        self.health_needs_key = False
        self.authorizations: list[str | None] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # quiet
        pass

    # --- plain endpoints -------------------------------------------------------------------------

    def _json(self, status: int, payload: object, content_type: str = "application/json") -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refused(self, b: Behaviour, *, open_path: bool = False) -> bool:
        """Answer 401 as vLLM does when the key is demanded and missing or wrong; True when it did."""
        sent = self.headers.get("Authorization")
        b.authorizations.append(sent)
        if b.api_key is None or (open_path and not b.health_needs_key) or sent == f"Bearer {b.api_key}":
            return False
        self._json(401, {"error": "Unauthorized"})
        return True

    def do_GET(self):
        b = self.server.behaviour
        if self._refused(b, open_path=self.path == "/health"):
            return None
        if self.path == "/health":
            b.health_calls += 1
            if b.health == "missing":
                return self._json(404, {"detail": "Not Found"})
            if b.health == "loading" and b.health_calls <= b.loading_probes:
                return self._json(503, {"error": {"message": "Loading model", "type": "unavailable_error"}})
            return self._json(200, {"status": "ok"})
        if self.path == "/v1/models":
            if b.models == "missing":
                return self._json(404, {"detail": "Not Found"})
            return self._json(200, {"object": "list", "data": [{"id": "tiny-model", "object": "model"}]})
        if self.path == "/metrics":
            return self._metrics(b)
        return self._json(404, {"detail": "Not Found"})

    def _metrics(self, b: Behaviour) -> None:
        if b.metrics == "missing":
            return self._json(404, {"detail": "Not Found"})
        if b.metrics == "disabled":
            return self._json(
                501,
                {"error": {"code": 501, "message": "This server does not support metrics endpoint. "
                           "Start it with `--metrics`", "type": "not_supported_error"}},
            )  # fmt: skip
        template = VLLM_METRICS if b.metrics == "vllm" else LLAMACPP_METRICS
        text = (
            template.replace("{running}", str(b.running))
            .replace("{kv}", "0.25" if b.running else "0.0")
            .replace("{prompt}", str(b.prompt_tokens))
            .replace("{generation}", str(b.generation_tokens))
        )
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    # --- chat ------------------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: object) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {text}\n\n".encode())

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _start_stream(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    @staticmethod
    def _delta(text: str | None, finish: str | None = None) -> dict:
        delta = {"content": text} if text is not None else {}
        return {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def do_POST(self):
        b = self.server.behaviour
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        b.bodies.append(body)
        b.chat_calls += 1
        if self._refused(b):
            return None
        mode = b.chat
        if mode == "error500":
            return self._json(500, {"error": {"message": "CUDA out of memory", "type": "InternalServerError"}})
        if mode == "hang_headers":
            b.release.wait(10)
            return None
        if mode == "not_sse":
            return self._json(200, {"choices": [{"message": {"content": "hi"}}]})
        self._start_stream()
        b.running = 1
        # The assistant role comes first with empty content, as vLLM sends it: not a token.
        self._event(
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
            }
        )
        if mode == "trickle":
            # One byte every 50 ms and never a newline: each read succeeds, only the total bound stops it.
            while not b.release.is_set():
                self._chunk(b"x")
                time.sleep(0.05)
            return None
        time.sleep(0.02)
        self._event(self._delta(PIECES[0]))
        if mode == "hang":
            b.release.wait(10)
            return None
        if mode == "garbage":
            self._chunk(b"data: {not json\n\n")
            return self._end()
        if mode == "error_event":
            self._event({"error": {"message": "engine died", "type": "InternalServerError", "code": 500}})
            return self._end()
        for piece in PIECES[1:]:
            time.sleep(0.01)
            self._event(self._delta(piece))
        if mode == "cut":
            return self._end()  # a clean end of the body, but no [DONE]
        if mode == "reset":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        self._event(self._delta(None, "stop"))
        if b.usage and body.get("stream_options", {}).get("include_usage"):
            usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
            self._event({"object": "chat.completion.chunk", "choices": [], "usage": usage})
        b.prompt_tokens += 7
        b.generation_tokens += 5
        b.running = 0
        self._event("[DONE]")
        return self._end()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = _Server(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.behaviour
    finally:
        httpd.behaviour.release.set()
        httpd.shutdown()
        httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the happy path ----------------------------------------------------------------------------------


def test_run_smoke_measures_each_prompt_with_usage_and_vllm_metrics(server):
    url, behaviour = server
    report = run_smoke(url + "/v1/", max_tokens=16, timeout=5)
    assert report.ok and report.exit_code == 0
    assert report.base_url == url
    assert (report.model, report.model_source) == ("tiny-model", "/v1/models")
    assert [r.prompt for r in report.results] == list(DEFAULT_PROMPTS)
    for r in report.results:
        assert r.answer == "Hello there!"
        assert (r.output_tokens, r.prompt_tokens, r.token_source) == (5, 7, "usage")
        assert r.finish_reason == "stop"
        assert 0 < r.ttft_s < r.latency_s < 5
        assert r.tokens_per_s == pytest.approx(5 / r.latency_s)
        assert r.decode_tokens_per_s == pytest.approx(4 / (r.latency_s - r.ttft_s))
    body = behaviour.bodies[0]
    assert body == {
        "messages": [{"role": "user", "content": DEFAULT_PROMPTS[0]}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 16,
        "temperature": 0,
        "model": "tiny-model",
    }
    assert report.metrics_before.engine == "vllm"
    assert report.metrics_before.values == {
        "kv_cache_usage": 0.0, "requests_running": 0.0, "requests_waiting": 0.0,
        "prompt_tokens_total": 100.0, "generation_tokens_total": 1000.0,
    }  # fmt: skip
    assert report.metrics_delta == {"prompt_tokens_total": 21.0, "generation_tokens_total": 15.0}
    assert report.load_time_s is None
    assert report.warnings == ()
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["summary"]["errors"] == 0 and data["summary"]["output_tokens"] == 15


def test_no_usage_no_health_no_metrics_falls_back_and_labels_chunk_counts(server):
    url, behaviour = server
    behaviour.usage = False
    behaviour.health = "missing"
    behaviour.metrics = "missing"
    report = run_smoke(url, model="given-name", prompts=["one"], timeout=5)
    assert report.ok
    assert report.health.path == "/v1/models"
    assert (report.model, report.model_source) == ("given-name", "given")
    (r,) = report.results
    # Four content chunks ("Hel", "lo", " there", "!"); the empty role chunk and the finish chunk are not.
    assert (r.output_tokens, r.token_source, r.prompt_tokens) == (4, "chunks", None)
    assert report.metrics_before is None
    assert report.metrics_note == 'no metrics: GET /metrics answered HTTP 404: {"detail": "Not Found"}'
    assert report.warnings == ("the server sent no usage; output tokens are counted as streamed content chunks",)
    assert behaviour.bodies[0]["model"] == "given-name"


def test_load_time_counts_from_the_given_start_through_loading_503s(server):
    url, behaviour = server
    behaviour.health = "loading"
    behaviour.loading_probes = 1
    started = time.time() - 5  # the server was started five seconds ago
    report = run_smoke(url, prompts=["hi"], started_at=started, health_timeout=10)
    assert report.ok
    assert report.health.attempts == 2
    assert report.health.last_error == "HTTP 503: Loading model"
    # Five seconds before the call, then one refused probe and the half-second poll interval.
    assert 5.5 <= report.load_time_s < 7.5
    assert "server load time: " in render_report(report)


def test_llamacpp_metrics_are_read_under_their_own_names(server):
    url, behaviour = server
    behaviour.metrics = "llamacpp"
    snapshot, note = read_metrics(url)
    assert note is None
    assert snapshot.engine == "llamacpp"
    assert snapshot.values == {
        "requests_running": 0.0,
        "requests_waiting": 0.0,
        "prompt_tokens_total": 100.0,
        "generation_tokens_total": 1000.0,
    }
    report = run_smoke(url, prompts=["a", "b"])
    assert report.metrics_delta == {"prompt_tokens_total": 14.0, "generation_tokens_total": 10.0}
    assert "kv_cache_usage" not in report.metrics_peak


def test_llamacpp_without_the_metrics_flag_is_a_note_not_an_error(server):
    url, behaviour = server
    behaviour.metrics = "disabled"
    report = run_smoke(url, prompts=["a"])
    assert report.ok
    assert report.metrics_note == (
        "no metrics: GET /metrics answered HTTP 501: This server does not support metrics endpoint. "
        "Start it with `--metrics`"
    )


# --- misbehaving servers: reported, bounded ----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("error500", "HTTP 500: CUDA out of memory"),
        ("garbage", "event 3 is not JSON: '{not json'"),
        ("error_event", "the server sent an error event: engine died"),
        ("cut", "the stream ended without 'data: [DONE]' after 5 event(s)"),
        ("not_sse", "the server did not stream: Content-Type is 'application/json'"),
    ],
)
def test_a_bad_answer_is_a_per_request_error(server, mode, error):
    url, behaviour = server
    behaviour.chat = mode
    report = run_smoke(url, prompts=["a", "b"], timeout=5)
    assert not report.ok and report.exit_code == 1
    assert [r.error for r in report.results] == [error, error]
    assert report.error_rate == 1.0
    assert f"error: {error}" in render_report(report)


def test_a_connection_dropped_mid_stream_is_reported_with_the_partial_answer(server):
    url, behaviour = server
    behaviour.chat = "reset"
    result = stream_chat(url, "a", timeout=5)
    # http.client's chunked reader turns an abrupt close into end of body, so it reads as a cut stream.
    assert result.error == "the stream ended without 'data: [DONE]' after 5 event(s)"
    assert not result.ok
    assert result.answer == "Hello there!"
    assert (result.output_tokens, result.token_source) == (4, "chunks")


@pytest.mark.parametrize(("mode", "where"), [("hang", "after 2 event(s)"), ("hang_headers", "before any answer")])
def test_a_hanging_server_times_out_within_the_bound(server, mode, where):
    url, behaviour = server
    behaviour.chat = mode
    start = time.monotonic()
    result = stream_chat(url, "a", timeout=0.5)
    assert time.monotonic() - start < 5  # bounded: the server would hang for ever
    assert result.error == f"timed out after 0.5 s ({where})"
    assert result.ok is False and result.latency_s is None


def test_a_trickling_server_is_stopped_by_the_total_deadline(server):
    url, behaviour = server
    behaviour.chat = "trickle"
    start = time.monotonic()
    result = stream_chat(url, "a", timeout=0.6)
    assert time.monotonic() - start < 5  # bounded: the server would hang for ever
    assert result.error == "timed out after 0.6 s (after 1 event(s))"


def test_a_server_that_never_comes_up_is_reported_after_the_health_timeout():
    url = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    report = run_smoke(url, prompts=["a", "b"], health_timeout=1.5)
    assert time.monotonic() - start < 8
    assert not report.health.ready and report.exit_code == 1
    assert [r.error for r in report.results] == ["server not ready", "server not ready"]
    assert report.health.last_error.startswith("not ready within 1.5 s; last answer: ConnectionRefusedError")
    assert "server: NOT READY" in render_report(report)


def test_wait_for_health_gives_up_on_a_server_stuck_loading(server):
    url, behaviour = server
    behaviour.health = "loading"
    behaviour.loading_probes = 10**6
    result = wait_for_health(url, timeout=0.6, interval=0.1)
    assert not result.ready
    assert result.attempts >= 4
    assert result.last_error == "not ready within 0.6 s; last answer: HTTP 503: Loading model"


# --- parsing, arguments, rendering ---------------------------------------------------------------------


def test_parse_prometheus_keeps_values_per_name_across_label_sets():
    text = (
        '# HELP x y\nvllm:num_requests_running{engine="0",model_name="a b}c"} 2\n'
        'vllm:num_requests_running{engine="1",model_name="a"} 3.0 1700000000\n'
        "llamacpp:n_decode_total 1e3\nbad_line\nnan_metric NaN\n"
    )
    assert parse_prometheus(text) == {
        "vllm:num_requests_running": [2.0, 3.0],
        "llamacpp:n_decode_total": [1000.0],
        "nan_metric": [pytest.approx(float("nan"), nan_ok=True)],
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts": []}, "No prompts to send: pass at least one (the default is DEFAULT_PROMPTS)."),
        ({"timeout": 0}, "timeout must be positive, got 0; pass a number of seconds or tokens."),
        ({"max_tokens": -1}, "max_tokens must be positive, got -1; pass a number of seconds or tokens."),
    ],
)
def test_bad_arguments_raise_before_any_network(kwargs, message):
    with pytest.raises(InvalidRequestError) as info:
        run_smoke("http://127.0.0.1:9", **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://h/", "http://:80"])
def test_a_base_url_without_scheme_or_host_is_refused(url):
    with pytest.raises(InvalidRequestError) as info:
        run_smoke(url)
    assert str(info.value) == (
        f"Invalid --base-url {url!r}: it must be an http(s) URL with a host. Pass the server root, e.g. "
        "http://127.0.0.1:8000."
    )


def test_load_prompts_reads_lines_and_json(tmp_path: Path):
    text = tmp_path / "p.txt"
    text.write_text("# comment\nfirst\n\n  second  \n")
    assert load_prompts(text) == ("first", "second")
    js = tmp_path / "p.json"
    js.write_text('["a b", "c"]')
    assert load_prompts(js) == ("a b", "c")
    js.write_text('{"a": 1}')
    with pytest.raises(InvalidRequestError) as info:
        load_prompts(js)
    assert str(info.value) == (f'Prompts file {str(js)!r} must hold a JSON list of non-empty strings, e.g. ["Hello!"].')
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InvalidRequestError) as info:
        load_prompts(empty)
    assert str(info.value) == f"Prompts file {str(empty)!r} holds no prompts; write one prompt per line."


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="modelformats")
    add_smoke_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_json_output_and_exit_codes(server, tmp_path, capsys):
    url, behaviour = server
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("only one\n")
    args = _cli(["smoke", "--base-url", url, "--prompts", str(prompts), "--json", "--max-tokens", "8"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert [r["prompt"] for r in data["results"]] == ["only one"]
    assert behaviour.bodies[-1]["max_tokens"] == 8

    behaviour.chat = "error500"
    args = _cli(["smoke", "--base-url", url, "--timeout", "3"])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "errors: 3/3 (100%)" in out
    assert out.rstrip().endswith("result: FAILED")

    args = _cli(["smoke", "--base-url", "nonsense"])
    assert args.func(args) == 2
    assert capsys.readouterr().err.startswith("error: Invalid --base-url 'nonsense'")


def test_render_report_table_and_gpu_memory(server):
    url, _ = server
    gpu = GpuMemory(peak_used_mib=(61234.0,), total_mib=(81559.0,), samples=42)
    report = run_smoke(url, prompts=["hello"], gpu_memory=lambda: gpu)
    assert report.gpu_memory == gpu
    text = render_report(report)
    lines = text.splitlines()
    assert lines[0] == f"modelformats smoke — {url} (model: tiny-model)"
    assert lines[2].split() == [
        "#",
        "prompt",
        "status",
        "TTFT",
        "s",
        "latency",
        "s",
        "tokens",
        "tok/s",
        "decode",
        "tok/s",
    ]
    assert lines[3].split()[:3] == ["1", "hello", "ok"]
    assert "5 (usage)" in lines[3]
    assert "  1. answer: Hello there!" in lines
    assert "GPU memory peak (MiB, per GPU): 61234/81559 (nvidia-smi, 42 samples)" in lines
    assert lines[-1] == "result: OK"
    assert any(line.startswith("metrics (vllm): peak KV-cache usage") for line in lines)


@pytest.mark.parametrize(
    ("answer", "given", "expected"),
    [
        ("HTTP 401: Invalid API Key", False, "pass --api-key KEY or set OPENAI_API_KEY"),
        ("GET /v1/models answered HTTP 403: Forbidden", True, "refused the API key sent"),
        ("HTTP 400: too long", False, None),
        (None, False, None),
    ],
)
def test_auth_failure_names_the_fix(answer, given, expected):
    from modelformats.smoke.client import auth_failure

    found = auth_failure(answer, api_key_given=given)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(f"authentication failed ({answer})") and expected in found


# --- a server that demands a key: reported at once, not after the health timeout ---------------------


def test_a_missing_key_stops_at_the_first_401_within_two_seconds(server):
    url, behaviour = server
    behaviour.api_key = "s3cret"
    start = time.monotonic()
    report = run_smoke(url, prompts=["a", "b", "c"], health_timeout=30)
    assert time.monotonic() - start < 2
    assert report.health.ready  # /health is open, as the Modal example's middleware leaves it
    assert report.exit_code == 1
    # /v1/models answered 401: nothing is sent, and the warning names the fix.
    assert behaviour.chat_calls == 0
    assert [r.error for r in report.results] == [report.results[0].error] * 3
    assert report.results[0].error.startswith("not sent: ") and "401" in report.results[0].error
    assert report.warnings[0].startswith("authentication failed (")
    assert "pass --api-key KEY" in report.warnings[0]


def test_a_401_on_the_first_prompt_stops_the_rest(server):
    url, behaviour = server
    behaviour.api_key = "s3cret"
    start = time.monotonic()
    report = run_smoke(url, model="tiny-model", prompts=["a", "b", "c"], health_timeout=30)
    assert time.monotonic() - start < 2
    assert behaviour.chat_calls == 1  # the second and third prompts are never sent
    assert "401" in report.results[0].error
    assert [r.error.startswith("not sent: ") for r in report.results[1:]] == [True, True]
    assert "pass --api-key KEY" in report.warnings[0]


def test_a_guarded_health_check_is_an_auth_error_not_a_timeout(server):
    url, behaviour = server
    behaviour.api_key, behaviour.health_needs_key = "s3cret", True
    start = time.monotonic()
    report = run_smoke(url, prompts=["a"], health_timeout=30, api_key="wrong")
    assert time.monotonic() - start < 2  # not the 30 s readiness wait
    assert not report.health.ready and behaviour.chat_calls == 0
    assert "refused the API key sent" in report.warnings[0]


def test_the_right_key_is_sent_as_a_bearer_token_on_every_request(server):
    url, behaviour = server
    behaviour.api_key, behaviour.health_needs_key = "s3cret", True
    report = run_smoke(url, prompts=["a", "b"], health_timeout=5, api_key="s3cret")
    assert report.exit_code == 0 and all(r.ok for r in report.results)
    assert behaviour.chat_calls == 2
    assert set(behaviour.authorizations) == {"Bearer s3cret"}
