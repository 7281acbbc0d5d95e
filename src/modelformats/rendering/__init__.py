"""The parts of `modelformats.render`, one job each; `modelformats.render` re-exports what callers use.

text.py     terminal width, colour, wrapping and clipping, sizes, shard-name compression
command.py  a command as lines that paste into a shell
plan.py     the plan's decision lines: what, files, engine, GPU, memory bars, command, alternatives
explain.py  what `--explain` adds: every file, memory sources, engine evidence, reasons, warnings
reports.py  the other commands' output: download report, GPU catalogue, GGUF header
"""
