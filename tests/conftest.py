from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
LISTINGS = TESTS / "data" / "listings"
# tests/hubserver.py and friends are importable as plain modules.
sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def listings_dir() -> Path:
    return LISTINGS


@pytest.fixture(scope="session")
def recorded():
    from modelformats.sources.recorded import RecordedSource

    return RecordedSource.from_paths([LISTINGS])


@pytest.fixture
def hub_home(tmp_path, monkeypatch):
    """huggingface_hub's own caches point at <tmp>/home (online mode), to prove nothing lands outside the
    download root; the download test modules use it for every test (`pytestmark`)."""
    from huggingface_hub import constants

    home = tmp_path / "home"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(home / "xet"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return home
