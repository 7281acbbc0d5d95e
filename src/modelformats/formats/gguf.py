"""`GGUFFormat`: which quant to fetch from a GGUF repo, and the tokenizer/config to fetch with it.

Detection: any model `.gguf` (or `.gguf.partXofY` byte part); projectors and imatrix files alone are
not a model. Selection, from the listing only:

- units: single files, complete gguf-split shard sets, byte-split files (joined after download);
  incomplete sets, unknown quant tags and quants the engine refuses are never chosen, and named;
- choice: `--quant` exactly; else a repo with one unit takes it; else the first of the order
  (`--quant-order`, default Q8_0 > Q6_K > Q5_K_M > Q4_K_M) present; else the remaining quant with
  the most bits per weight;
- tokenizer/config: see `modelformats.gguf.source`;
- size: the listing's sizes, else parameters x the quant's bits per weight, marked as an estimate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from modelformats.errors import InvalidRequestError, QuantNotFoundError, TokenizerSourceError
from modelformats.formats.base import (
    BaseFormat,
    CapabilityFloor,
    Detection,
    Exclusion,
    FileSelection,
    JoinPlan,
    SelectionContext,
    ServingFacts,
    TokenizerSource,
)
from modelformats.gguf._vocab import GGUF_PACKAGE_VERSION
from modelformats.gguf.files import SIDE_FILE_RULES, GGUFInventory, GGUFUnit, inventory_gguf
from modelformats.gguf.quant import (
    CONVERT_QUANT_ORDER,
    DEFAULT_QUANT_ORDER,
    QuantTag,
    looks_like_quant,
    parse_quant,
    vocabulary_note,
)
from modelformats.gguf.source import BaseRepo, find_base_repo, find_tokenizer_source
from modelformats.listing import ListingSource, RepoListing
from modelformats.naming import escape_pattern
from modelformats.weightbytes import WeightBytes

__all__ = ["GGUFFormat", "UnitChoice", "select_unit"]

_SIDE_REASONS: Mapping[str, str] = {rule: why for rule, _, why in SIDE_FILE_RULES}
# How each layout is handed to an engine (vLLM 0.23 gguf_loader.py:83-106 and vllm-gguf-plugin 0.0.5
# weights_adapter/default.py:248-264 discover shards from shard 1; neither joins byte parts).
_LAYOUT_NOTES: Mapping[str, str] = {
    "single": "",
    "split": (
        "{label} is split into {n} gguf-split shards; all are fetched and the engine is pointed at shard 1 "
        "({model_file}), from which vLLM and llama.cpp find the others."
    ),
    "parts": (
        "{label} is stored as {n} raw byte parts; after download they are joined, in order, into "
        "{model_file} (no engine loads .partXofY pieces)."
    ),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitChoice:
    """The unit chosen and the sentence that says which rule chose it."""

    unit: GGUFUnit
    rule: str


class GGUFFormat(BaseFormat):
    """GGUF (llama.cpp) files: one quant chosen from many, plus the base model's tokenizer/config."""

    name: ClassVar[str] = "gguf"
    # Below safetensors (50: vLLM's native loader wins when a repo has both); above PyTorch .bin (40),
    # a LoRA adapter (5) and non-servable leftovers (ONNX 10, Meta consolidated 11). docs/formats.md.
    priority: ClassVar[int] = 45
    description: ClassVar[str] = "GGUF (llama.cpp) quantized weights"
    serving: ClassVar[ServingFacts] = ServingFacts(
        engines=("vllm", "vllm+modelformats-plugin", "llamacpp"),
        container="gguf-file",
        vllm_quantization="gguf",
        capability_floor=CapabilityFloor(
            key="gguf",
            minimum=(6, 0),
            source=(
                "vllm 0.23.0 vllm/model_executor/layers/quantization/gguf.py:71 GGUFConfig.get_min_capability; "
                "vllm-gguf-plugin 0.0.5 vllm_gguf_plugin/quantization/config.py:46"
            ),
            reason="vLLM's GGUF dequantization kernels",
        ),
        base_model_routes=True,
        converts_to="safetensors",
    )

    def detect(self, listing: RepoListing) -> Detection | None:
        inv = inventory_gguf(listing.paths)
        if not inv.units:
            return None
        labels = sorted({u.label for u in inv.units})
        evidence = [f"{sum(len(u.files) for u in inv.units)} GGUF file(s) in {len(inv.units)} quant unit(s): "
                    + ", ".join(labels)]  # fmt: skip
        evidence += [f"{len(paths)} {rule} file(s) set aside" for rule, paths in inv.side_files.items()]
        return Detection(
            format=self.name,
            evidence=tuple(evidence),
            quantization="gguf",
            # The inventory travels with the claim, so selecting files does not take it again.
            details={"units": len(inv.units), "quants": labels, "inventory": inv},
        )

    def select_files(self, listing: RepoListing, detection: Detection, context: SelectionContext) -> FileSelection:
        found = detection.details.get("inventory")
        inv, warnings = _tags_from_headers(
            listing, found if isinstance(found, GGUFInventory) else inventory_gguf(listing.paths)
        )
        notes: list[str] = []
        refusals = _refusals(listing, inv, context.refuse_quant)
        choice = select_unit(listing, inv, context, refusals)
        unit, tag = choice.unit, choice.unit.quant
        assert tag is not None
        notes.append(choice.rule)
        notes += [
            f"Not chosen: {u.label} ({u.model_file}) — refused by the engine: {refusals[u.model_file]}."
            for u in inv.units
            if u.model_file in refusals
        ]
        notes += _naming_notes(inv)
        layout = _LAYOUT_NOTES[unit.kind]
        if layout:
            notes.append(layout.format(label=tag.label, n=_pieces(unit), model_file=unit.model_file))

        tokenizer: TokenizerSource | None = None
        own_files: tuple[str, ...] = ()
        base_repo: str | None = None
        try:
            base = find_tokenizer_source(
                listing, context.source, explicit=context.tokenizer_from, model_file=unit.model_file
            )
        except TokenizerSourceError:
            # An explicit --tokenizer-from that is wrong is an error for every engine.
            if context.needs_tokenizer or context.tokenizer_from:
                raise
            # The engine reads the GGUF's own tokenizer and chat template: no tokenizer repo is needed.
            base = BaseRepo(repo_id=listing.repo_id, rule="gguf", reason="the GGUF itself", listing=listing)
            notes.append(
                "No tokenizer/config repo was found; the engine reads the tokenizer and chat template embedded "
                "in the GGUF, so none is needed."
            )
        else:
            notes += base.skipped
            tokenizer, own_files = _tokenizer(listing, base, notes)
            base_repo = None if base.is_self else base.repo_id
            if not context.needs_tokenizer:
                notes.append(
                    "The engine reads the tokenizer and chat template embedded in the GGUF; the small "
                    "tokenizer/config files are fetched as well, so the same download also serves vLLM."
                )
        size, estimated, basis = _unit_size(listing, inv, unit, tag, base, source=context.source)
        files = (*unit.files, *own_files)
        size, estimated, basis = _add_own_files(listing, own_files, size, estimated, basis)
        joins = tuple(_join_entry(listing, j) for j in unit.joins)
        excluded = _exclusions(listing, inv, unit, refusals, own_files)
        notes += _projector_notes(inv, base)
        return FileSelection(
            files=files,
            weight_files=unit.files,
            allow_patterns=tuple(escape_pattern(p) for p in files),
            download_bytes=size,
            bytes_estimated=estimated,
            bytes_basis=basis,
            tokenizer=tokenizer,
            excluded=excluded,
            notes=tuple(notes),
            quant=tag.label,
            model_file=unit.model_file,
            joins=joins,
            layout=unit.kind,
            base_repo=base_repo,
            needs_projector=_needs_projector(inv, base),
            warnings=tuple(w for w in warnings if w.startswith(f"{unit.model_file} ")),
            weight_bytes=_weight_bytes(tag),
            details={
                "quant_name": tag.name,
                "tensor_type": tag.tensor_type,
                "bits_per_weight": tag.bits_per_weight,
                "shards": unit.shard_count,
                "tokenizer_rule": base.rule if base_repo is not None or base.is_self else None,
                "projectors": list(inv.side_files.get("projector", ())),
            },
        )


def _weight_bytes(tag: QuantTag) -> WeightBytes:
    """Bytes per weight of the quant's tensor type, from the `gguf` package's block sizes (Q8_0: 34 B per 32)."""
    bpw = tag.bits_per_weight / 8
    mixed = tag.name != tag.tensor_type
    return WeightBytes(
        bytes_per_weight=bpw,
        basis=(
            f"GGUF {tag.label}: {tag.tensor_type} stores {tag.bits_per_weight:g} bits per weight (gguf "
            f"{GGUF_PACKAGE_VERSION} GGML_QUANT_SIZES)"
            + (
                f"; a mixed quant: some tensors use another type, so {tag.tensor_type} for all is an assumption"
                if mixed
                else ""
            )
        ),
        assumed=mixed,
    )


# --- choice ----------------------------------------------------------------------------------------


def _tags_from_headers(listing: RepoListing, inv: GGUFInventory) -> tuple[GGUFInventory, tuple[str, ...]]:
    """Units whose name carries no quant tag take it from their GGUF header's general.file_type; so do units
    whose name says a plain quant the header contradicts (the header describes the bytes), with a warning."""
    units = []
    warnings: list[str] = []
    for unit in inv.units:
        header = listing.gguf_headers.get(unit.model_file)
        summary = header.get("summary") if header is not None else None
        name = summary.get("file_type_name") if isinstance(summary, Mapping) else None
        said = parse_quant(name) if isinstance(name, str) else None
        tag = None
        if unit.quant is None and said is not None and not looks_like_quant(unit.tag_text):
            tag = said
        elif unit.quant is not None and said is not None and unit.quant.label == unit.quant.name != said.name:
            # Only plain names are compared: UD-/i1- prefixes and _XL suffixes name mixes the header does not.
            tag = said
            warnings.append(
                f"{unit.model_file} is named {unit.quant.label}, but its GGUF header says general.file_type = "
                f"{said.label}; the plan uses the header's {said.label}. Report the mislabelled file to the repo."
            )
        units.append(unit if tag is None else replace(unit, quant=tag, tag_text=tag.label))
    return replace(inv, units=tuple(units)), tuple(warnings)


def _refusals(listing: RepoListing, inv: GGUFInventory, refuse: Callable[[str], str | None] | None) -> dict[str, str]:
    """model_file -> why the engine refuses the unit (its main tensor type, or any type its header lists)."""
    out: dict[str, str] = {}
    if refuse is None:
        return out
    for unit in inv.units:
        if unit.quant is None:
            continue
        types = [unit.quant.tensor_type]
        header = listing.gguf_headers.get(unit.model_file)
        if header is not None and isinstance(header.get("tensor_types"), Mapping):
            types += [t for t in header["tensor_types"] if t not in types]
        for t in types:
            why = refuse(t)
            if why:
                out[unit.model_file] = f"{t}: {why}"
                break
    return out


def _wanted(text: str, what: str) -> QuantTag:
    tag = parse_quant(text)
    if tag is None:
        raise InvalidRequestError(
            f"{what} {text!r} is not a GGUF quant name: not in {vocabulary_note()} (with an optional "
            "UD-/i1- prefix or _L/_XL suffix). Use a name such as Q8_0, Q4_K_M, IQ4_XS or UD-Q4_K_XL."
        )
    return tag


def _matches(wanted: QuantTag, units: Sequence[GGUFUnit]) -> list[GGUFUnit]:
    """Units whose label is `wanted` exactly; else those whose quant (without prefix/suffix words) is."""
    exact = [u for u in units if u.quant is not None and u.quant.label == wanted.label]
    if exact:
        return exact
    return [u for u in units if u.quant is not None and u.quant.name == wanted.label]


def select_unit(
    listing: RepoListing, inv: GGUFInventory, context: SelectionContext, refusals: Mapping[str, str]
) -> UnitChoice:
    """Choose one unit by the module docstring's rules; raise QuantNotFoundError naming what is there."""
    choosable = [u for u in inv.units if u.quant is not None and u.complete and u.model_file not in refusals]
    available = [u.label for u in sorted(choosable, key=_rank, reverse=True)]
    if context.quant is not None:
        unknown = [u for u in inv.units if u.quant is None and u.tag_text.upper() == context.quant.upper()]
        if unknown:
            rule = (
                f"{unknown[0].model_file} is tagged {unknown[0].tag_text}, which is not a quant type of "
                f"{vocabulary_note()}, so it is never chosen"
            )
            raise QuantNotFoundError(listing.repo_id, [context.quant], available, rule=rule)
        wanted = _wanted(context.quant, "--quant")
        hits = _matches(wanted, choosable)
        if len(hits) == 1:
            return UnitChoice(
                unit=hits[0], rule=f"Chose {hits[0].label} ({hits[0].model_file}): requested with --quant."
            )
        if len(hits) > 1:
            labels = ", ".join(sorted(u.label for u in hits))
            raise InvalidRequestError(
                f"Quant {wanted.label} matches several files in {listing.repo_id!r}: {labels}. "
                "Pass the full label with --quant."
            )
        raise QuantNotFoundError(listing.repo_id, [wanted.label], available, rule=_why_absent(wanted, inv, refusals))
    if not choosable:
        raise QuantNotFoundError(
            listing.repo_id,
            ["any"],
            [],
            rule="no complete unit with a known quant the engine loads; " + _unavailable_summary(inv, refusals),
        )
    if len(inv.units) == 1:
        unit = choosable[0]
        return UnitChoice(unit=unit, rule=f"Chose {unit.label} ({unit.model_file}): the only GGUF in the repo.")
    if context.quant_order is not None:
        order, which = context.quant_order, "--quant-order"
    elif context.for_conversion:
        order, which = CONVERT_QUANT_ORDER, "the conversion's order (unquantized first)"
    else:
        order, which = DEFAULT_QUANT_ORDER, "the default order"
    for text in order:
        hits = sorted(_matches(_wanted(text, "--quant-order entry"), choosable), key=_rank, reverse=True)
        if hits:
            unit = hits[0]
            rule = f"Chose {unit.label} ({unit.model_file}): the first of {which} {' > '.join(order)} present."
            return UnitChoice(unit=unit, rule=rule)
    unit = max(choosable, key=_rank)
    assert unit.quant is not None
    rule = (
        f"Chose {unit.label} ({unit.model_file}): none of {which} {' > '.join(order)} is available, "
        f"and it has the most bits per weight ({unit.quant.bits_per_weight:g}) of the loadable quants."
    )
    return UnitChoice(unit=unit, rule=rule)


def _rank(unit: GGUFUnit) -> tuple[float, int, str]:
    assert unit.quant is not None
    return unit.quant.rank


def _why_absent(wanted: QuantTag, inv: GGUFInventory, refusals: Mapping[str, str]) -> str:
    present = _matches(wanted, [u for u in inv.units if u.quant is not None])
    for unit in present:
        if unit.model_file in refusals:
            return f"{unit.model_file} is refused by the engine: {refusals[unit.model_file]}"
        if not unit.complete:
            return f"{unit.model_file} is incomplete: {len(unit.missing)} of its files are not in the listing"
    return "exact match on the quant name, case-insensitive"


def _unavailable_summary(inv: GGUFInventory, refusals: Mapping[str, str]) -> str:
    parts = [f"{u.label}: refused ({refusals[u.model_file]})" for u in inv.units if u.model_file in refusals]
    parts += [f"{u.label}: incomplete" for u in inv.units if not u.complete]
    parts += [
        f"{u.model_file}: " + ("unknown quant" if looks_like_quant(u.tag_text) else "no quant tag, no header read")
        for u in inv.units
        if u.quant is None
    ]
    return "; ".join(parts) or "no GGUF units"


def _naming_notes(inv: GGUFInventory) -> list[str]:
    notes: list[str] = []
    renamed = sorted(
        {f"{u.quant.raw} -> {u.quant.label}" for u in inv.units if u.quant and u.quant.raw != u.quant.label}
    )
    if renamed:
        notes.append("Quant tags were read case-insensitively: " + ", ".join(renamed) + ".")
    untagged = sorted(u.model_file for u in inv.units if u.quant is None and not looks_like_quant(u.tag_text))
    if untagged:
        notes.append(
            f"Not chosen: {', '.join(untagged)} — no quant tag in the name and no GGUF header was read "
            "(a listing recorded with `modelformats record` carries the header)."
        )
    unknown = sorted({u.tag_text for u in inv.units if u.quant is None and looks_like_quant(u.tag_text)})
    if unknown:
        notes.append(
            f"Not chosen: {', '.join(unknown)} — not a quant type of {vocabulary_note()} (ARM repacks "
            "such as Q4_0_4_4 are not), so no engine here is known to load it."
        )
    incomplete = [u for u in inv.units if not u.complete]
    for u in incomplete:
        notes.append(
            f"Not chosen: {u.label} ({u.model_file}) is incomplete — {len(u.missing)} of its files are "
            f"missing from the listing (first: {u.missing[0]}); a shard set is all or nothing."
        )
    return notes


# --- tokenizer and sizes ---------------------------------------------------------------------------


def _tokenizer(
    listing: RepoListing, base: BaseRepo, notes: list[str]
) -> tuple[TokenizerSource | None, tuple[str, ...]]:
    """The TokenizerSource (None when the GGUF repo is its own source) and files fetched from this repo."""
    files, patterns, guessed = base.tokenizer_files()
    if base.is_self:
        notes.append(f"Tokenizer and config: {base.reason}.")
        return None, files
    text = f"Tokenizer and config from {base.repo_id}: {base.reason}."
    if base.unavailable is not None:
        text += f" Its files are not known ({base.unavailable}), so the standard names are requested"
    elif guessed:
        text += " Its listing is partial, so the standard tokenizer/config names are also requested"
    if guessed:
        text += " (snapshot_download skips the ones that do not exist)."
    notes.append(text + " Only tokenizer and config files are fetched from it, never its weights.")
    size: int | None = None
    if base.listing is not None and base.listing.complete:
        size = base.listing.total_size(files)[0]
    return (
        TokenizerSource(
            repo_id=base.repo_id,
            files=files,
            allow_patterns=patterns,
            reason=base.reason,
            revision=base.listing.revision if base.listing is not None else None,
            download_bytes=size,
        ),
        (),
    )


def _unit_size(
    listing: RepoListing,
    inv: GGUFInventory,
    unit: GGUFUnit,
    tag: QuantTag,
    base: BaseRepo,
    *,
    source: ListingSource | None,
) -> tuple[int | None, bool, str]:
    """(bytes, estimated, basis) of the unit's files."""
    total, exact = listing.total_size(unit.files)
    if total is not None:
        return total, not exact, "listing sizes" + ("" if exact else " (Hub display, rounded to ±0.5 %)")
    basis = _parameters(listing, inv, unit, base, source=source)
    if basis is None:
        return None, True, "unknown: the listing has no size and no parameter count was found"
    params, where = basis
    size = round(params * tag.bits_per_weight / 8)
    return (
        size,
        True,
        f"estimate: {params:,} parameters ({where}) x {tag.bits_per_weight:g} bits per weight "
        f"({tag.tensor_type}, the quant's main tensor type) / 8",
    )


def _parameters(
    listing: RepoListing, inv: GGUFInventory, unit: GGUFUnit, base: BaseRepo, *, source: ListingSource | None
) -> tuple[int, str] | None:
    """The model's parameter count and where it came from: the GGUF's own metadata first; then the
    safetensors summary of the tokenizer/config repo, or (when that was given with --tokenizer-from and
    is unavailable or has none) of the base repo the search finds; then other quants' sizes."""
    from modelformats.traits import traits_from_gguf_header

    header = listing.gguf_headers.get(unit.model_file)
    headers = [(unit.model_file, header)] if header is not None else []
    headers += [(p, h) for p, h in sorted(listing.gguf_headers.items()) if p != unit.model_file]
    for path, h in headers:
        # traits_from_gguf_header drops the count of a gguf-split shard (it counts that shard only).
        count = traits_from_gguf_header(h, origin=path).params_total
        if count is not None:
            return count, f"the GGUF header of {path}"
    total = (listing.gguf or {}).get("total")
    if isinstance(total, int) and total > 0:
        return total, f"the Hub's gguf summary of {listing.repo_id}"
    bases = [base]
    if base.rule == "explicit":
        # --tokenizer-from names where the tokenizer comes from, not necessarily the model's own repo.
        found = find_base_repo(listing, source, model_file=unit.model_file)
        bases += [found] if found is not None else []
    for b in bases:
        if b.listing is not None and b.listing.safetensors is not None and b.listing.safetensors.total > 0:
            return b.listing.safetensors.total, f"the safetensors summary of {b.repo_id}"
    sized = []
    for other in inv.units:
        size, _ = listing.total_size(other.files)
        if other.quant is not None and other.complete and size:
            sized.append((other.quant.bits_per_weight, size, other))
    if sized:
        bpw, size, other = max(sized, key=lambda t: (t[0], t[1]))
        params = round(size * 8 / bpw)
        return params, f"inferred from {other.label}'s {size:,} bytes at {bpw:g} bits per weight"
    return None


def _add_own_files(
    listing: RepoListing, own: tuple[str, ...], size: int | None, estimated: bool, basis: str
) -> tuple[int | None, bool, str]:
    if not own or size is None:
        return size, estimated, basis
    extra, exact = listing.total_size(own)
    if extra is None:
        unknown = [p for p in own if (f := listing.get(p)) is None or f.size is None]
        return (
            size,
            True,
            f"{basis}; {len(unknown)} small tokenizer/config file(s) of unknown size not counted",
        )
    return size + extra, estimated or not exact, basis


def _join_entry(listing: RepoListing, join: Mapping[str, Any]) -> JoinPlan:
    parts = tuple(join["parts"])
    total, exact = listing.total_size(parts)
    # Only exact sizes can verify a join; display sizes are rounded.
    return JoinPlan(output=str(join["output"]), parts=parts, expected_bytes=total if exact else None)


def _exclusions(
    listing: RepoListing,
    inv: GGUFInventory,
    chosen: GGUFUnit,
    refusals: Mapping[str, str],
    own_files: tuple[str, ...],
) -> tuple[Exclusion, ...]:
    groups: dict[str, list[str]] = defaultdict(list)
    for unit in inv.units:
        if unit is chosen:
            continue
        if unit.quant is None and not looks_like_quant(unit.tag_text):
            reason = "no quant tag in the name and no GGUF header read; never chosen"
        elif unit.quant is None:
            reason = "unknown quant tag (not in the gguf vocabulary); never chosen"
        elif not unit.complete:
            reason = "incomplete shard or part set; never chosen"
        elif unit.model_file in refusals:
            reason = f"refused by the engine ({refusals[unit.model_file]})"
        else:
            reason = "other quants, not chosen"
        groups[reason].extend(unit.files)
    for rule, paths in inv.side_files.items():
        groups[_SIDE_REASONS[rule]].extend(paths)
    if inv.unrecognised:
        groups["GGUF-like names in no known layout (e.g. .gguf-split-a); not read"].extend(inv.unrecognised)
    accounted = {p for paths in groups.values() for p in paths} | set(chosen.files) | set(own_files)
    rest = [p for p in listing.paths if p not in accounted]
    if rest:
        groups["not needed to serve (docs, repo metadata, other formats)"].extend(rest)
    return tuple(Exclusion(reason=r, paths=tuple(p)) for r, p in groups.items())


def _needs_projector(inv: GGUFInventory, base: BaseRepo) -> bool:
    config = base.listing.config if base.listing is not None else None
    return bool(inv.side_files.get("projector")) and isinstance(config, Mapping) and "vision_config" in config


def _projector_notes(inv: GGUFInventory, base: BaseRepo) -> list[str]:
    projectors = inv.side_files.get("projector", ())
    if not projectors:
        return []
    note = f"Projector {', '.join(projectors)} is not fetched: the plan serves the language model."
    if _needs_projector(inv, base):
        note += (
            f" The config of {base.repo_id} is multimodal (vision_config), and vLLM then requires an mmproj "
            "file next to the GGUF (vllm 0.23.0 gguf_loader.py:357-362, 388-395): fetch it, or use a "
            "text-only config."
        )
    return [note]


def _pieces(unit: GGUFUnit) -> int:
    return unit.shard_count if unit.kind == "split" else len(unit.files)
