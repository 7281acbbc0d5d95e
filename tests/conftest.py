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
