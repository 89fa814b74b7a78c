"""Counting cohorts on real and tiny CDMs: against independent SQL, with breakdowns, on both engines."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from phds.cohorts import BREAKDOWNS, CohortBuilder, CohortDefinition, count_cohort, parse_cohort
from phds.errors import InputError
from phds.omop.load import load_cdm
from phds.omop.store import CdmStore, open_store
from phds.paediatrics.ich_e11 import ich_e11_group_for_dates

DATA = Path(__file__).parent / "data"


def read_data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


# First viral sinusitis in observation, and acetaminophen 325 mg within 365 days of it in the same period:
# the cohort of data/sinusitis_atlas.json, written by hand in SQL over the same CDM.
SINUSITIS_SQL = """
WITH ev AS (
  SELECT co.person_id, co.condition_start_date AS d,
         op.observation_period_start_date AS ops, op.observation_period_end_date AS ope,
         row_number() OVER (PARTITION BY co.person_id ORDER BY co.condition_start_date) AS rn
  FROM condition_occurrence co
  JOIN observation_period op ON op.person_id = co.person_id
   AND co.condition_start_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
  WHERE co.condition_concept_id = 40481087)
SELECT ev.person_id, ev.d FROM ev
WHERE ev.rn = 1 AND (NOT ? OR EXISTS (
  SELECT 1 FROM drug_exposure de
  WHERE de.person_id = ev.person_id AND de.drug_concept_id = 1127433
    AND de.drug_exposure_start_date BETWEEN ev.d - INTERVAL 365 DAY AND ev.d + INTERVAL 365 DAY
    AND de.drug_exposure_start_date BETWEEN ev.ops AND ev.ope))
"""


def sinusitis(with_drug: bool = True) -> CohortDefinition:
    expression = json.loads(read_data("sinusitis_atlas.json"))
    if not with_drug:
        expression["InclusionRules"] = []
    return parse_cohort(json.dumps(expression))


def test_synthea_counts_equal_an_independent_sql_count(synthea: CdmStore) -> None:
    for with_drug in (True, False):
        expected = {row[0] for row in synthea.execute(SINUSITIS_SQL, [with_drug])}
        counts = count_cohort(synthea, sinusitis(with_drug))
        assert counts.total == len(expected)
    assert count_cohort(synthea, sinusitis(False)).total == 23  # 23 of 28 persons had viral sinusitis
    assert count_cohort(synthea, sinusitis(True)).total == 2


def test_synthea_breakdowns_match_persons_at_their_index_date(synthea: CdmStore) -> None:
    rows = synthea.execute(SINUSITIS_SQL, [False])
    persons = {
        pid: (gender, birth.date())
        for pid, gender, birth in synthea.execute(
            "SELECT person_id, gender_concept_id, birth_datetime FROM person"
        )
    }
    sexes = {8507: "male", 8532: "female"}
    expected = {
        "sex": Counter(sexes.get(persons[pid][0], "other") for pid, _ in rows),
        "age_group": Counter(str(ich_e11_group_for_dates(persons[pid][1], index)) for pid, index in rows),
        "year": Counter(str(index.year) for _, index in rows),
    }
    counts = count_cohort(synthea, sinusitis(False), breakdowns=["sex", "age_group", "year"])
    assert counts.breakdowns == ["sex", "age_group", "year"]
    for dimension, cells in expected.items():
        assert counts.table(dimension) == dict(cells)
        assert sum(counts.table(dimension).values()) == counts.total
    assert len(expected["age_group"]) > 1  # Synthea27Nj has children and adults: the test can fail


# (criterion, concept or None, table, concept column, date column): persons with such an event in observation
DOMAINS = [
    ("ConditionOccurrence", 4251306, "condition_occurrence", "condition_concept_id", "condition_start_date"),
    ("DrugExposure", 1127433, "drug_exposure", "drug_concept_id", "drug_exposure_start_date"),
    ("ProcedureOccurrence", 762506, "procedure_occurrence", "procedure_concept_id", "procedure_date"),
    ("Measurement", 3027018, "measurement", "measurement_concept_id", "measurement_date"),
    ("Observation", 40759172, "observation", "observation_concept_id", "observation_date"),
    ("VisitOccurrence", 9201, "visit_occurrence", "visit_concept_id", "visit_start_date"),
    ("DeviceExposure", 4217646, "device_exposure", "device_concept_id", "device_exposure_start_date"),
    ("ConditionEra", 40481087, "condition_era", "condition_concept_id", "condition_era_start_date"),
    ("DrugEra", 1127433, "drug_era", "drug_concept_id", "drug_era_start_date"),
    ("Death", None, "death", None, "death_date"),
    ("ObservationPeriod", None, "observation_period", None, "observation_period_start_date"),
]


@pytest.mark.parametrize(("criterion", "concept", "table", "concept_col", "date_col"), DOMAINS)
def test_every_supported_criterion_type_builds_and_counts_right(
    synthea: CdmStore, criterion: str, concept: int | None, table: str, concept_col: str | None, date_col: str
) -> None:
    body: dict[str, Any] = {} if concept is None else {"CodesetId": 0}
    sets = (
        []
        if concept is None
        else [{"id": 0, "expression": {"items": [{"concept": {"CONCEPT_ID": concept}}]}}]
    )
    expression = {"ConceptSets": sets, "PrimaryCriteria": {"CriteriaList": [{criterion: body}]}}
    where = "" if concept is None else f"AND e.{concept_col} = {concept}"
    expected = synthea.execute(
        f"SELECT count(DISTINCT e.person_id) FROM {table} e"
        " JOIN observation_period op ON op.person_id = e.person_id"
        f" AND e.{date_col} BETWEEN op.observation_period_start_date AND op.observation_period_end_date"
        f" WHERE TRUE {where}"
    )[0][0]
    assert count_cohort(synthea, parse_cohort(json.dumps(expression))).total == expected


def subjects(store: CdmStore, definition: CohortDefinition) -> set[int]:
    table = CohortBuilder(store).table(definition)
    return {int(s) for s in table.subject_id.to_pyarrow().to_pylist()}


def test_descendants_expand_through_concept_ancestor(
    tiny: CdmStore, tiny_members: dict[str, set[int]]
) -> None:
    with_descendants = parse_cohort(read_data("asthma_atlas.json"))
    assert subjects(tiny, with_descendants) == tiny_members["with_descendants"]
    expression = json.loads(read_data("asthma_atlas.json"))
    for concept_set in expression["ConceptSets"]:
        concept_set["expression"]["items"][0]["includeDescendants"] = False
    assert subjects(tiny, parse_cohort(json.dumps(expression))) == tiny_members["without_descendants"]


def test_the_short_form_counts_what_the_atlas_export_counts(
    tiny: CdmStore, tiny_members: dict[str, set[int]]
) -> None:
    short = count_cohort(tiny, parse_cohort(read_data("asthma.yaml")), breakdowns=["sex", "year"])
    atlas = count_cohort(tiny, parse_cohort(read_data("asthma_atlas.json")), breakdowns=["sex", "year"])
    assert short.total == atlas.total == len(tiny_members["with_descendants"])
    assert short.cells == atlas.cells


def test_tiny_breakdowns_one_way_and_crossed(tiny: CdmStore) -> None:
    definition = parse_cohort(read_data("asthma_atlas.json"))
    counts = count_cohort(tiny, definition, breakdowns=["sex", "age_group", "year"])
    assert counts.table("sex") == {"female": 2, "male": 1, "other": 1}
    assert counts.table("age_group") == {"child (2-11 y)": 4}
    assert counts.table("year") == {"2016": 1, "2018": 1, "2019": 1, "2020": 1}  # person 9: first entry only
    crossed = count_cohort(tiny, definition, breakdowns=["sex", "year"], crosstab=True)
    assert crossed.crosstab
    assert {(c.dims["sex"], c.dims["year"]): c.count for c in crossed.cells} == {
        ("female", "2018"): 1,
        ("female", "2020"): 1,
        ("male", "2019"): 1,
        ("other", "2016"): 1,
    }


def test_measurement_value_range_in_the_short_form(tiny: CdmStore) -> None:
    text = """
entry: {condition: {concepts: [317009], descendants: true}}
require:
  - measurement: {concepts: [2000000301]}
    value: {min: 50, max: 80}
    window: {start: 0, end: 0}
"""
    assert subjects(tiny, parse_cohort(text)) == {1}  # person 9's peak flow is 90 %


@pytest.mark.postgres
def test_synthea_counts_are_equal_on_duckdb_and_postgresql(
    synthea: CdmStore, shared_data: Path, pg_schema_url: str
) -> None:
    with open_store(pg_schema_url) as pg:
        load_cdm(shared_data / "omop" / "synthea27nj", pg)
        for definition in (sinusitis(True), sinusitis(False)):
            on_duckdb = count_cohort(synthea, definition, breakdowns=BREAKDOWNS)
            on_postgres = count_cohort(pg, definition, breakdowns=BREAKDOWNS)
            assert on_postgres.total == on_duckdb.total
            assert on_postgres.cells == on_duckdb.cells
            assert on_postgres.fingerprint == on_duckdb.fingerprint


def test_unknown_breakdown_is_refused(tiny_duckdb: CdmStore) -> None:
    with pytest.raises(InputError, match="unknown breakdown 'postcode'") as info:
        count_cohort(tiny_duckdb, parse_cohort(read_data("asthma.yaml")), breakdowns=["postcode"])  # type: ignore[list-item]
    assert info.value.field == "breakdowns[0]"


def test_empty_cohort_counts_zero_with_no_cells(tiny_duckdb: CdmStore) -> None:
    text = "entry: {condition: {concepts: [317009]}}\nage: {min: 90}"
    counts = count_cohort(tiny_duckdb, parse_cohort(text), breakdowns=["sex"])
    assert (counts.total, counts.cells) == (0, [])


def test_index_dates_are_first_entries(
    tiny_duckdb: CdmStore, tiny_people: dict[int, Any], tiny_members: dict[str, set[int]]
) -> None:
    table = CohortBuilder(tiny_duckdb).table(parse_cohort(read_data("asthma_atlas.json")))
    rows = table.to_pyarrow().to_pylist()
    assert {r["subject_id"]: r["cohort_start_date"] for r in rows} == {
        pid: tiny_people[pid].conditions[0][1] for pid in tiny_members["with_descendants"]
    }
    assert all(isinstance(r["cohort_end_date"], dt.date) for r in rows)


def test_index_all_tests_every_event_not_only_the_first(tiny_duckdb: CdmStore) -> None:
    text = "entry: {condition: {concepts: [317009]}}\nage: {min: 7}\nindex: {index}\n"
    first = CohortBuilder(tiny_duckdb).table(parse_cohort(text.replace("{index}", "first")))
    every = CohortBuilder(tiny_duckdb).table(parse_cohort(text.replace("{index}", "all")))
    assert {r["subject_id"] for r in first.to_pyarrow().to_pylist()} == {4, 5}
    entries = {r["subject_id"]: r["cohort_start_date"] for r in every.to_pyarrow().to_pylist()}
    assert entries == {
        4: dt.date(2020, 1, 1),
        5: dt.date(2017, 1, 1),
        9: dt.date(2021, 2, 2),
    }  # 9: aged 7 in 2021
