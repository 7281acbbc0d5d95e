"""Run a plan's GGUF -> safetensors conversion after download (`modelformats convert`), into its planned
directory; a directory already there is a previous run's, written whole then renamed, and is kept."""

from __future__ import annotations

from collections.abc import Callable

from modelformats.downloads.section import PlannedConvert
from modelformats.errors import InvalidRequestError

__all__ = ["run_conversion"]


def run_conversion(step: PlannedConvert, progress: Callable[[str], None] | None) -> bool:
    """Run the plan's conversion (False: its directory is a previous run's, written whole then renamed)."""
    if step.output.is_dir() and any(step.output.iterdir()):
        return False
    try:
        from modelformats.convert import ConvertProgress, convert_gguf
    except ImportError as exc:  # numpy / gguf: the `gguf` extra
        raise InvalidRequestError(
            f"The plan converts {step.gguf} to safetensors after download, which needs the `gguf` package "
            f"({exc.name or exc} is not installed). Fix: pip install 'modelformats[gguf]' and run the download again."
        ) from None
    # The base model's config.json and tokenizer when the download brought them, else the GGUF's own.
    base = step.base if step.base is not None and (step.base / "config.json").is_file() else None
    shown = [-1]

    def report(done: ConvertProgress) -> None:
        percent = 100 * done.done_bytes // max(1, done.total_bytes)
        if progress is not None and percent // 10 > shown[0]:
            shown[0] = percent // 10
            progress(f"converting {step.gguf.name} -> {step.output}: {percent}%")

    if progress is not None:
        progress(
            f"converting {step.gguf} -> {step.output} ({step.spec.dtype}{', config from ' + str(base) if base else ''})"
        )
    convert_gguf(step.gguf, step.output, dtype=step.spec.dtype, base=base, progress=report)
    return True
