"""Which GGUF unit a plan takes: quant tags read from names, or from GGUF headers where names say none (or
contradict the bytes); units the engine refuses; then `--quant` exactly, else the only unit, else the first
of the quant order present, else the most bits per weight; and the notes that name what was not chosen."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from modelformats.errors import InvalidRequestError, QuantNotFoundError
from modelformats.formats.base import SelectionContext
from modelformats.gguf.files import GGUFInventory, GGUFUnit
from modelformats.gguf.quant import (
    CONVERT_QUANT_ORDER,
    DEFAULT_QUANT_ORDER,
    QuantTag,
    looks_like_quant,
    parse_quant,
    vocabulary_note,
)
from modelformats.listing import RepoListing

__all__ = ["UnitChoice", "engine_refusals", "naming_notes", "select_unit", "tags_from_headers"]


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitChoice:
    """The unit chosen and the sentence that says which rule chose it."""

    unit: GGUFUnit
    rule: str


def tags_from_headers(listing: RepoListing, inv: GGUFInventory) -> tuple[GGUFInventory, tuple[str, ...]]:
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


def engine_refusals(
    listing: RepoListing, inv: GGUFInventory, refuse: Callable[[str], str | None] | None
) -> dict[str, str]:
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


def naming_notes(inv: GGUFInventory) -> list[str]:
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
