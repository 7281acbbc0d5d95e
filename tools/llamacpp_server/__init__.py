"""A real llama-server on CPU: build it from the llama-cpp-python sdist, feed it tiny GGUFs, run it.

from tools.llamacpp_server import ensure_llama_server, shared_cache, start_llama_server, write_tiny_gguf

binary = ensure_llama_server(shared_cache())         # built once per machine (~8 min on 2 cores)
(model,) = write_tiny_gguf(tmp / "m.gguf", layout="llama-moe", quant="Q8_0")
with start_llama_server(binary, ["--model", str(model), "--jinja", "--metrics"]) as base_url:
    ...  # OpenAI-compatible API at base_url + "/v1"
"""

from tools.llamacpp_server.build import ensure_llama_binaries, ensure_llama_server, shared_cache
from tools.llamacpp_server.server import LlamaServerError, start_llama_server
from tools.llamacpp_server.tiny_gguf import join_parts, split_bytes, write_tiny_gguf

__all__ = [
    "LlamaServerError",
    "ensure_llama_binaries",
    "ensure_llama_server",
    "join_parts",
    "shared_cache",
    "split_bytes",
    "start_llama_server",
    "write_tiny_gguf",
]
