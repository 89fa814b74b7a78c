"""The node-side builder: its cache, where circepy's tables go, and requester text that never becomes SQL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from phds.cohorts import CohortBuilder, builder_for, count_cohort, parse_cohort
from phds.errors import InputError, StoreError
from phds.omop.store import CdmStore, open_store

DATA = Path(__file__).parent / "data"
EVIL = "x'); DROP TABLE person; --"


def read_data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def tables(store: CdmStore, catalog: str | None = None) -> set[str]:
    """Table names in a DuckDB catalog (default: the store's own database)."""
    rows = store.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_catalog = coalesce(?, current_database())",
        [catalog],
    )
    return {name for (name,) in rows}


def test_second_build_comes_from_the_cache(tiny_duckdb: CdmStore) -> None:
    builder = CohortBuilder(tiny_duckdb)
    definition = parse_cohort(read_data("asthma_atlas.json"))
    first = builder.build(definition)
    second = builder.build(definition)
    assert second is first
    assert (builder.builds, builder.hits) == (1, 1)

    renamed = json.loads(read_data("asthma_atlas.json"))
    renamed["Title"] = "Same cohort, new name"
    builder.build(parse_cohort(json.dumps(renamed)))
    assert (builder.builds, builder.hits) == (1, 2)

    builder.build(parse_cohort(read_data("asthma.yaml")))  # same meaning, different JSON: its own entry
    assert builder.builds == 2
    builder.clear()
    builder.build(definition)
    assert builder.builds == 3


def test_count_cohort_reuses_the_stores_builder(tiny_duckdb: CdmStore) -> None:
    definition = parse_cohort(read_data("asthma_atlas.json"))
    first = count_cohort(tiny_duckdb, definition)
    second = count_cohort(tiny_duckdb, definition, breakdowns=["sex"])
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.total == second.total == 4
    assert builder_for(tiny_duckdb).builds == 1
    assert first.compute_seconds > 0 and second.compute_seconds > 0


def test_the_cache_is_bounded_and_drops_evicted_scratch_tables(tiny_duckdb: CdmStore) -> None:
    builder = CohortBuilder(tiny_duckdb, max_cached=2)
    ages = [
        parse_cohort(f"entry: {{condition: {{concepts: [317009]}}}}\nage: {{min: {a}}}") for a in (1, 2, 3)
    ]
    for definition in ages:
        builder.build(definition)
    scratch = tables(tiny_duckdb, "phds_cohort_scratch")
    assert len(scratch) == 2 * 2  # codesets and the final stage of each cached cohort
    assert len({name.split("__")[1] for name in scratch}) == 2
    builder.build(ages[0])  # evicted, so built again
    assert builder.builds == 4


def test_circepy_tables_never_land_in_the_cdm(tiny_duckdb: CdmStore, synthea: CdmStore) -> None:
    for store in (tiny_duckdb, synthea):  # synthea is opened read-only: building must not need to write
        before = tables(store)
        assert count_cohort(store, parse_cohort(read_data("asthma.yaml"))).total >= 0
        assert tables(store) == before
        assert tables(store, "phds_cohort_scratch")


@pytest.mark.postgres
def test_postgres_scratch_tables_are_temporary(pg_schema_url: str, pg_dsn: str) -> None:
    import psycopg

    from phds.omop.store_postgres import PostgresStore

    with open_store(pg_schema_url) as store:
        assert isinstance(store, PostgresStore)
        store.create_tables()
        count_cohort(store, parse_cohort(read_data("asthma.yaml")))
        with psycopg.connect(pg_dsn) as con:
            rows = con.execute(
                "SELECT schemaname FROM pg_tables WHERE tablename LIKE '\\_\\_phds\\_%'"
            ).fetchall()
        assert rows and all(schema.startswith("pg_temp") for (schema,) in rows)
    # The session ended, so its temporary tables go. Its server process drops them as it exits, just
    # after the client has disconnected: on a loaded machine a new session may still see them briefly.
    deadline = time.monotonic() + 30
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        while (left := scratch_tables(con)) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert left == 0


def scratch_tables(con: Any) -> int:
    """How many PHDS scratch tables the database holds, in any session."""
    row = con.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_\\_phds\\_%'").fetchone()
    return int(row[0])


def _poison(expression: dict[str, Any]) -> dict[str, Any]:
    expression["Title"] = EVIL
    expression["cdmVersionRange"] = EVIL
    for concept_set in expression["ConceptSets"]:
        concept_set["name"] = EVIL
        concept_set["description"] = EVIL
        for item in concept_set["expression"]["items"]:
            item["concept"]["CONCEPT_NAME"] = EVIL
            item["concept"]["CONCEPT_CODE"] = EVIL
    for rule in expression["InclusionRules"]:
        rule["name"] = rule["description"] = EVIL
    return expression


def test_requester_text_never_reaches_sql(tiny_duckdb: CdmStore) -> None:
    clean = parse_cohort(read_data("asthma_atlas.json"))
    poisoned = parse_cohort(
        json.dumps({"name": EVIL, "expression": _poison(json.loads(read_data("asthma_atlas.json")))})
    )
    assert EVIL in json.dumps(poisoned.expression) and poisoned.name == EVIL  # kept for display
    assert "DROP" not in json.dumps(poisoned.semantic_expression)  # but not in what is built
    assert poisoned.fingerprint == clean.fingerprint

    builder = CohortBuilder(tiny_duckdb)
    table = builder.table(poisoned)
    assert "DROP" not in str(tiny_duckdb.ibis().compile(table))
    yaml_named = parse_cohort(f'name: "{EVIL}"\nentry: {{condition: {{concepts: [317009]}}}}')
    assert "DROP" not in str(tiny_duckdb.ibis().compile(builder.table(yaml_named)))
    assert count_cohort(tiny_duckdb, poisoned).total == 4
    assert tiny_duckdb.row_counts()["person"] == 9  # still there


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (
            ("ConceptSets", 0, "expression", "items", 0, "concept", "CONCEPT_ID"),
            "317009); DROP TABLE person; --",
        ),
        (
            ("InclusionRules", 1, "expression", "DemographicCriteriaList", 0, "Age", "Op"),
            "bt'; DROP TABLE person",
        ),
        (("InclusionRules", 0, "expression", "Type"), "ALL; DROP TABLE person"),
        (
            ("PrimaryCriteria", "CriteriaList", 0, "ConditionOccurrence", "StopReason"),
            {"Text": EVIL, "Op": "eq"},
        ),
    ],
)
def test_text_where_values_belong_is_refused(where: tuple[Any, ...], value: Any) -> None:
    expression = json.loads(read_data("asthma_atlas.json"))
    target = expression
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(InputError) as info:
        parse_cohort(json.dumps(expression))
    assert info.value.field is not None and info.value.field.endswith(str(where[-1]))


def test_a_builder_does_not_keep_a_closed_store_alive(tmp_path: Path) -> None:
    store = open_store(f"duckdb:///{tmp_path}/gone.duckdb")
    builder = CohortBuilder(store)
    store.close()
    del store
    with pytest.raises(StoreError, match="released"):
        builder.build(parse_cohort(read_data("asthma.yaml")))


def test_lost_scratch_tables_give_a_store_error_and_the_next_count_rebuilds(tiny_duckdb: CdmStore) -> None:
    definition = parse_cohort(read_data("asthma_atlas.json"))
    builder = CohortBuilder(tiny_duckdb)
    assert count_cohort(tiny_duckdb, definition, builder=builder).total == 4
    tiny_duckdb.execute("DETACH phds_cohort_scratch")  # as if the connection had been replaced
    with pytest.raises(StoreError, match="counting cohort"):
        count_cohort(tiny_duckdb, definition, builder=builder)
    again = count_cohort(tiny_duckdb, definition, builder=builder)
    assert (again.total, again.cache_hit, builder.builds) == (4, False, 2)
