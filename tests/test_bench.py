"""`modelformats bench` against a real local HTTP server speaking OpenAI-style SSE (stdlib, in a thread).

The server counts the requests in flight, so the tests see that a level really runs `c` at once;
it can require an API key, fail some requests, and serve vLLM-shaped /metrics.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelformats.bench import (
    BenchReport,
    LevelResult,
    concurrency_levels,
    percentile,
    render_bench,
    render_html,
    run_bench,
)
from modelformats.cli import main
from modelformats.errors import InvalidRequestError, ServerAuthError
from modelformats.smoke import RequestResult

TOKENS = ("a", "b", "c", "d", "e")


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.generated = 0
        self.api_key: str | None = None
        self.fail_every = 0  # every n-th chat request answers 500
        self.auth_header: list[str | None] = []
        self.metrics = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # quiet
        pass

    def _json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        s = self.server.state
        s.auth_header.append(self.headers.get("Authorization"))
        if s.api_key is None or self.headers.get("Authorization") == f"Bearer {s.api_key}":
            return True
        self._json(401, {"error": {"message": "Invalid API Key", "type": "authentication_error"}})
        return False

    def do_GET(self):
        s = self.server.state
        if self.path == "/health":
            return self._json(200, {"status": "ok"})
        if self.path == "/v1/models":
            if not self._authorised():
                return None
            return self._json(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})
        if self.path == "/metrics" and s.metrics:
            with s.lock:
                text = (
                    f'vllm:num_requests_running{{engine="0"}} {s.in_flight}\n'
                    f'vllm:num_requests_waiting{{engine="0"}} 0\n'
                    f'vllm:kv_cache_usage_perc{{engine="0"}} {0.1 * s.in_flight}\n'
                    f'vllm:generation_tokens_total{{engine="0"}} {s.generated}\n'
                )
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        return self._json(404, {"detail": "Not Found"})

    def _event(self, payload: object) -> None:
        data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self):
        s = self.server.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._authorised():
            return None
        with s.lock:
            s.requests += 1
            n = s.requests
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
        finished = False
        try:
            if s.fail_every and n % s.fail_every == 0:
                return self._json(500, {"error": {"message": "CUDA out of memory", "type": "InternalServerError"}})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            tokens = TOKENS[: min(len(TOKENS), body["max_tokens"])]
            time.sleep(0.03)  # prefill
            for t in tokens:
                self._event({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]})
                time.sleep(0.01)
            usage = {"prompt_tokens": 3, "completion_tokens": len(tokens), "total_tokens": 3 + len(tokens)}
            with s.lock:
                # Counted before the answer ends, as engines do (the client may send its next request
                # the moment it reads [DONE]).
                s.generated += len(tokens)
                s.in_flight -= 1
                finished = True
            self._event({"choices": [], "usage": usage})
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            if not finished:
                with s.lock:
                    s.in_flight -= 1
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


@pytest.fixture
def server() -> Iterator[tuple[str, State]]:
    httpd = _Server(("127.0.0.1", 0), Handler)
    httpd.state = State()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- pure parts ----------------------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 90) == 4.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None


@pytest.mark.parametrize(
    ("max_num_seqs", "levels"),
    [(1, (1,)), (4, (1, 2, 4)), (6, (1, 2, 4, 6)), (256, (1, 2, 4, 8, 16, 32, 64, 128, 256))],
)
def test_concurrency_levels_double_up_to_max_num_seqs(max_num_seqs, levels):
    assert concurrency_levels(max_num_seqs) == levels


def test_cost_per_request_and_per_million_tokens():
    results = tuple(
        RequestResult(prompt="p", ok=True, ttft_s=0.1, latency_s=1.0, output_tokens=100, token_source="usage")
        for _ in range(4)
    )
    level = LevelResult(concurrency=2, results=results, wall_s=2.0, price_per_hour=3.6)
    # 400 tokens in 2 s = 200 tok/s; $3.60/h = $0.001/s -> 2 s = $0.002 for 4 requests.
    assert level.output_tokens_per_s == 200
    assert level.cost_per_request == pytest.approx(0.0005)
    assert level.cost_per_million_output_tokens == pytest.approx(5.0)
    # 99 gaps after the first token in 0.9 s.
    assert level.latency_stats()["inter_token_s"]["p50"] == pytest.approx(0.9 / 99)


# --- against the server --------------------------------------------------------------------------


def test_sweep_runs_each_level_at_its_concurrency_and_reads_metrics(server):
    url, state = server
    report = run_bench(url, levels=(1, 2, 4), requests_per_level=8, max_tokens=5, price_per_hour=2.0, price_source="t")
    assert report.ok and report.exit_code == 0
    assert [lv.concurrency for lv in report.levels] == [1, 2, 4]
    assert all(len(lv.results) == 8 and lv.errors == 0 for lv in report.levels)
    assert state.max_in_flight == 4
    assert state.requests == 1 + 3 * 8  # the uncounted warm-up, then 8 per level
    assert report.model == "tiny"
    for lv in report.levels:
        lat = lv.latency_stats()
        assert 0 < lat["ttft_s"]["p50"] <= lat["e2e_s"]["p50"] <= lat["e2e_s"]["p99"]
        assert lat["inter_token_s"]["p50"] > 0
        assert lv.output_tokens == 8 * 5
        assert lv.metrics_delta["generation_tokens_total"] == 40
        assert lv.cost_per_request is not None and lv.cost_per_million_output_tokens is not None
    # Four requests in flight at once are seen by the /metrics sampler (it reads every 0.5 s).
    assert report.metrics_engine == "vllm"
    data = report.to_dict()
    assert data["schema"] == "modelformats-bench/1"
    assert json.loads(json.dumps(data)) == data
    assert len(data["levels"][0]["samples"]) == 8


def test_errors_are_counted_not_raised(server):
    url, state = server
    state.fail_every = 3
    report = run_bench(url, levels=(2,), requests_per_level=9, max_tokens=3)
    (level,) = report.levels
    assert level.errors == 3 and level.error_rate == pytest.approx(1 / 3)
    assert report.exit_code == 1
    assert level.to_dict()["error_messages"] == ["HTTP 500: CUDA out of memory"]
    assert "error at concurrency 2: HTTP 500: CUDA out of memory" in render_bench(report)


def test_missing_key_is_an_authentication_error_at_once(server):
    url, state = server
    state.api_key = "sekrit"
    started = time.monotonic()
    with pytest.raises(ServerAuthError) as info:
        run_bench(url, levels=(1, 2), timeout=30)
    assert time.monotonic() - started < 5
    assert info.value.status == 401
    assert str(info.value) == (
        f"Authentication failed at {url}: HTTP 401 (GET /v1/models answered HTTP 401: Invalid API Key). "
        "Fix: the server needs an API key; pass --api-key KEY (or set OPENAI_API_KEY)."
    )
    assert state.requests == 0


def test_wrong_key_names_the_fix_and_right_key_is_sent(server):
    url, state = server
    state.api_key = "sekrit"
    with pytest.raises(ServerAuthError, match="the key was refused"):
        run_bench(url, levels=(1,), model="tiny", api_key="wrong")
    report = run_bench(url, levels=(1,), requests_per_level=2, model="tiny", api_key="sekrit", max_tokens=2)
    assert report.ok
    assert set(state.auth_header[-3:]) == {"Bearer sekrit"}


def test_a_server_that_never_answers_is_reported_within_the_bound():
    started = time.monotonic()
    report = run_bench("http://127.0.0.1:9", levels=(1,), health_timeout=1.0)
    assert time.monotonic() - started < 4
    assert report.levels == () and report.exit_code == 1
    assert report.stopped is not None and report.stopped.startswith("the server never became ready")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": ()}, "Concurrency levels must be positive integers, got []"),
        ({"levels": (0, 1)}, "Concurrency levels must be positive integers, got [0, 1]"),
        ({"timeout": 0}, "timeout must be positive, got 0"),
        ({"prompts": ()}, "No prompts to send"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        run_bench("http://127.0.0.1:9", **kwargs)


def _report(server_url: str) -> BenchReport:
    return run_bench(server_url, levels=(1, 2), requests_per_level=4, max_tokens=4, price_per_hour=3.95)


def test_html_report_is_self_contained_with_both_plots(server):
    url, _ = server
    page = render_html(_report(url))
    assert page.count("<svg") == 2
    assert 'id="throughput"' in page and 'id="latency"' in page
    assert "Throughput vs concurrency" in page and "Latency vs concurrency" in page
    # Nothing loads from anywhere: no script, no external URL besides the SVG namespace.
    assert "<script" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page)) - {"http://www.w3.org/2000/svg", url}
    assert urls == set()
    assert page.count("<polyline") >= 2


def test_table_fits_80_columns(server):
    url, _ = server
    text = render_bench(_report(url))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.splitlines()[-1] == "result: OK"


def test_cli_writes_both_reports_from_a_plan(server, tmp_path, capsys):
    url, state = server
    port = url.rsplit(":", 1)[1]
    assert main(["plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    plan["port"] = int(port)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    state.api_key = None
    out = tmp_path / "out"
    code = main(["bench", "--plan", str(plan_file), "--requests", "4", "--max-tokens", "3", "--output-dir", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    data = json.loads((out / "bench.json").read_text())
    # The plan's max_num_seqs (4) bounds the sweep; its price prices the requests.
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 2, 4]
    assert data["price_per_hour"] == plan["gpu"]["price_per_hour"]
    assert data["price_source"] == "plan: H100 x1"
    assert data["model"] == plan["served_model_name"]
    assert (out / "bench.html").read_text().count("<svg") == 2
    assert f"reports: {out / 'bench.json'}, {out / 'bench.html'}" in text


def test_cli_without_a_server_is_a_clear_error(capsys):
    assert main(["bench"]) == 2
    assert capsys.readouterr().err == (
        "error: bench needs a server: pass --base-url URL (e.g. http://127.0.0.1:8000), or --plan plan.json "
        "to bench the plan's server on its port.\n"
    )


def test_cli_auth_error_exits_2_with_the_fix(server, tmp_path, capsys, monkeypatch):
    url, state = server
    state.api_key = "sekrit"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["bench", "--base-url", url, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Authentication failed at {url}: HTTP 401")
    assert "pass --api-key KEY (or set OPENAI_API_KEY)" in err
    assert not (tmp_path / "bench.json").exists()
    monkeypatch.setenv("OPENAI_API_KEY", "sekrit")
    assert (
        main(["bench", "--base-url", url, "--concurrency", "1", "--requests", "2", "--output-dir", str(tmp_path)]) == 0
    )
    assert json.loads((tmp_path / "bench.json").read_text())["ok"] is True


def test_plan_file_that_is_not_a_plan_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "plan.json"
    bad.write_text("{}")
    assert main(["bench", "--plan", str(bad)]) == 2
    assert "is not a valid modelformats plan" in capsys.readouterr().err


def test_reports_written_into_a_fresh_directory(server, tmp_path):
    from modelformats.bench import write_reports

    url, _ = server
    json_path, html_path = write_reports(_report(url), tmp_path / "a" / "b")
    assert json.loads(Path(json_path).read_text())["levels"][1]["concurrency"] == 2
    assert html_path.read_text().startswith("<!DOCTYPE html>")


def test_smoke_sends_the_key_too(server):
    from modelformats.smoke import run_smoke, wait_for_health

    url, state = server
    state.api_key = "sekrit"
    report = run_smoke(url, prompts=["hi"], max_tokens=2, api_key="sekrit")
    assert report.ok and report.model == "tiny"
    refused = run_smoke(url, prompts=["hi", "there"], max_tokens=2)
    # /v1/models already refuses: nothing is sent, and the report says why and how to fix it.
    assert [r.error for r in refused.results] == ["not sent: GET /v1/models answered HTTP 401: Invalid API Key"] * 2
    assert refused.warnings == (
        "authentication failed (GET /v1/models answered HTTP 401: Invalid API Key): the server demands an API "
        "key and none was sent: pass --api-key KEY or set OPENAI_API_KEY.",
    )
    assert refused.exit_code == 1
    wrong = run_smoke(url, prompts=["hi"], max_tokens=2, api_key="nope")
    assert "refused the API key sent" in wrong.warnings[0]
    assert wait_for_health(url, api_key="x").ready  # /health is public, as in vLLM and llama-server
