"""The GPU catalogue: one table, lookups by Modal's strings, and the check against the modal client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelformats.errors import InvalidRequestError, UnknownGpuError
from modelformats.gpu import (
    GPU_CATALOGUE,
    catalogue_dicts,
    get_gpu,
    parse_compute_capability,
    parse_gpu,
    render_catalogue,
)
from modelformats.gpu.catalogue import NVIDIA_SMI_MARGIN_BYTES

ROOT = Path(__file__).parents[2]
MODAL_TYPES = (
    "T4",
    "L4",
    "A10",
    "L40S",
    "A100-40GB",
    "A100-80GB",
    "RTX-PRO-6000",
    "H100",
    "H200",
    "B200",
    "B300",
)


def test_catalogue_is_modals_list_cheapest_first():
    assert tuple(g.name for g in GPU_CATALOGUE) == MODAL_TYPES
    prices = [g.price_per_hour for g in GPU_CATALOGUE]
    assert prices == sorted(prices)
    for g in GPU_CATALOGUE:
        assert g.usable_memory_bytes > 0
        assert g.price.secondary and g.price.date in {"2026-05-07", "2026-07-18"}
        assert 1 <= g.max_count <= 8
        assert not g.multi_node or (g.nvlink and g.max_count == 8)


def test_table_values_from_the_notes():
    h100 = get_gpu("H100")
    assert (h100.memory_bytes, h100.compute_capability, h100.max_count, h100.nvlink, h100.price_per_hour) == (
        80 * 10**9,
        (9, 0),
        8,
        True,
        3.95,
    )
    b200 = get_gpu("b200")
    assert (b200.memory_bytes, b200.usable_memory_bytes) == (192 * 10**9, 180 * 10**9)
    assert get_gpu("A10").max_count == 4
    assert not get_gpu("L40S").nvlink
    rtx = get_gpu("rtx-pro-6000")
    assert (rtx.max_count, rtx.max_count_stated) == (1, False)


@pytest.mark.parametrize(
    ("text", "name", "count", "modal"),
    [
        ("H100", "H100", 1, "H100"),
        ("h100:2", "H100", 2, "H100:2"),
        (" a100 ", "A100-40GB", 1, "A100-40GB"),
        ("A10G:4", "A10", 4, "A10:4"),
        ("H100!:8", "H100", 8, "H100!:8"),
        ("b200+", "B200", 1, "B200+"),
        ("a100-80gb:8", "A100-80GB", 8, "A100-80GB:8"),
    ],
)
def test_parse_gpu(text, name, count, modal):
    sel = parse_gpu(text)
    assert (sel.gpu.name, sel.count, sel.modal_string) == (name, count, modal)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("H100:x", "GPU count 'x' in 'H100:x' must be a positive integer; write e.g. 'H100:2'."),
        ("H100:0", "GPU count '0' in 'H100:0' must be a positive integer; write e.g. 'H100:2'."),
        (
            "H100:9",
            "GPU 'H100:9' asks for 9 x H100; one Modal container takes at most 8. Use 'H100:8' or a larger GPU type.",
        ),
        (
            "A10:8",
            "GPU 'A10:8' asks for 8 x A10; one Modal container takes at most 4. Use 'A10:4' or a larger GPU type.",
        ),
        (
            "RTX-PRO-6000:2",
            "GPU 'RTX-PRO-6000:2' asks for 2 x RTX-PRO-6000; one Modal container takes at most 1 (Modal "
            "states no limit; modelformats plans one). Use 'RTX-PRO-6000:1' or a larger GPU type.",
        ),
        (
            "A100!",
            "GPU 'A100!': the suffix '!' exists only as 'H100!' ('!' keeps an H100 from being upgraded, "
            "'+' lets a B200 run on a B300). Drop the suffix.",
        ),
        (
            "H100:2:3",
            "GPU 'H100:2:3' is not of the form TYPE or TYPE:COUNT (Modal's gpu= syntax), e.g. 'H100:2'.",
        ),
    ],
)
def test_bad_gpu_strings(text, message):
    with pytest.raises(InvalidRequestError) as exc:
        parse_gpu(text)
    assert str(exc.value) == message


def test_unknown_gpu():
    with pytest.raises(UnknownGpuError) as exc:
        get_gpu("NOT-A-GPU")
    assert str(exc.value) == (
        "Unknown GPU type 'NOT-A-GPU'; Modal offers: T4, L4, A10, L40S, A100-40GB, A100-80GB, "
        "RTX-PRO-6000, H100, H200, B200, B300."
    )
    assert exc.value.known == MODAL_TYPES and isinstance(exc.value, LookupError)


def test_compute_capability_parsing():
    assert parse_compute_capability("8.9") == parse_compute_capability(8.9) == parse_compute_capability((8, 9))
    with pytest.raises(InvalidRequestError) as exc:
        parse_compute_capability("sm_89")
    assert str(exc.value) == "Compute capability 'sm_89' is not of the form MAJOR.MINOR, e.g. '8.9'."


def test_render_and_rows():
    text = render_catalogue()
    for g in GPU_CATALOGUE:
        assert g.name in text
    assert "B200          -        Blackwell        192 GB (180 usable)  10.0  8    yes     6.25" in text
    assert "Modal's client does not check GPU names" in text
    rows = catalogue_dicts()
    assert rows[0]["name"] == "T4" and rows[0]["compute_capability"] == "7.5"
    assert rows[7]["price"]["source"].startswith("https://techbytes.app/")


def test_check_against_the_installed_modal_client():
    pytest.importorskip("modal")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_gpu_catalogue.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "modal does not validate GPU type names: 'NOT-A-GPU' parsed as NOT-A-GPU x1" in done.stdout


# vLLM's budget is gpu_memory_utilization x the total torch reports: a plan sized against more than
# the card reports asks vLLM for memory the card does not have (T4 and A10 were sized at 16e9 / 24e9 B).
@pytest.mark.parametrize("gpu", GPU_CATALOGUE, ids=lambda g: g.name)
def test_usable_memory_does_not_exceed_what_the_engine_reports(gpu):
    assert gpu.usable_memory_bytes <= gpu.reported_memory_bytes


def test_every_gpu_is_sized_at_the_total_the_engine_sees():
    """The engine's own figure where one was found; else nvidia-smi's total less the margin it shows on the
    parts with both figures (316-925 MiB), and never above a lower figure the provider states."""
    smi = {"A10": 23028, "T4": 15360, "H100": 81559, "H200": 143771, "A100-40GB": 40960, "B300": 275040}
    for g in GPU_CATALOGUE:
        if g.reported_by_engine:
            assert g.usable_memory_bytes == g.reported_memory_bytes, g.name
            gap = smi[g.name] * 2**20 - g.reported_memory_bytes
            assert 0 < gap < NVIDIA_SMI_MARGIN_BYTES, (g.name, gap)
        else:
            assert "nvidia-smi" in g.reported_memory_source, g.name
            below = g.reported_memory_bytes - NVIDIA_SMI_MARGIN_BYTES
            assert g.usable_memory_bytes == (min(below, 180 * 10**9) if g.name == "B200" else below), g.name
    # An 80 GB H100 is budgeted as vLLM sees it (79.10 GiB), not as 80e9 B (74.5 GiB).
    assert get_gpu("H100").usable_memory_bytes == round(79.10 * 2**30) > 80 * 10**9


def test_t4_a10_and_b300_are_sized_at_the_engines_total():
    rows = {g.name: g for g in GPU_CATALOGUE}
    assert rows["T4"].usable_memory_bytes == round(14.58 * 2**30) < rows["T4"].memory_bytes
    assert rows["A10"].usable_memory_bytes == round(22.18 * 2**30) < rows["A10"].memory_bytes
    # vLLM 0.26 sees 267.69 GiB = 287.43 GB on a B300, below the 288 GB nominal.
    assert rows["B300"].usable_memory_bytes == round(267.69 * 2**30) < rows["B300"].memory_bytes


def test_every_gpu_says_where_its_reported_total_comes_from():
    for g in GPU_CATALOGUE:  # every part has a reported total (the field is required)
        assert "https://" in g.reported_memory_source, g.name
        # A reported total is the same part's memory in other units, not another card's.
        assert 0.9 < g.reported_memory_bytes / g.memory_bytes < 1.1, g.name
    rows = {row["name"]: row for row in catalogue_dicts()}
    assert rows["H100"]["reported_memory_bytes"] == round(79.10 * 2**30)
    assert rows["L4"]["reported_memory_bytes"] == 23034 * 2**20
    assert rows["A100-40GB"]["reported_memory_bytes"] == 42298834944
    assert rows["A100-80GB"]["reported_memory_bytes"] == 81920 * 2**20
    assert rows["H200"]["reported_memory_bytes"] == round(139.81 * 2**30)
    assert rows["B300"]["reported_memory_bytes"] == round(267.69 * 2**30)
