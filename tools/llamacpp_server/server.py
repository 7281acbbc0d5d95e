"""Start a real `llama-server` on this machine and wait until it serves; stop it cleanly.

`start_llama_server(binary, args)` is the reusable entry point (the smoke-client tests use it):
a context manager that yields the server's base URL once `GET /health` answers 200, and on exit
sends SIGTERM and waits for the process. Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LlamaServerError",
    "LlamaServerProcess",
    "free_port",
    "http_get",
    "http_post_json",
    "start_llama_server",
]


class LlamaServerError(RuntimeError):
    """llama-server exited, never became healthy, or did not stop when asked."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, *, timeout: float = 10.0) -> tuple[int, str]:
    """GET a URL; return (status, body text). HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def http_post_json(url: str, payload: dict[str, Any], *, timeout: float = 60.0) -> tuple[int, str]:
    """POST JSON; return (status, body text). HTTP errors are returned, not raised."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _option(args: Sequence[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
    return None


@dataclass
class LlamaServerProcess:
    """One llama-server process: start, wait for health, stop. The log goes to a file."""

    binary: Path
    args: tuple[str, ...]
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after_s: float | None = None
    returncode: int | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        args = list(self.args)
        port = _option(args, "--port")
        host = _option(args, "--host")
        if port is None:
            self.port = self.port or free_port()
            args += ["--port", str(self.port)]
        else:
            self.port = int(port)
        if host is None:
            args += ["--host", self.host]
        else:
            self.host = host
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [str(self.binary), *args], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Poll `/health` until 200 (503 while the model loads); return seconds since start."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LlamaServerError(
                    f"llama-server exited with code {self.process.returncode} before it became healthy; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                status, _ = http_get(self.base_url + "/health", timeout=2.0)
                if status == 200:
                    self.ready_after_s = time.monotonic() - self.started_at
                    return self.ready_after_s
            time.sleep(0.1)
        raise LlamaServerError(
            f"llama-server did not answer 200 on {self.base_url}/health within {timeout:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait; SIGKILL after `timeout`. Return the exit code (0 = clean shutdown)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.returncode = self.process.returncode
        if self._log is not None:
            self._log.close()
        return self.returncode


@contextlib.contextmanager
def start_llama_server(
    binary: str | Path,
    args: Sequence[str],
    *,
    startup_timeout: float = 120.0,
    log_path: str | Path | None = None,
    require_clean_exit: bool = True,
) -> Iterator[str]:
    """Run `binary args...`, yield its base URL ("http://127.0.0.1:PORT") once `/health` is 200.

    `args` are llama-server's arguments without the program name, e.g. `EngineCommand.argv[1:]`
    from `LlamaCppEngine.command()`. A free port on 127.0.0.1 is added when `--port` is absent.
    On exit the server gets SIGTERM; with `require_clean_exit`, a non-zero exit code raises
    `LlamaServerError` (unless the body already raised).
    """
    if log_path is None:
        log_dir = Path(tempfile.mkdtemp(prefix="llama-server-"))
        log_path = log_dir / "server.log"
    server = LlamaServerProcess(binary=Path(binary), args=tuple(args), log_path=Path(log_path))
    server.start()
    body_failed = False
    try:
        server.wait_healthy(startup_timeout)
        yield server.base_url
    except BaseException:
        body_failed = True
        raise
    finally:
        code = server.stop()
        if require_clean_exit and not body_failed and code != 0:
            raise LlamaServerError(
                f"llama-server exited with code {code} after SIGTERM; log {server.log_path}:\n{server.log_tail()}"
            )
