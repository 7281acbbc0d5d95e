"""Real GGUF files written by the `gguf` package, and a real HTTP server with Range support."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import gguf
import numpy as np
import pytest

Q8_0 = gguf.GGMLQuantizationType.Q8_0
F32 = gguf.GGMLQuantizationType.F32


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    experts: int = 0,
    layers: int = 2,
    hidden: int = 64,
    vocab: int = 320,
    merges: int = 640,
    base_model_repo: str | None = None,
    split_max_tensors: int = 0,
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
    chat_template: str | None = "{% for m in messages %}{{ m['content'] }}{% endfor %}",
) -> list[Path]:
    """A tiny but real llama-architecture GGUF (Q8_0 weights, F32 norms); returns the file(s) written."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(path, arch, endianess=endianess, split_max_tensors=split_max_tensors)
    w.add_name("tiny llama" + (f" {experts}x MoE" if experts else ""))
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(2 * hidden)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(2)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    w.add_token_merges([f"t o{i}" for i in range(merges)])
    if chat_template is not None:
        w.add_chat_template(chat_template)
    if base_model_repo is not None:
        w.add_base_model_count(1)
        w.add_base_model_name(0, "Base")
        w.add_base_model_organization(0, base_model_repo.split("/")[0])
        w.add_base_model_repo_url(0, f"https://huggingface.co/{base_model_repo}")

    def q8(name: str, *shape: int) -> None:
        w.add_tensor(name, gguf.quants.quantize(rng.standard_normal(shape).astype(np.float32), Q8_0), raw_dtype=Q8_0)

    def f32(name: str, *shape: int) -> None:
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))

    q8("token_embd.weight", vocab, hidden)
    f32("output_norm.weight", hidden)
    for b in range(layers):
        p = f"blk.{b}."
        f32(p + "attn_norm.weight", hidden)
        f32(p + "ffn_norm.weight", hidden)
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            q8(p + t + ".weight", hidden, hidden)
        if experts:
            f32(p + "ffn_gate_inp.weight", experts, hidden)
            q8(p + "ffn_gate_exps.weight", experts, 2 * hidden, hidden)
            q8(p + "ffn_up_exps.weight", experts, 2 * hidden, hidden)
            q8(p + "ffn_down_exps.weight", experts, hidden, 2 * hidden)
        else:
            q8(p + "ffn_gate.weight", 2 * hidden, hidden)
            q8(p + "ffn_up.weight", 2 * hidden, hidden)
            q8(p + "ffn_down.weight", hidden, 2 * hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if split_max_tensors:
        return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
    return [path]


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def tiny_llama(gguf_dir: Path) -> Path:
    return write_gguf(gguf_dir / "tiny-llama-Q8_0.gguf", base_model_repo="meta-llama/Llama-3.2-1B-Instruct")[0]


@pytest.fixture(scope="session")
def tiny_moe(gguf_dir: Path) -> Path:
    return write_gguf(gguf_dir / "tiny-moe-Q8_0.gguf", experts=8, vocab=2048, merges=4096)[0]


# --- a real HTTP server with Range support ---------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class RangeServer:
    url: str
    files: dict[str, bytes]
    honour_range: bool = True
    # Paths answered with a 302 to another path (the Hub redirects /resolve/ to its CDN).
    redirects: dict[str, str] = field(default_factory=dict)
    # (method, path, Range header, whether Authorization was sent, body bytes sent)
    requests: list[tuple[str, str, str | None, bool, int]] = field(default_factory=list)

    @property
    def bytes_sent(self) -> int:
        return sum(r[4] for r in self.requests)


def _handler(state: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            auth = "Authorization" in self.headers
            if path in state.redirects:
                state.requests.append(("GET", path, self.headers.get("Range"), auth, 0))
                self.send_response(302)
                self.send_header("Location", state.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.files.get(path)
            if data is None:
                state.requests.append(("GET", path, self.headers.get("Range"), auth, 0))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end, status = 0, len(data) - 1, 200
            header = self.headers.get("Range")
            if state.honour_range and header and (m := _RANGE.match(header)):
                start = int(m[1])
                end = min(int(m[2]) if m[2] else len(data) - 1, len(data) - 1)
                status = 206
                if start >= len(data):
                    state.requests.append(("GET", path, header, auth, 0))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = data[start : end + 1]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            # Recorded before the body goes out: a client that read it all may check the log at once.
            index = len(state.requests)
            state.requests.append(("GET", path, header, auth, len(body)))
            self.end_headers()
            sent = 0
            try:
                for i in range(0, len(body), 65536):
                    self.wfile.write(body[i : i + 65536])
                    sent += len(body[i : i + 65536])
            except (BrokenPipeError, ConnectionResetError):
                # The client hung up after reading what it needed: count what really went out.
                state.requests[index] = ("GET", path, header, auth, sent)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up once it has its bytes (our reader does) is not a server error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def range_server() -> Iterator[RangeServer]:
    state = RangeServer(url="", files={})
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
