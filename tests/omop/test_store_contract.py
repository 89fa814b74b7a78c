"""The CDM store contract: every backend (DuckDB file, PostgreSQL schema) passes the same tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from phds.errors import ConfigError
from phds.omop.schema import cdm_tables
from phds.omop.store import CdmStore, open_store

# information_schema.columns.data_type of each CDM abstract type, per backend.
EXPECTED_TYPES = {
    "duckdb": {"i": "BIGINT", "n": "DOUBLE", "d": "DATE", "t": "TIMESTAMP", "s": "VARCHAR"},
    "postgres": {
        "i": "bigint",
        "n": "double precision",
        "d": "date",
        "t": "timestamp without time zone",
        "s": "text",
    },
}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/cdm.duckdb"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[CdmStore]:
    with open_store(store_url) as s:
        yield s


def _schema_name(store: CdmStore) -> str:
    return str(getattr(store, "schema", "main"))


def _persons(ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "person_id": pa.array(ids, pa.int64()),
            "gender_concept_id": pa.array([8507] * len(ids), pa.int64()),
            "year_of_birth": pa.array([2015] * len(ids), pa.int64()),
            "race_concept_id": pa.array([0] * len(ids), pa.int64()),
            "ethnicity_concept_id": pa.array([0] * len(ids), pa.int64()),
            "birth_datetime": pa.array([datetime(2015, 3, 1, 8, 30)] * len(ids), pa.timestamp("us")),
            "person_source_value": pa.array([f"p{i}" for i in ids], pa.string()),
        }
    )


def test_create_tables_makes_every_cdm54_table_with_cdm_types(store: CdmStore) -> None:
    store.create_tables()
    assert store.existing_tables() == set(cdm_tables())
    rows = store.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = ?",
        [_schema_name(store)],
    )
    found = {(t, c): (typ, nullable) for t, c, typ, nullable in rows}
    expected = EXPECTED_TYPES[store.dialect]
    for spec in cdm_tables().values():
        for col in spec.columns:
            typ, nullable = found[(spec.name, col.name)]
            assert typ == expected[col.type], (spec.name, col.name)
            assert nullable == ("NO" if col.required else "YES"), (spec.name, col.name)


def test_create_tables_is_idempotent_and_keeps_rows(store: CdmStore) -> None:
    store.create_tables()
    store.append_arrow("person", _persons([1, 2]))
    store.create_tables()
    assert store.row_counts()["person"] == 2


def test_row_counts_cover_every_table(store: CdmStore) -> None:
    store.create_tables()
    store.append_arrow("person", _persons([1, 2, 3]))
    counts = store.row_counts()
    assert set(counts) == set(cdm_tables())
    assert counts["person"] == 3
    assert sum(counts.values()) == 3


def test_append_arrow_matches_columns_by_name_and_nulls_the_rest(store: CdmStore) -> None:
    store.create_tables()
    data = _persons([7])
    store.append_arrow("person", data.select(list(reversed(data.column_names))))
    person = store.qualified("person")
    row = store.execute(
        f"SELECT person_id, year_of_birth, birth_datetime, person_source_value, month_of_birth FROM {person}"
    )
    assert row == [(7, 2015, datetime(2015, 3, 1, 8, 30), "p7", None)]


def test_transaction_rollback_leaves_nothing(store: CdmStore) -> None:
    store.create_tables()

    def fail() -> None:
        with store.transaction():
            store.append_arrow("person", _persons([1, 2]))
            with store.transaction():  # a nested transaction joins the outer one
                store.append_arrow("person", _persons([3]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert store.row_counts()["person"] == 0


def test_transaction_rollback_undoes_create_tables(store: CdmStore) -> None:
    def fail() -> None:
        with store.transaction():
            store.create_tables()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert store.existing_tables() == set()


def test_transaction_commits(store: CdmStore) -> None:
    store.create_tables()
    with store.transaction():
        store.append_arrow("person", _persons([1]))
        store.append_arrow("person", _persons([2]))
    assert store.row_counts()["person"] == 2


def test_insert_select_runs_duckdb_sql_into_a_table(store: CdmStore) -> None:
    store.create_tables()
    inserted = store.insert_select(
        "observation_period",
        [
            "observation_period_id",
            "person_id",
            "observation_period_start_date",
            "observation_period_end_date",
            "period_type_concept_id",
        ],
        "SELECT range AS id, range AS pid, DATE '2020-01-01', DATE '2020-12-31', 32817 FROM range(5)",
    )
    assert inserted == 5
    table = store.qualified("observation_period")
    assert store.execute(f"SELECT min(observation_period_start_date) FROM {table}") == [(date(2020, 1, 1),)]


def test_ibis_reads_counts_and_joins_integer_ids(store: CdmStore) -> None:
    store.create_tables()
    store.append_arrow("person", _persons([1, 2, 3]))
    store.append_arrow(
        "concept",
        pa.table(
            {
                "concept_id": pa.array([10, 11], pa.int64()),
                "concept_name": ["parent", "child"],
                "domain_id": ["Condition", "Condition"],
                "vocabulary_id": ["SNOMED", "SNOMED"],
                "concept_class_id": ["Clinical Finding", "Clinical Finding"],
                "concept_code": ["1", "2"],
                "valid_start_date": pa.array([date(1970, 1, 1)] * 2, pa.date32()),
                "valid_end_date": pa.array([date(2099, 12, 31)] * 2, pa.date32()),
            }
        ),
    )
    assert store.table("person").count().execute() == 3
    ancestor, concept = store.table("concept_ancestor"), store.table("concept")
    # Empty but typed: the join of integer ids compiles and runs (DESIGN.md "Typed tables").
    assert ancestor.schema()["descendant_concept_id"].is_integer()
    joined = ancestor.join(concept, ancestor.descendant_concept_id == concept.concept_id)
    assert joined.count().execute() == 0
    store.append_arrow(
        "concept_ancestor",
        pa.table(
            {
                "ancestor_concept_id": pa.array([10, 10], pa.int64()),
                "descendant_concept_id": pa.array([10, 11], pa.int64()),
                "min_levels_of_separation": pa.array([0, 1], pa.int64()),
                "max_levels_of_separation": pa.array([0, 1], pa.int64()),
            }
        ),
    )
    names = joined.filter(joined.ancestor_concept_id == 10).concept_name.execute()
    assert sorted(names) == ["child", "parent"]


def test_execute_takes_parameters(store: CdmStore) -> None:
    store.create_tables()
    store.append_arrow("person", _persons([1, 2, 3]))
    person = store.qualified("person")
    assert store.execute(f"SELECT count(*) FROM {person} WHERE person_id >= ?", [2]) == [(2,)]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://user@host/db", "unsupported CDM store URL"),
        ("hospital.duckdb", "unsupported CDM store URL"),
        ("duckdb://", "names no file"),
        ("postgresql://postgres@127.0.0.1/test?schema=bad;name", "letters, digits and underscores"),
    ],
)
def test_bad_store_urls_are_config_errors(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        open_store(url)
