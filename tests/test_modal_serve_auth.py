"""The Modal example's ASGI middleware (examples/modal_vllm/modelformats_serve_auth.py) around a real ASGI app.

vLLM's own --api-key check guards only /v1, /v2, /inference and /cohere; the middleware must refuse
every other path too (/invocations runs chat on vLLM's SageMaker route), leaving only /health open.
`tools/vllm_compat` also runs it inside vLLM's own app (`build_app` with the parsed `--middleware`); the last test
checks that `vllm_compat` fails when a required case (the Modal ranks, the experts cases) vanishes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

MODULE = Path(__file__).resolve().parents[1] / "examples" / "modal_vllm" / "modelformats_serve_auth.py"
KEY = "s3cret-key"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("modelformats_serve_auth_test", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


auth = _load()


async def _echo_app(scope, receive, send) -> None:
    """A tiny ASGI app that answers 200 with the path it served (what a route would run)."""
    body = json.dumps({"served": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _call(
    app, path: str, *, method: str = "POST", token: str | None = None, scheme: str = "Bearer"
) -> tuple[int, dict]:
    headers = [(b"host", b"example")]
    if token is not None:
        headers.append((b"authorization", f"{scheme} {token}".encode()))
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": headers}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, json.loads(body)


GUARDED = [
    "/invocations", "/tokenize", "/detokenize", "/pooling", "/score", "/rerank", "/metrics",
    "/v1/chat/completions", "/v1/completions", "/v1/models", "/version", "/", "/healthz", "/health/x",
]  # fmt: skip


@pytest.mark.parametrize("path", GUARDED)
def test_every_path_but_health_demands_the_key(monkeypatch, path):
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    app = auth.BearerAuth(_echo_app)
    assert _call(app, path)[0] == 401
    assert _call(app, path, token="wrong")[0] == 401
    assert _call(app, path, token=KEY, scheme="Basic")[0] == 401
    assert _call(app, path, token=KEY) == (200, {"served": path})


def test_health_is_open_for_get_only(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    app = auth.BearerAuth(_echo_app)
    assert _call(app, "/health", method="GET") == (200, {"served": "/health"})
    assert _call(app, "/health", method="POST")[0] == 401


def test_websocket_without_the_key_is_closed(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    sent: list[dict] = []

    async def inner(scope, receive, send):
        raise AssertionError("the app ran without the key")

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/v1/realtime", "headers": []}
    asyncio.run(auth.BearerAuth(inner)(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_lifespan_passes_through(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(auth.BearerAuth(inner)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def test_no_key_refuses_to_start_rather_than_serve_in_the_open(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="VLLM_API_KEY is empty"):
        auth.BearerAuth(_echo_app)


def test_vllm_compat_fails_when_a_required_case_vanishes():
    """tools/vllm_compat/cases.py: the two-node ranks and the experts cases must be built, or the run fails."""
    from tools.vllm_compat.cases import REQUIRED, missing_required

    every = [{"label": label} for labels in REQUIRED.values() for label in labels]
    assert missing_required("0.33.0", ["engine", "modal", "cli"], every) == []
    # The plugin-backed GGUF case names its plugin after the label; it still counts.
    renamed = [c if "gguf" not in c["label"] else {"label": c["label"] + " (modelformats plugin)"} for c in every]
    assert missing_required("0.33.0", ["engine", "modal"], renamed) == []
    dropped = ("modal:two-node rank 1", "engine:gguf-target-moe-experts-per-token")
    without = [c for c in every if c["label"] not in dropped]
    assert missing_required("0.33.0", ["engine", "modal"], without) == [
        "engine:gguf-target-moe-experts-per-token",
        "modal:two-node rank 1",
    ]
    # Where modelformats' plugin does not run (0.23), the GGUF target's case is not required.
    assert missing_required("0.23.0", ["engine", "modal"], without) == ["modal:two-node rank 1"]
    # Issue 18: the converted route's cli cases (synthetic listings with a read header) must be built too.
    assert missing_required("0.33.0", ["cli"], []) == [
        "cli:example/Llama-3.1-8B-Instruct-GGUF --format native",
        "cli:example/Llama-3-70Bx2-MOE-GGUF --format native",
    ]
