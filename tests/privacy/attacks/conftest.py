"""Fixtures of the attack suite; the helpers live in attack_kit.py (this folder is put on sys.path)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from attack_kit import Site, federation, planted_site

from phds.analyses.testing import Federation


@pytest.fixture
def planted(tmp_path: Path) -> Site:
    """The planted CNSIM1 slice (row 0 is the target patient)."""
    return planted_site(tmp_path)


@pytest.fixture
def fed_one(tmp_path: Path, planted: Site) -> Iterator[Federation]:
    """The planted site alone under the default policy (everything auto); one federation per test."""
    with federation(tmp_path, {"site1": planted}) as fed:
        yield fed
