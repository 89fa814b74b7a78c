"""Fixtures shared by the OMOP tests: the real OHDSI samples loaded once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phds.omop.load import load_cdm
from phds.omop.store import open_store


def real_store_url(shared_data: Path, base: Path, sample: str) -> str:
    """The sample loaded once per session into a DuckDB file; its store URL."""
    path = base / "phds-real-cdm" / f"{sample}.duckdb"
    if not path.exists():
        with open_store(f"duckdb:///{path}.partial") as store:
            load_cdm(shared_data / "omop" / sample, store)
        Path(f"{path}.partial").rename(path)
    return f"duckdb:///{path}"


@pytest.fixture(scope="session")
def real(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """``real("synthea27nj")``: the store URL of that real sample, loaded once per session."""
    base = tmp_path_factory.getbasetemp()
    return lambda sample: real_store_url(shared_data, base, sample)
