"""Output for people: the answer first, fitted to the terminal; the full reasoning one flag away.

`render_plan(plan)` prints the decision (what, files and bytes, engine and evidence, GPU and price,
the command as a copyable block), a bar per memory term against the GPU budget and the ranked
alternatives, one line each. `render_plan(plan, explain=True)` adds everything else: every file,
the sources and formulas of the memory terms, the engine's evidence, the full reasons and warnings.
Every line fits `width` columns (default: the terminal's, `shutil.get_terminal_size`).

The command block is one flag per line with `\\` continuations, so it pastes into a shell as is.
A single word longer than the line (a long model path) is cut with a backslash-newline and continued
at column 0: the shell removes backslash-newline before it splits words, so the word comes back whole.
Colour is used only when asked (`Style(colour=True)`: a TTY without NO_COLOR, see `use_colour`).

This module is the entry point only: the output is made in `modelformats.rendering` (text helpers, the
command block, the plan's decision lines, its `--explain` sections, the other commands' reports).
"""

from __future__ import annotations

from modelformats.rendering.command import command_block
from modelformats.rendering.plan import render_plan
from modelformats.rendering.reports import render_download, render_gguf_header, render_gpus
from modelformats.rendering.text import Style, terminal_width, use_colour

__all__ = [
    "Style",
    "command_block",
    "render_download",
    "render_gguf_header",
    "render_gpus",
    "render_plan",
    "terminal_width",
    "use_colour",
]
