"""Fixtures shared by the OMOP tests: the real OHDSI samples loaded once per session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from phds.omop.load import load_cdm
from phds.omop.store import CdmStore, open_store


def person(pid: int, sex: int, born: date) -> dict[str, Any]:
    """A PERSON row born on *born*, with gender concept *sex*."""
    return {
        "person_id": pid,
        "gender_concept_id": sex,
        "year_of_birth": born.year,
        "month_of_birth": born.month,
        "day_of_birth": born.day,
        "race_concept_id": 0,
        "ethnicity_concept_id": 0,
    }


def fill(store: CdmStore, table: str, rows: list[dict[str, Any]]) -> None:
    """Append hand-made rows to a CDM table."""
    store.append_arrow(table, pa.Table.from_pylist(rows))


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
