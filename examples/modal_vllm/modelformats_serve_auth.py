"""An ASGI middleware that demands the API key on every path but the health check (vLLM's --middleware).

vLLM's own `--api-key` check (vllm/entrypoints/serve/middleware/authenticate.py in 0.33 and 0.34)
guards only paths under /v1, /v2, /inference and /cohere: POST /invocations (the SageMaker route,
which runs chat and completions), /tokenize, /pooling, /score, /rerank and /metrics stay open. The
Modal example starts vLLM with `--middleware modelformats_serve_auth.BearerAuth`; vLLM imports the
class and applies it with `app.add_middleware(cls)` (register.py: a class gets no arguments), so the
key comes from the environment: `VLLM_API_KEY`, the variable vLLM's own check reads too. Without a
key the server refuses to start rather than serve in the open.

Only the standard library: the image installs this file next to vLLM (no modelformats, no starlette).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KEY_ENV = "VLLM_API_KEY"
# The one path served without the key: what Modal's and the smoke test's readiness probes ask.
OPEN_PATHS = frozenset({"/health"})
OPEN_METHODS = frozenset({"GET", "HEAD"})


class BearerAuth:
    """401 for any HTTP request without `Authorization: Bearer <key>`, except GET/HEAD /health;
    a websocket without the key is closed before it is accepted."""

    def __init__(self, app: ASGIApp, key: str | None = None) -> None:
        key = key if key is not None else os.environ.get(KEY_ENV, "")
        if not key:
            raise RuntimeError(
                f"{KEY_ENV} is empty: the endpoint would be public. Set it (the Modal example does, from "
                "the Modal Secret holding MODELFORMATS_API_KEY), or drop --middleware for a public endpoint."
            )
        self.app = app
        self._digest = hashlib.sha256(key.encode("utf-8")).digest()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers") or ():
            if name.lower() == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
                return scheme.lower() == "bearer" and hmac.compare_digest(digest, self._digest)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", "")).removeprefix(str(scope.get("root_path", ""))) or "/"
        if kind == "http" and path in OPEN_PATHS and scope.get("method") in OPEN_METHODS:
            await self.app(scope, receive, send)
            return
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": "Unauthorized: send Authorization: Bearer <key>"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
