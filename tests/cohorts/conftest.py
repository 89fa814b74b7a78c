"""Fixtures for cohort tests: the real Synthea27Nj CDM, and a tiny asthma hospital written row by row.

The tiny hospital has a concept_ancestor, so "asthma and descendants" can be told apart from "asthma":
local concepts (ids above 2,000,000,000, the OMOP range for site concepts) stand for a descendant
diagnosis and a salbutamol product. Each person is built to fall in or out of the asthma cohort of
``data/asthma_atlas.json`` for one reason, written beside them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pytest

from phds.omop.load import load_cdm
from phds.omop.store import CdmStore, open_store

ASTHMA, SALBUTAMOL, BRONCHITIS = 317009, 1154343, 260139
CHILDHOOD_ASTHMA = 2_000_000_101  # local descendant of asthma
SALBUTAMOL_INHALER = 2_000_000_201  # local descendant of salbutamol
PEAK_FLOW = 2_000_000_301  # local measurement: peak flow, % of predicted
MALE, FEMALE, OTHER = 8507, 8532, 8551
EHR = 32817  # type concept "EHR"

D = dt.date
OP = (D(2015, 1, 1), D(2022, 12, 31))  # the usual observation period


class Person(NamedTuple):
    gender: int
    birth: dt.date
    observed: tuple[dt.date, dt.date]
    conditions: list[tuple[int, dt.date]]
    drugs: list[tuple[int, dt.date]]
    peak_flows: list[tuple[dt.date, float]]


TINY_PEOPLE: dict[int, Person] = {
    # in: asthma at 6, salbutamol through a descendant product a month later; peak flow 60 %
    1: Person(FEMALE, D(2012, 3, 1), OP, [(ASTHMA, D(2018, 5, 1))], [(SALBUTAMOL_INHALER, D(2018, 6, 1))],
              [(D(2018, 5, 1), 60.0)]),
    # in: a descendant diagnosis (childhood asthma) at 6, salbutamol 17 days before
    2: Person(MALE, D(2013, 1, 1), OP, [(CHILDHOOD_ASTHMA, D(2019, 2, 1))], [(SALBUTAMOL, D(2019, 1, 15))],
              []),
    # out: aged 1 at index (Circe age: year of index - year of birth)
    3: Person(FEMALE, D(2015, 7, 7), (D(2015, 7, 7), OP[1]), [(ASTHMA, D(2016, 1, 1))],
              [(SALBUTAMOL, D(2016, 1, 2))], []),
    # out: aged 20
    4: Person(MALE, D(2000, 1, 1), OP, [(ASTHMA, D(2020, 1, 1))], [(SALBUTAMOL, D(2020, 1, 2))], []),
    # out: salbutamol more than 365 days after the diagnosis
    5: Person(MALE, D(2010, 1, 1), OP, [(ASTHMA, D(2017, 1, 1))], [(SALBUTAMOL, D(2019, 6, 1))], []),
    # out: no asthma
    6: Person(FEMALE, D(2011, 4, 4), OP, [(BRONCHITIS, D(2018, 1, 1))], [(SALBUTAMOL, D(2018, 1, 2))], []),
    # out: asthma before the observation period starts
    7: Person(MALE, D(2012, 12, 12), (D(2019, 1, 1), OP[1]), [(ASTHMA, D(2018, 1, 1))],
              [(SALBUTAMOL, D(2018, 1, 2))], []),
    # in: both through descendants; sex neither male nor female
    8: Person(OTHER, D(2009, 9, 9), OP, [(CHILDHOOD_ASTHMA, D(2016, 3, 3))],
              [(SALBUTAMOL_INHALER, D(2016, 3, 10))], []),
    # in: plain asthma (twice) and plain salbutamol; peak flow 90 %
    9: Person(FEMALE, D(2014, 2, 2), OP, [(ASTHMA, D(2020, 2, 2)), (ASTHMA, D(2021, 2, 2))],
              [(SALBUTAMOL, D(2020, 3, 1))], [(D(2020, 2, 2), 90.0)]),
}  # fmt: skip
TINY_IN_WITH_DESCENDANTS = {1, 2, 8, 9}
TINY_IN_WITHOUT_DESCENDANTS = {9}

CONCEPTS = [
    (ASTHMA, "Asthma", "Condition", "SNOMED", "Clinical Finding", "195967001"),
    (CHILDHOOD_ASTHMA, "Childhood asthma (local)", "Condition", "PHDS local", "Clinical Finding", "L101"),
    (BRONCHITIS, "Acute bronchitis", "Condition", "SNOMED", "Clinical Finding", "10509002"),
    (SALBUTAMOL, "albuterol", "Drug", "RxNorm", "Ingredient", "435"),
    (SALBUTAMOL_INHALER, "salbutamol 100 microgram inhaler (local)", "Drug", "PHDS local", "Clinical Drug",
     "L201"),
    (PEAK_FLOW, "Peak flow, % of predicted (local)", "Measurement", "PHDS local", "Clinical Observation",
     "L301"),
]  # fmt: skip
ANCESTRY = [(c, c, 0) for c, *_ in CONCEPTS]
ANCESTRY += [(ASTHMA, CHILDHOOD_ASTHMA, 1), (SALBUTAMOL, SALBUTAMOL_INHALER, 1)]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows)


def write_tiny_hospital(store: CdmStore) -> None:
    """Create the CDM tables in ``store`` and write the tiny asthma hospital into them."""
    store.create_tables()
    persons, periods, conditions, drugs, measurements = [], [], [], [], []
    for pid, (gender, birth, (op_start, op_end), conds, drs, flows) in TINY_PEOPLE.items():
        persons.append(
            {"person_id": pid, "gender_concept_id": gender, "year_of_birth": birth.year,
             "month_of_birth": birth.month, "day_of_birth": birth.day,
             "birth_datetime": dt.datetime.combine(birth, dt.time()), "race_concept_id": 0,
             "ethnicity_concept_id": 0}
        )  # fmt: skip
        periods.append(
            {"observation_period_id": pid, "person_id": pid, "observation_period_start_date": op_start,
             "observation_period_end_date": op_end, "period_type_concept_id": EHR}
        )  # fmt: skip
        for concept, day in conds:
            conditions.append(
                {"condition_occurrence_id": len(conditions) + 1, "person_id": pid,
                 "condition_concept_id": concept, "condition_start_date": day, "condition_end_date": day,
                 "condition_type_concept_id": EHR}
            )  # fmt: skip
        for concept, day in drs:
            drugs.append(
                {"drug_exposure_id": len(drugs) + 1, "person_id": pid, "drug_concept_id": concept,
                 "drug_exposure_start_date": day, "drug_exposure_end_date": day + dt.timedelta(days=29),
                 "drug_type_concept_id": EHR}
            )  # fmt: skip
        for day, value in flows:
            measurements.append(
                {"measurement_id": len(measurements) + 1, "person_id": pid,
                 "measurement_concept_id": PEAK_FLOW, "measurement_date": day,
                 "measurement_type_concept_id": EHR, "value_as_number": value}
            )  # fmt: skip
    concepts = [
        {"concept_id": c, "concept_name": n, "domain_id": d, "vocabulary_id": v, "concept_class_id": k,
         "standard_concept": "S", "concept_code": code, "valid_start_date": D(1970, 1, 1),
         "valid_end_date": D(2099, 12, 31), "invalid_reason": None}
        for c, n, d, v, k, code in CONCEPTS
    ]  # fmt: skip
    ancestry = [
        {"ancestor_concept_id": a, "descendant_concept_id": d, "min_levels_of_separation": n,
         "max_levels_of_separation": n}
        for a, d, n in ANCESTRY
    ]  # fmt: skip
    for name, rows in [
        ("person", persons), ("observation_period", periods), ("condition_occurrence", conditions),
        ("drug_exposure", drugs), ("measurement", measurements), ("concept", concepts),
        ("concept_ancestor", ancestry),
    ]:  # fmt: skip
        store.append_arrow(name, _table(rows))


@pytest.fixture
def tiny_people() -> dict[int, Person]:
    """The persons of the tiny hospital."""
    return TINY_PEOPLE


@pytest.fixture
def tiny_members() -> dict[str, set[int]]:
    """Who is in the asthma cohort of data/asthma_atlas.json, with and without descendant concepts."""
    return {"with_descendants": TINY_IN_WITH_DESCENDANTS, "without_descendants": TINY_IN_WITHOUT_DESCENDANTS}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def tiny(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CdmStore]:
    """The tiny asthma hospital on DuckDB and on PostgreSQL."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path}/tiny.duckdb"
    else:
        url = request.getfixturevalue("pg_schema_url")
    with open_store(url) as store:
        write_tiny_hospital(store)
        yield store


@pytest.fixture
def tiny_duckdb(tmp_path: Path) -> Iterator[CdmStore]:
    """The tiny asthma hospital in a fresh DuckDB file."""
    with open_store(f"duckdb:///{tmp_path}/tiny.duckdb") as store:
        write_tiny_hospital(store)
        yield store


@pytest.fixture(scope="session")
def synthea_path(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthea27Nj (28 persons, CDM 5.4, empty CONCEPT_ANCESTOR) loaded once into a DuckDB file."""
    path = tmp_path_factory.mktemp("synthea") / "synthea27nj.duckdb"
    with open_store(f"duckdb:///{path}") as store:
        load_cdm(shared_data / "omop" / "synthea27nj", store)
    return path


@pytest.fixture
def synthea(synthea_path: Path) -> Iterator[CdmStore]:
    """A read-only store on the loaded Synthea27Nj file (a node need not write to its CDM)."""
    with open_store(f"duckdb:///{synthea_path}", read_only=True) as store:
        yield store


@pytest.fixture(scope="session")
def synthetic_hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic paediatric hospital (2,000 children, the shipped vocabulary subset) as a DuckDB file."""
    from phds.omop.simulator import generate

    (result,) = generate(tmp_path_factory.mktemp("synth"), hospitals=1, patients=2_000, seed=7)
    return result.path
