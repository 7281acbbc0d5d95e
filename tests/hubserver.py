"""A small, real HTTP server that speaks the parts of the Hub API huggingface_hub uses.

Tests point huggingface_hub at it (`endpoint=server.url`) instead of mocking our own functions:
`model_info` / `repo_info` (`/api/models/...`), the recursive tree `snapshot_download` lists
(`/api/models/{repo}/tree/{revision}`), file downloads with HEAD, GET and Range
(`/{repo}/resolve/{revision}/{path}`), and the Hub's error headers (X-Error-Code) for missing repos,
gated repos and bad revisions.

Faults, for the download tests: `fail_next[fragment]` answers the next requests whose path holds
`fragment` with those statuses (429 with `Retry-After: 0`, 503, ...); `flip[fragment]` flips one
byte (at that offset of the file) in every body served; `cut[fragment]` sends only that many body
bytes of the next GET, then drops the connection; `throttle` sleeps that many seconds per 64 KiB.
`served` records the body bytes really written per GET, so a test can prove what a resume re-fetched.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FakeRepo", "HubServer", "git_blob_sha1", "serve_hub"]


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    tags: list[str] = field(default_factory=list)
    card_data: dict[str, Any] | None = None
    safetensors: dict[str, Any] | None = None
    gguf: dict[str, Any] | None = None
    gated: bool = False
    # Extra revisions that resolve to `sha` (branches, tags).
    refs: tuple[str, ...] = ("main",)


@dataclass
class HubServer:
    url: str
    repos: dict[str, FakeRepo]
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, range)
    # "owner/name/path" of every file body sent (GET).
    gets: list[str] = field(default_factory=list)
    fail_next: dict[str, list[int]] = field(default_factory=dict)
    flip: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    throttle: float = 0.0
    # ("owner/name/path", body bytes written) per file GET, cut transfers included.
    served: list[tuple[str, int]] = field(default_factory=list)

    def bytes_written(self, path_fragment: str) -> int:
        return sum(n for p, n in self.served if path_fragment in p)

    def bytes_served(self, path_fragment: str) -> int:
        return sum(int(r[2] or 0) for r in self.requests if path_fragment in r[1])


_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def _handler(state: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _error(self, status: int, code: str, message: str = "", *, retry_after: str | None = None) -> None:
            body = json.dumps({"error": message or code}).encode()
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("X-Error-Code", code)
            if message:
                self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _repo(self, repo_id: str, rev: str | None) -> FakeRepo | None:
            repo = state.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo.gated:
                self._error(403, "GatedRepo", "Access to model is restricted")
                return None
            if rev is not None and rev not in (repo.sha, *repo.refs):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return None
            return repo

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            self.index = len(state.requests)  # requests arrive on several threads: keep our own slot
            state.requests.append((self.command, path, None))
            for fragment, statuses in state.fail_next.items():
                if fragment in path and statuses:
                    status = statuses.pop(0)
                    if status == 429:
                        self._error(429, "RateLimited", "Too many requests", retry_after="0")
                    else:
                        self._error(status, "ServerError", "Service unavailable")
                    return
            if m := _TREE.match(path):
                repo = self._repo(m["repo"], m["rev"])
                if repo is not None:
                    self._json(_tree(repo))
                return
            if m := _API.match(path):
                repo = self._repo(m["repo"], m["rev"])
                if repo is not None:
                    self._json(_model_info(repo))
                return
            if m := _RESOLVE.match(path):
                repo = self._repo(m["repo"], m["rev"])
                if repo is None:
                    return
                data = repo.files.get(m["path"])
                if data is None:
                    self._error(404, "EntryNotFound", "Entry not found")
                    return
                self._file(repo, data)
                return
            self._error(404, "NotFound")

        def _json(self, payload: Mapping[str, Any] | list[Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _file(self, repo: FakeRepo, data: bytes) -> None:
            etag = hashlib.sha256(data).hexdigest()
            start, end, status = 0, len(data) - 1, 200
            header = self.headers.get("Range")
            if header and (m := _RANGE.match(header)):
                start = int(m[1])
                end = min(int(m[2]) if m[2] else len(data) - 1, len(data) - 1)
                status = 206
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            name = f"{repo.repo_id}/{unquote(urlsplit(self.path).path).split('/', 5)[5]}"
            for fragment, offset in state.flip.items():
                if fragment in name:
                    data = data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]
            chunk = data[start : end + 1]
            limit = len(chunk)
            for fragment, n in list(state.cut.items()):
                if fragment in name and self.command == "GET":
                    limit = min(limit, n)
                    del state.cut[fragment]
            if self.command == "GET":
                state.requests[self.index] = (self.command, state.requests[self.index][1], str(len(chunk)))
                state.gets.append(name)
            self.send_response(status)
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", repo.sha)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if self.command == "GET":
                self._body(name, chunk[:limit])
                if limit < len(chunk):
                    self.close_connection = True

        def _body(self, name: str, body: bytes) -> None:
            slot = len(state.served)
            state.served.append((name, 0))
            step = 64 * 1024
            for i in range(0, len(body), step):
                if state.throttle:
                    time.sleep(state.throttle)
                try:
                    self.wfile.write(body[i : i + step])
                except OSError:
                    return
                state.served[slot] = (name, i + len(body[i : i + step]))

    return Handler


def git_blob_sha1(data: bytes) -> str:
    """The Hub's `blobId`/`oid`: git's hash of the blob ("blob <size>\\0" + content)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _tree(repo: FakeRepo) -> list[dict[str, Any]]:
    return [{"type": "file", "path": p, "size": len(d), "oid": git_blob_sha1(d)} for p, d in sorted(repo.files.items())]


def _model_info(repo: FakeRepo) -> dict[str, Any]:
    siblings = []
    for name, data in sorted(repo.files.items()):
        entry: dict[str, Any] = {
            "rfilename": name,
            "size": len(data),
            "blobId": git_blob_sha1(data),
        }
        if len(data) > 1024:
            entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        siblings.append(entry)
    info: dict[str, Any] = {
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "sha": repo.sha,
        "private": False,
        "gated": False,
        "tags": repo.tags,
        "siblings": siblings,
    }
    if repo.card_data is not None:
        info["cardData"] = repo.card_data
    if repo.safetensors is not None:
        info["safetensors"] = repo.safetensors
    if repo.gguf is not None:
        info["gguf"] = repo.gguf
    return info


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-body (huggingface_hub cancelling a download) is not a server error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_hub(*repos: FakeRepo) -> Iterator[HubServer]:
    """Run the server on 127.0.0.1 (a free port) for the duration of the block."""
    state = HubServer(url="", repos={r.repo_id: r for r in repos})
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
