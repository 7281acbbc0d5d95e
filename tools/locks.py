"""The committed lock files of the heavy environments (locks/<env>.in -> locks/<env>.txt), read with
the stdlib only: the default tests compare them with the engine profiles' pins.

`nox -s locks` compiles them (`uv pip compile --generate-hashes`); `nox -s heavy_envs` installs them
with `uv pip sync --require-hashes` into venvs cached by the lock's sha256.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_file(env: str) -> Path:
    return LOCKS / f"{env}.txt"


def pins(env: str) -> dict[str, str]:
    """`{normalized name: version}` of every package the lock file pins."""
    found: dict[str, str] = {}
    for line in lock_file(env).read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[normalize(match.group(1))] = match.group(3)
    return found


def top_level(env: str) -> list[str]:
    """The requirement lines of locks/<env>.in (comments, blanks and options such as --find-links dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in (LOCKS / f"{env}.in").read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]
