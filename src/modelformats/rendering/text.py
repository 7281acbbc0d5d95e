"""Text for a terminal: its width and whether to colour, `Style`, wrapping and clipping to a width, byte
sizes, the label column of decision lines, and shard names compressed to one pattern."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

__all__ = [
    "LABEL",
    "Style",
    "clip",
    "compress_shards",
    "field_lines",
    "format_gb",
    "format_size",
    "terminal_width",
    "use_colour",
    "wrap",
]

_MIN_WIDTH = 60
LABEL = 8  # "engine  ": the label column of the decision lines
_SHARD = re.compile(r"^(?P<head>.*?)(?P<n>\d{5})(?P<tail>-of-(?P<total>\d{5}).*)$")


def terminal_width(default: int = 80) -> int:
    """Columns of the terminal (COLUMNS first, as `shutil.get_terminal_size` reads it), at least 60."""
    return max(shutil.get_terminal_size((default, 24)).columns, _MIN_WIDTH)


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass(frozen=True, kw_only=True, slots=True)
class Style:
    """ANSI colour, or plain text. Applied after layout: escape codes take no columns."""

    colour: bool = False

    def _sgr(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour and text else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def good(self, text: str) -> str:
        return self._sgr("32", text)

    def bad(self, text: str) -> str:
        return self._sgr("31", text)

    def warn(self, text: str) -> str:
        return self._sgr("33", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)


def format_gb(n: float | None) -> str:
    return "unknown" if n is None else f"{n / 1e9:,.2f} GB"


def format_size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def wrap(text: str, width: int, first: str = "", rest: str | None = None) -> list[str]:
    """`text` wrapped to `width`; long words (repo ids) break after a hyphen or at the edge."""
    rest = " " * len(first) if rest is None else rest
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=True) or [
        first.rstrip()
    ]


def clip(text: str, width: int) -> str:
    """`text` in `width` columns, cut at a word boundary with `…` when it is longer."""
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width - 1)
    return (text[:cut] if cut > width // 2 else text[: width - 1]) + "…"


def field_lines(label: str, text: str, width: int) -> list[str]:
    """A decision line: `label` in the label column, `text` wrapped under itself."""
    return wrap(text, width, first=f"{label:<{LABEL}}", rest=" " * LABEL)


def compress_shards(names: Sequence[str]) -> list[str]:
    """`model-00001-of-00008.safetensors` ... `-00008-` as one `model-{00001..00008}-of-00008.safetensors`."""
    groups: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str] | str] = []
    for name in names:
        m = _SHARD.match(name)
        if m is None:
            order.append(name)
            continue
        key = (m["head"], m["tail"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(m["n"])
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
            continue
        numbers = sorted(groups[item])
        if len(numbers) == 1:
            out.append(f"{item[0]}{numbers[0]}{item[1]}")
        else:
            out.append(f"{item[0]}{{{numbers[0]}..{numbers[-1]}}}{item[1]}")
    return out
