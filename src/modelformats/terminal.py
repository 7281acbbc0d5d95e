"""Text for a terminal: control characters from names (files, GGUF metadata) shown escaped, never obeyed.

A repo file named `a\\x1b[2Jb.gguf` would clear the screen if printed raw, and one with a newline
would forge an output line. Human output goes through `escape_controls` at the edge; strings known
to come from outside (file names, header values) are escaped whole first with `escape_values`,
so even their newlines and tabs show as `\\n` / `\\t`. JSON output needs none of this: `json.dumps`
escapes every control character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["escape_controls", "escape_values", "outside_strings"]

# C0 controls, DEL and C1 controls (U+0080-U+009F, which some terminals also obey).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # the same, less \t and \n (our own layout)
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch, f"\\x{ord(ch):02x}")


def escape_controls(text: str, *, keep_layout: bool = True) -> str:
    """Every control character as `\\xNN` (or `\\n`, `\\t`); newlines and tabs kept when `keep_layout`."""
    return (_LAYOUT if keep_layout else _CONTROLS).sub(_escape, text)


def outside_strings(data: Any) -> Iterator[str]:
    """Every string in a JSON-like value (keys included) that holds a control character."""
    if isinstance(data, str):
        if _CONTROLS.search(data):
            yield data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from outside_strings(key)
            yield from outside_strings(value)
    elif isinstance(data, list | tuple):
        for value in data:
            yield from outside_strings(value)


def escape_values(text: str, values: Iterable[str], *, styled: bool = False) -> str:
    """`text` with each of `values` (strings from outside) escaped whole, then the rest of it escaped.

    `styled` text carries our own colour sequences (render.Style on a TTY): only the outside strings
    are escaped then, which covers every name the text was rendered from.
    """
    for value in sorted(set(values), key=len, reverse=True):
        text = text.replace(value, escape_controls(value, keep_layout=False))
    return text if styled else escape_controls(text)
