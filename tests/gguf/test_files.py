"""GGUF files grouped into units: singles, gguf-split shard sets, byte parts, sub-folders, side files."""

from __future__ import annotations

from modelformats.gguf.files import inventory_gguf, is_gguf_path


def _units(paths):
    return {u.label: u for u in inventory_gguf(paths).units}


def test_split_shards_any_width_all_or_nothing():
    units = _units(
        [
            "m-Q8_0-01-of-03.gguf",
            "m-Q8_0-02-of-03.gguf",
            "m-Q8_0-03-of-03.gguf",
            "m-Q4_K_M-00001-of-00003.gguf",
            "m-Q4_K_M-00003-of-00003.gguf",
        ]
    )
    q8 = units["Q8_0"]
    assert (q8.kind, q8.complete, q8.shard_count, q8.model_file) == ("split", True, 3, "m-Q8_0-01-of-03.gguf")
    assert q8.files == ("m-Q8_0-01-of-03.gguf", "m-Q8_0-02-of-03.gguf", "m-Q8_0-03-of-03.gguf")
    q4 = units["Q4_K_M"]
    assert q4.missing == ("m-Q4_K_M-00002-of-00003.gguf",)
    assert not q4.complete


def test_missing_first_shard_still_names_shard_one():
    unit = _units(["d/m-Q8_0-00002-of-00002.gguf"])["Q8_0"]
    assert unit.model_file == "d/m-Q8_0-00001-of-00002.gguf"
    assert unit.missing == ("d/m-Q8_0-00001-of-00002.gguf",)


def test_byte_parts_join_in_numeric_order():
    paths = [f"M.Q8_0.gguf.part{i}of10" for i in range(1, 11)]
    unit = _units(reversed(paths))["Q8_0"]
    assert unit.kind == "parts"
    assert unit.files == tuple(paths)
    assert unit.model_file == "M.Q8_0.gguf"
    assert unit.joins == ({"output": "M.Q8_0.gguf", "parts": paths},)
    incomplete = _units(paths[:3])["Q8_0"]
    assert incomplete.missing[0] == "M.Q8_0.gguf.part4of10"


def test_byte_split_shards():
    """gguf-split shards that are themselves byte-split: joined first, then a shard set."""
    paths = [f"m-Q8_0-0000{s}-of-00002.gguf.part{p}of2" for s in (1, 2) for p in (1, 2)]
    unit = _units(paths)["Q8_0"]
    assert (unit.kind, unit.complete, unit.model_file) == ("split", True, "m-Q8_0-00001-of-00002.gguf")
    assert [j["output"] for j in unit.joins] == ["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]


def test_sub_folder_names_the_quant_when_the_file_does_not():
    unit = _units(["DeepSeek-R1-Q4_K_M/model-00001-of-00001.gguf"])["Q4_K_M"]
    assert unit.kind == "split"
    # The file's own tag wins over the folder's (unsloth renamed Q2_K_L <-> Q2_K_XL folders).
    assert set(_units(["DeepSeek-R1-Q2_K_L/DeepSeek-R1-Q2_K_XL-00001-of-00001.gguf"])) == {"Q2_K_XL"}


def test_side_files_and_unrecognised():
    inv = inventory_gguf(
        [
            "mmproj-model-f16.gguf",
            "Meta-Llama-3.1-8B-Instruct.imatrix",
            "imatrix_unsloth.dat",
            "imatrix.gguf",
            "mtp-model-Q8_0.gguf",
            "old.Q6_K.gguf-split-a",
            "model-Q8_0.gguf",
            "README.md",
        ]
    )
    assert dict(inv.side_files) == {
        "draft": ("mtp-model-Q8_0.gguf",),
        "imatrix": ("Meta-Llama-3.1-8B-Instruct.imatrix", "imatrix.gguf", "imatrix_unsloth.dat"),
        "projector": ("mmproj-model-f16.gguf",),
    }
    assert inv.unrecognised == ("old.Q6_K.gguf-split-a",)
    assert [u.model_file for u in inv.units] == ["model-Q8_0.gguf"]


def test_is_gguf_path():
    assert is_gguf_path("a/b-Q8_0.GGUF")
    assert is_gguf_path("x.gguf.part1of2")
    assert not is_gguf_path("mmproj-f16.gguf")
    assert not is_gguf_path("x.safetensors")


def test_shard_names_keep_their_spelling():
    """Upper-case extensions and `-OF-` are shards too; sibling names keep the case and widths as written."""
    units = _units(["M-Q8_0-001-OF-002.GGUF", "M-Q8_0-002-OF-002.GGUF", "m-Q4_K_M-00002-of-00002.GGUF"])
    q8 = units["Q8_0"]
    assert (q8.kind, q8.complete, q8.model_file) == ("split", True, "M-Q8_0-001-OF-002.GGUF")
    assert q8.files == ("M-Q8_0-001-OF-002.GGUF", "M-Q8_0-002-OF-002.GGUF")
    assert units["Q4_K_M"].missing == ("m-Q4_K_M-00001-of-00002.GGUF",)


def test_one_shard_parser_for_every_format():
    from modelformats.naming import parse_shard_name

    shard = parse_shard_name("d/M-Q8_0-01-of-003.GGUF")
    assert shard is not None
    assert (shard.path, shard.folder, shard.stem, shard.index, shard.total, shard.ext) == (
        "d/M-Q8_0-01-of-003.GGUF",
        "d",
        "M-Q8_0",
        1,
        3,
        ".GGUF",
    )
    assert shard.sibling(3) == "d/M-Q8_0-03-of-003.GGUF"
    assert parse_shard_name("x-00003-of-00002.gguf") is None  # index past the total
