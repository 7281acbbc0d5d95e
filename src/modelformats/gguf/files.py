"""GGUF files of a repo grouped into units an engine loads as one model.

A unit is one quant in one of three layouts (file-name conventions of llama.cpp and of uploaders,
i.e. listing metadata):

- ``single``: ``name-Q8_0.gguf``;
- ``split``: llama.cpp gguf-split shards ``name-Q8_0-00001-of-00003.gguf`` (any digit width). All or
  nothing: a set with a shard missing is incomplete and never chosen;
- ``parts``: raw byte splits ``name.Q8_0.gguf.part1of2`` (mradermacher, TheBloke's old uploads),
  concatenated in order after download into ``name.Q8_0.gguf``.

Shards may also be byte-split (``x-00001-of-00002.gguf.part1of2``): the parts are joined first, then
the result is a shard. Per-quant sub-folders (unsloth's ``DeepSeek-R1-Q4_K_M/...``) are read the same
way; when a file name carries no tag, the folder's name is tried. Projectors (``mmproj``), importance
matrices (``imatrix``) and draft heads are not models and are set aside with the reason.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelformats.gguf.quant import QuantTag, find_quant, looks_like_quant
from modelformats.naming import ShardName, parse_shard_name

__all__ = [
    "SIDE_FILE_RULES",
    "GGUFInventory",
    "GGUFUnit",
    "inventory_gguf",
    "is_byte_part",
    "is_gguf_path",
]

# Files that are GGUF-related but not a model to serve: (rule name, pattern on the lower-cased file
# name, why). Same exclusions as llama.cpp's `-hf` resolver (common/download.cpp: mmproj, imatrix,
# mtp-, eagle3-).
SIDE_FILE_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "projector",
        re.compile(r"mmproj"),
        "multimodal projector (mmproj): vision weights, not a language model; fetched only for multimodal serving",
    ),
    (
        "imatrix",
        re.compile(r"(?:imatrix.*\.(?:dat|gguf)$|\.imatrix$)"),
        "importance matrix (imatrix): calibration data used to make the quants, not needed to serve",
    ),
    (
        "draft",
        re.compile(r"^(?:mtp|eagle3)-.*\.gguf"),
        "speculative-decoding draft head (mtp-/eagle3-), not the main model",
    ),
)

_PART = re.compile(r"^(?P<output>.+\.gguf)\.part(?P<index>\d+)of(?P<total>\d+)$", re.IGNORECASE)
_GGUF = re.compile(r"\.gguf$", re.IGNORECASE)
# Anything that mentions gguf in its name but fits no layout above (e.g. `x.gguf-split-a`).
_GGUF_LIKE = re.compile(r"\.gguf", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True, slots=True)
class GGUFUnit:
    """One loadable model: a single file, a shard set or a byte-split file."""

    kind: str  # "single" | "split" | "parts"
    # Repo paths to fetch, in load order (shard order, part order).
    files: tuple[str, ...]
    # The path an engine is pointed at: the file, shard 1, or the joined output of byte parts.
    model_file: str
    quant: QuantTag | None
    # The text the tag was read from (for unknown tags, what could not be parsed).
    tag_text: str
    # Expected files absent from the listing (split shards or byte parts).
    missing: tuple[str, ...] = ()
    # Byte-split files to concatenate after download: {"output": path, "parts": [paths]}.
    joins: tuple[Mapping[str, object], ...] = ()
    shard_count: int = 1

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def label(self) -> str:
        return self.quant.label if self.quant is not None else self.tag_text

    @property
    def folder(self) -> str:
        return self.model_file.rpartition("/")[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class GGUFInventory:
    """Every GGUF-related file of a listing, sorted into units and side files."""

    units: tuple[GGUFUnit, ...]
    # rule name -> paths (see SIDE_FILE_RULES)
    side_files: Mapping[str, tuple[str, ...]]
    # GGUF-looking names that fit no layout.
    unrecognised: tuple[str, ...]

    @property
    def files(self) -> tuple[str, ...]:
        """Every path this inventory accounts for."""
        out = [p for u in self.units for p in u.files]
        out += [p for paths in self.side_files.values() for p in paths]
        return (*out, *self.unrecognised)


def is_byte_part(path: str) -> bool:
    """A raw byte piece (`x.gguf.part1of2`): not a GGUF until its pieces are joined."""
    return _PART.match(path.rsplit("/", 1)[-1]) is not None


def is_gguf_path(path: str) -> bool:
    """A model GGUF or a byte part of one (side files such as mmproj excluded)."""
    name = path.rpartition("/")[2]
    return bool(_GGUF.search(name) or _PART.match(name)) and _side_rule(name) is None


def _side_rule(name: str) -> str | None:
    lower = name.lower()
    for rule, pattern, _ in SIDE_FILE_RULES:
        if pattern.search(lower):
            return rule
    return None


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _quant_for(path: str) -> tuple[QuantTag | None, str]:
    folder, _, name = path.rpartition("/")
    tag, text = find_quant(name)
    if tag is None and folder and not looks_like_quant(text):
        # unsloth's per-quant folders (`DeepSeek-R1-Q4_K_M/<shards>`): the folder names the quant when
        # the file does not; a file's own tag always wins (folder and file names can disagree).
        folder_tag, _ = find_quant(folder.rpartition("/")[2])
        if folder_tag is not None:
            return folder_tag, folder_tag.raw
    return tag, text


@dataclass(frozen=True, kw_only=True, slots=True)
class _Whole:
    """A .gguf file as the engine will see it: fetched as is, or joined from byte parts."""

    files: tuple[str, ...]
    join: Mapping[str, object] | None = None
    missing: tuple[str, ...] = ()


def inventory_gguf(paths: Iterable[str]) -> GGUFInventory:
    """Group a listing's paths into GGUF units (complete or not) and side files. A pure function."""
    side: dict[str, list[str]] = defaultdict(list)
    unrecognised: list[str] = []
    parts: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
    whole: dict[str, _Whole] = {}
    for path in sorted(paths):
        name = path.rpartition("/")[2]
        rule = _side_rule(name)
        if rule is not None:
            side[rule].append(path)
        elif m := _PART.match(name):
            total, index = int(m["total"]), int(m["index"])
            if 1 <= index <= total:
                parts[(_join(path.rpartition("/")[0], m["output"]), total)][index] = path
            else:
                unrecognised.append(path)
        elif _GGUF.search(name):
            whole[path] = _Whole(files=(path,))
        elif _GGUF_LIKE.search(name):
            unrecognised.append(path)
    whole.update(_joined_parts(parts))

    units: list[GGUFUnit] = []
    shard_sets: dict[tuple[str, str, int], dict[int, ShardName]] = defaultdict(dict)
    for path, item in sorted(whole.items()):
        shard = _parse_shard(path)
        if shard is not None:
            shard_sets[(shard.folder, shard.stem, shard.total)][shard.index] = shard
            continue
        tag, text = _quant_for(path)
        units.append(
            GGUFUnit(
                kind="parts" if item.join is not None else "single",
                files=item.files,
                model_file=path,
                quant=tag,
                tag_text=text,
                missing=item.missing,
                joins=(item.join,) if item.join is not None else (),
            )
        )
    units += [_split_unit(found, whole) for found in shard_sets.values()]
    units.sort(key=lambda u: u.model_file)
    return GGUFInventory(
        units=tuple(units),
        side_files={k: tuple(v) for k, v in sorted(side.items())},
        unrecognised=tuple(unrecognised),
    )


def _joined_parts(parts: Mapping[tuple[str, int], Mapping[int, str]]) -> dict[str, _Whole]:
    out: dict[str, _Whole] = {}
    for (output, total), found in parts.items():
        ordered = tuple(found[i] for i in sorted(found))
        missing = tuple(f"{output}.part{i}of{total}" for i in range(1, total + 1) if i not in found)
        out[output] = _Whole(files=ordered, join={"output": output, "parts": list(ordered)}, missing=missing)
    return out


def _parse_shard(path: str) -> ShardName | None:
    """A gguf-split shard name (`-00001-of-00003.gguf`, any width and case), else None."""
    shard = parse_shard_name(path)
    return shard if shard is not None and _GGUF.fullmatch(shard.ext) else None


def _split_unit(found: Mapping[int, ShardName], whole: Mapping[str, _Whole]) -> GGUFUnit:
    """All shards of one gguf-split set, in order; absent ones make the unit incomplete."""
    first = found[min(found)]
    files: list[str] = []
    joins: list[Mapping[str, object]] = []
    missing: list[str] = []
    for i in range(1, first.total + 1):
        if i not in found:
            missing.append(first.sibling(i))
            continue
        item = whole[found[i].path]
        files.extend(item.files)
        missing.extend(item.missing)
        if item.join is not None:
            joins.append(item.join)
    tag, text = _quant_for(first.path)
    return GGUFUnit(
        kind="split",
        files=tuple(files),
        model_file=first.sibling(1),
        quant=tag,
        tag_text=text,
        missing=tuple(missing),
        joins=tuple(joins),
        shard_count=first.total,
    )
