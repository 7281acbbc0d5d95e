"""Exception text that reads the same on every run: what the proofs record and then compare.

A proof's committed evidence is compared byte for byte with a fresh run (tools/evidence.py), so
anything in a recorded message that changes from run to run makes CI fail although the engine
said the same thing. One source of such noise is Python's string hashing: vLLM formats sets of
parameter names with `str(set)`, whose order depends on PYTHONHASHSEED, e.g.
"... are: {'embed_tokens.qweight_type', 'embed_tokens.qweight'}". The helpers here sort the items
of every such set literal; the proof sessions also pin PYTHONHASHSEED (noxfile.run_in).
"""

from __future__ import annotations

import re

_ITEM = r"'(?:[^'\\]|\\.)*'"
# A set literal of quoted strings: {'a', 'b', ...}. Dicts ({'a': 1}) do not match (no ':' allowed).
_SET_OF_STRINGS = re.compile(rf"\{{({_ITEM}(?:, {_ITEM})+)\}}")


def sort_set_literals(text: str) -> str:
    """`text` with the items of every `{'x', 'y'}` set literal in sorted order."""

    def _sorted(match: re.Match[str]) -> str:
        items = re.findall(_ITEM, match.group(1))
        return "{" + ", ".join(sorted(items)) + "}"

    return _SET_OF_STRINGS.sub(_sorted, text)


def exception_line(exc: BaseException, limit: int) -> str:
    """`Type: message`, first line only, set literals sorted, at most `limit` characters."""
    first = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return sort_set_literals(first)[:limit]
