"""A command as lines that paste into a shell: one flag per line with `\\` continuations; a word longer than
the line (a long model path) is cut with a backslash-newline and continued at column 0, which the shell
removes before it splits words, so the word comes back whole."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

__all__ = ["command_block"]


def _split_word(word: str, first_room: int, width: int) -> list[str]:
    """Pieces of one shell word: the first fits `first_room`, the others `width`, each but the last
    followed by a backslash (so one column is kept for it). Prefers a cut after `/` or `-`."""
    pieces = []
    room = first_room
    while len(word) > room:
        cut = room - 1
        soft = max(word.rfind("/", 0, cut), word.rfind("-", 0, cut))
        if soft >= cut // 2:
            cut = soft + 1
        pieces.append(word[:cut] + "\\")
        word = word[cut:]
        room = width - 2  # " \" may follow the last piece
    pieces.append(word)
    return pieces


def _groups(argv: Sequence[str]) -> list[list[str]]:
    """[program and its leading words], then each flag with the values that follow it."""
    groups: list[list[str]] = []
    for i, arg in enumerate(argv):
        if i == 0 or (arg.startswith("-") and len(arg) > 1) or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def command_block(
    argv: Sequence[str], width: int, *, indent: int = 2, env: Mapping[str, str] | None = None
) -> list[str]:
    """The command as lines that paste into a shell: one flag per line, `\\` continuations, none wider
    than `width`. The program, a subcommand and a positional path share the first line."""
    words = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    groups = _groups(argv)
    if groups and len(groups[0]) > 1:
        lead = groups[0]
        # `vllm serve /models/x`: program + subcommand, then the path on its own line.
        groups = [words + lead, *groups[1:]]
    elif words:
        groups = [words + (groups[0] if groups else []), *groups[1:]]
    lines: list[str] = []
    for n, group in enumerate(groups):
        pad = " " * (indent if n == 0 else indent + 2)
        last = n == len(groups) - 1
        tail = "" if last else " \\"
        text = " ".join(shlex.quote(w) for w in group)
        if len(pad) + len(text) + len(tail) <= width:
            lines.append(pad + text + tail)
            continue
        # Too long: the words go on as far as they fit, a word that cannot fit is cut with a
        # backslash-newline and continues at column 0 (the shell joins it back).
        line = pad
        for k, word in enumerate(group):
            quoted = shlex.quote(word)
            end = tail if k == len(group) - 1 else ""
            sep = "" if line == pad else " "
            if len(line) + len(sep) + len(quoted) + len(end) <= width or quoted != word:
                line += sep + quoted + end
                continue
            # Room for the tail too: a word that fits only without it is still cut (never repeated).
            pieces = _split_word(word, width - len(line) - len(sep) - len(end), width)
            lines.append(line + sep + pieces[0])
            lines += pieces[1:-1]
            line = pieces[-1] + end
        lines.append(line)
    return lines
