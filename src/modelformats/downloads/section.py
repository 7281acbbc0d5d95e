"""The plan's download section resolved under its root: each typed record's paths resolved (symlinks
included) and checked to lie under the root, its hashes parsed, its planned files and total size.

`DownloadSection.from_dict` (deployment.py) checks the plan's JSON; this module only resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelformats.deployment import ConvertStep, DownloadItem, DownloadSection, JoinStep
from modelformats.downloads.report import PlannedFile
from modelformats.errors import UnsafePathError
from modelformats.fetch import Digest

__all__ = [
    "PlannedConvert",
    "PlannedItem",
    "PlannedJoin",
    "escape",
    "planned_files",
    "resolve_section",
    "total_bytes",
    "under",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedItem:
    """A planned item with its local directory resolved, its patterns and its hashes as `Digest`s."""

    spec: DownloadItem
    local_dir: Path
    # The plan's allow_patterns, else the files' own names (escaped).
    patterns: tuple[str, ...]
    hashes: Mapping[str, Digest] = field(default_factory=dict)
    source_dir: Path | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedJoin:
    spec: JoinStep
    output: Path
    parts: tuple[Path, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedConvert:
    spec: ConvertStep
    gguf: Path
    output: Path
    base: Path | None


def under(root: Path, path: Path, what: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePathError(str(path), f"{what} resolves to {resolved}, outside the download root {root}")
    return resolved


def resolve_section(
    section: DownloadSection,
) -> tuple[Path, list[PlannedItem], list[PlannedJoin], list[PlannedConvert]]:
    root = Path(section.root).expanduser().resolve()
    items: list[PlannedItem] = []
    for i, item in enumerate(section.items):
        local_dir = under(root, Path(item.local_dir), f"download.items[{i}].local_dir")
        for path in item.files:
            under(local_dir, local_dir / path, f"{item.repo_id}/{path}")
        items.append(
            PlannedItem(
                spec=item,
                local_dir=local_dir,
                patterns=item.allow_patterns or tuple(escape(p) for p in item.files),
                hashes={path: Digest.parse(text) for path, text in item.hashes.items()},
                source_dir=Path(item.source_dir) if item.source_dir is not None else None,
            )
        )
    joins = [
        PlannedJoin(
            spec=join,
            output=under(root, Path(join.output), f"download.joins[{i}].output"),
            parts=tuple(under(root, Path(p), f"download.joins[{i}].parts") for p in join.parts),
        )
        for i, join in enumerate(section.joins)
    ]
    converts = [
        PlannedConvert(
            spec=step,
            gguf=under(root, Path(step.gguf), f"download.converts[{i}].gguf"),
            output=under(root, Path(step.output), f"download.converts[{i}].output"),
            base=under(root, Path(step.base), f"download.converts[{i}].base") if step.base is not None else None,
        )
        for i, step in enumerate(section.converts)
    ]
    return root, items, joins, converts


def escape(path: str) -> str:
    from modelformats.naming import escape_pattern

    return escape_pattern(path)


def _file_size(item: PlannedItem, path: str) -> int | None:
    size = item.spec.sizes.get(path)
    return item.spec.bytes if size is None and len(item.spec.files) == 1 else size


def total_bytes(items: Sequence[PlannedItem]) -> tuple[int | None, bool]:
    """(bytes, estimated) of every planned file: per item, its file sizes if all known, else its total."""
    total, estimated = 0, False
    for item in items:
        sizes = [_file_size(item, p) for p in item.spec.files]
        known = sum(s for s in sizes if s is not None) if None not in sizes else item.spec.bytes
        if known is None:
            return None, False
        total += known
        estimated = estimated or item.spec.bytes_estimated
    return total, estimated


def planned_files(items: Sequence[PlannedItem]) -> list[PlannedFile]:
    out: list[PlannedFile] = []
    for item in items:
        for path in item.spec.files:
            size = _file_size(item, path)
            out.append(
                PlannedFile(
                    repo_id=item.spec.repo_id,
                    revision=item.spec.revision,
                    path=path,
                    local_path=str(item.local_dir / path),
                    bytes=size,
                )
            )
        listed = {escape(p) for p in item.spec.files}
        for pattern in item.patterns:
            if pattern not in listed:
                out.append(
                    PlannedFile(
                        repo_id=item.spec.repo_id,
                        revision=item.spec.revision,
                        path=pattern,
                        local_path=str(item.local_dir / pattern),
                        bytes=None,
                        optional=True,
                    )
                )
    return out
