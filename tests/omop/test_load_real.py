"""Loading the three real OHDSI samples (CDM 5.3.1 and 5.4) into DuckDB and PostgreSQL, row for row."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phds.errors import Conflict
from phds.omop.load import load_cdm
from phds.omop.schema import cdm_tables
from phds.omop.store import CdmStore, open_store

SAMPLES = ["eunomia-gibleed", "synthea27nj", "mimic-iv-demo"]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CdmStore]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path}/cdm.duckdb"
    else:
        url = request.getfixturevalue("pg_schema_url")
    with open_store(url) as s:
        yield s


def file_rows(path: Path) -> int:
    """Data rows of a CSV file counted by Python's csv module (quoted newlines stay in one row)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return sum(1 for row in reader if row)


def column_filled(path: Path, column: str) -> int:
    """Rows of a CSV file whose *column* (any case) is not empty."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        name = next(n for n in reader.fieldnames or [] if n.lower() == column)
        return sum(1 for row in reader if row[name])


@pytest.mark.parametrize("sample", SAMPLES)
def test_real_sample_loads_row_for_row(shared_data: Path, store: CdmStore, sample: str) -> None:
    folder = shared_data / "omop" / sample
    expected = {p.stem.lower(): file_rows(p) for p in folder.glob("*.csv") if p.stem.lower() in cdm_tables()}
    report = load_cdm(folder, store)
    counts = store.row_counts()
    assert report.counts() == expected
    assert {t: counts[t] for t in expected} == expected
    assert all(counts[t] == 0 for t in cdm_tables() if t not in expected)
    assert report.rows == sum(expected.values())
    assert store.table("person").count().execute() == expected["person"]


def test_cdm53_export_maps_renamed_columns_and_fills_required(shared_data: Path, store: CdmStore) -> None:
    folder = shared_data / "omop" / "mimic-iv-demo"
    report = load_cdm(folder, store)
    skipped = {s.file for s in report.skipped}
    assert skipped == {"attribute_definition.csv", "cohort_attribute.csv"}
    by_table = {t.table: t for t in report.tables}
    assert by_table["visit_detail"].renamed["visit_detail_parent_id"] == "parent_visit_detail_id"
    assert by_table["cdm_source"].filled == {"cdm_version_concept_id": "0"}
    # The 5.3 admitting_source_concept_id values land in 5.4 admitted_from_concept_id.
    visits = store.table("visit_occurrence")
    loaded = visits.admitted_from_concept_id.notnull().sum().execute()
    assert loaded == column_filled(folder / "visit_occurrence.csv", "admitting_source_concept_id") > 0
    source = store.table("cdm_source").to_pyarrow().to_pylist()
    assert [(s["cdm_version"], s["cdm_version_concept_id"]) for s in source] == [("5.3.1", 0)]


def test_synthea_timestamps_in_date_columns_and_empty_typed_tables(
    shared_data: Path, store: CdmStore
) -> None:
    folder = shared_data / "omop" / "synthea27nj"
    load_cdm(folder, store)
    era = store.table("condition_era")
    assert era.schema()["condition_era_start_date"].is_date()
    # CONCEPT_ANCESTOR.csv is header-only: the table stays typed, so the integer join runs.
    ancestor, concept = store.table("concept_ancestor"), store.table("concept")
    assert ancestor.schema()["descendant_concept_id"].is_integer()
    assert ancestor.join(concept, ancestor.descendant_concept_id == concept.concept_id).count().execute() == 0


def test_second_load_conflicts_unless_replace(shared_data: Path, store: CdmStore) -> None:
    folder = shared_data / "omop" / "synthea27nj"
    load_cdm(folder, store)
    before = store.row_counts()
    with pytest.raises(Conflict, match=r"person \(28 rows\).*--replace"):
        load_cdm(folder, store)
    assert store.row_counts() == before
    report = load_cdm(folder, store, replace=True)
    assert store.row_counts() == before
    assert "person" in report.replaced


def test_cli_loads_and_prints_json(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "omop" / "eunomia-gibleed"
    url = f"duckdb:///{tmp_path}/cli.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "phds.cli.main", "omop", "load", str(folder), "--into", url, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counts = {t["table"]: t["rows"] for t in report["tables"]}
    assert counts["person"] == file_rows(folder / "PERSON.csv")
    assert counts["condition_era"] == file_rows(folder / "CONDITION_ERA.csv")
    assert [s["file"] for s in report["skipped"]] == ["COHORT_ATTRIBUTE.csv"]
