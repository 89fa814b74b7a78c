"""OMOP analysis tables on a synthetic hospital: every covariate kind equals independent DuckDB SQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from phds.analyses.omop_table import omop_table_arrow
from phds.analyses.tables import TableSpec, analysis_table
from phds.errors import InputError
from phds.omop.load import load_cdm
from phds.omop.store import CdmStore, open_store
from phds.omop.vocabulary import concepts as c
from phds.paediatrics.growth import sds
from phds.sources import NodeData

ASTHMA_COHORT = {"entry": {"condition": {"concepts": [c.ASTHMA]}}}
EVERYONE = {"entry": {"visit": {"concepts": [c.INPATIENT_VISIT, c.OUTPATIENT_VISIT, c.EMERGENCY_ROOM_VISIT]}}}
ASTHMA_VISIT = {"condition": {"concepts": [c.ASTHMA]}}
YEAR_BEFORE = {"start": -365, "end": 0}
COVARIATES: list[dict[str, Any]] = [
    {"name": "age_d", "kind": "age", "unit": "days"},
    {"name": "age_m", "kind": "age", "unit": "months"},
    {"name": "age_y", "kind": "age", "unit": "years"},
    {"name": "age_dec", "kind": "age", "unit": "decimal_years"},
    {"name": "male", "kind": "sex"},
    {"name": "female", "kind": "sex", "coding": "female"},
    {"name": "sex", "kind": "sex", "coding": "label"},
    {"name": "group", "kind": "ich_e11_group"},
    {"name": "ics", "kind": "drug", "concepts": list(c.INHALED_CORTICOSTEROIDS),
     "window": {"start": 0, "end": 30}},
    {"name": "salbutamol_n", "kind": "drug", "concepts": [c.SALBUTAMOL], "descendants": True,
     "window": {"start": -30, "end": 365}, "value": "count"},
    {"name": "otitis_before", "kind": "condition", "concepts": [c.OTITIS_MEDIA], "descendants": True,
     "window": {"end": -1}},
    {"name": "otitis_exact", "kind": "condition", "concepts": [c.OTITIS_MEDIA], "window": {"end": -1}},
    {"name": "nebuliser", "kind": "procedure", "concepts": [c.NEBULIZER_THERAPY], "window": {"start": 0}},
    {"name": "ed_n", "kind": "visit", "concepts": [c.EMERGENCY_ROOM_VISIT], "window": {}, "value": "count"},
    {"name": "admitted", "kind": "visit", "concepts": [c.INPATIENT_VISIT], "window": {"start": 1, "end": 365},
     "visit": ASTHMA_VISIT},
    {"name": "weight", "kind": "measurement", "concepts": [c.BODY_WEIGHT], "window": YEAR_BEFORE},
    {"name": "weight_first", "kind": "measurement", "concepts": [c.BODY_WEIGHT], "window": YEAR_BEFORE,
     "value": "earliest"},
    {"name": "height_sds", "kind": "measurement", "concepts": [c.BODY_HEIGHT], "window": YEAR_BEFORE,
     "value": "sds", "growth": "height"},
    {"name": "bmi_sds", "kind": "measurement", "concepts": [c.BMI], "window": {"start": 0, "end": 0},
     "visit": ASTHMA_VISIT, "value": "sds", "growth": "bmi"},
    {"name": "adm", "kind": "time_to_event", "domain": "visit", "concepts": [c.INPATIENT_VISIT],
     "visit": ASTHMA_VISIT, "time_at_risk": {"start": 1}},
    {"name": "pred", "kind": "time_to_event", "domain": "drug", "concepts": [c.PREDNISOLONE],
     "time_at_risk": {"start": 0, "end": 365}},
]  # fmt: skip
COHORT_SQL = f"""
WITH ev AS (
  SELECT co.person_id, co.condition_start_date AS d FROM condition_occurrence co JOIN observation_period o
    ON o.person_id = co.person_id
   AND co.condition_start_date BETWEEN o.observation_period_start_date AND o.observation_period_end_date
  WHERE co.condition_concept_id = {c.ASTHMA})
SELECT ev.person_id, min(ev.d) AS index_date FROM ev GROUP BY ev.person_id
"""


@pytest.fixture(scope="module")
def cdm_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The respiratory synthetic hospital (3,000 children) as OMOP CSV files."""
    from phds.omop.simulator import generate

    results = generate(tmp_path_factory.mktemp("csv"), hospitals=3, patients=3_000, seed=11, fmt="csv")
    return results[2].path


@pytest.fixture(scope="module")
def store(cdm_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdmStore]:
    path = tmp_path_factory.mktemp("duck") / "cdm.duckdb"
    with open_store(f"duckdb:///{path}") as writable:
        load_cdm(cdm_csv, writable)
    with open_store(f"duckdb:///{path}", read_only=True) as read_only:
        yield read_only


@pytest.fixture(scope="module")
def con(store: CdmStore) -> duckdb.DuckDBPyConnection:
    """A DuckDB cursor on the same file, for the independent SQL."""
    cursor: duckdb.DuckDBPyConnection = store.con.cursor()  # type: ignore[attr-defined]
    return cursor


@pytest.fixture(scope="module")
def table(store: CdmStore) -> pd.DataFrame:
    spec = TableSpec.model_validate({"cohort": ASTHMA_COHORT, "covariates": COVARIATES})
    frame: pd.DataFrame = omop_table_arrow(store, spec).to_pandas().set_index("subject_id")
    return frame


def sql(con: duckdb.DuckDBPyConnection, select: str, joins: str = "") -> pd.DataFrame:
    """Run ``SELECT k.person_id, <select> FROM cohort k JOIN person p <joins>`` keyed by person."""
    query = f"""WITH k AS ({COHORT_SQL}) SELECT k.person_id, {select}
      FROM k JOIN person p ON p.person_id = k.person_id {joins}"""
    return con.execute(query).df().set_index("person_id").sort_index()


def test_one_row_per_person_at_the_first_diagnosis(
    table: pd.DataFrame, con: duckdb.DuckDBPyConnection
) -> None:
    expected = sql(con, "k.index_date")
    assert len(table) > 200 and table.index.is_unique
    assert list(table.index) == list(expected.index)
    assert list(table.columns) == [col for cv in COVARIATES for col in _columns(cv)]


def _columns(cv: dict[str, Any]) -> list[str]:
    return [f"{cv['name']}_time", f"{cv['name']}_event"] if cv["kind"] == "time_to_event" else [cv["name"]]


BIRTH = "make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth)"


def test_age_sex_and_age_group_equal_sql(table: pd.DataFrame, con: duckdb.DuckDBPyConnection) -> None:
    months = (
        f"(year(k.index_date) - year({BIRTH})) * 12 + month(k.index_date) - month({BIRTH})"
        f" - (day(k.index_date) < day({BIRTH}))::INT"
    )
    expected = sql(
        con,
        f"""k.index_date - {BIRTH} AS age_d, {months} AS age_m, ({months}) // 12 AS age_y,
        (k.index_date - {BIRTH}) / 365.25 AS age_dec,
        CASE p.gender_concept_id WHEN 8507 THEN 1 WHEN 8532 THEN 0 END AS male,
        CASE p.gender_concept_id WHEN 8532 THEN 1 WHEN 8507 THEN 0 END AS female,
        CASE p.gender_concept_id WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' ELSE 'other' END AS sex,
        CASE WHEN k.index_date - {BIRTH} <= 27 THEN 'term newborn (0-27 d)'
             WHEN ({months}) // 12 < 2 THEN 'infant (28 d-23 m)'
             WHEN ({months}) // 12 < 12 THEN 'child (2-11 y)'
             WHEN ({months}) // 12 < 18 THEN 'adolescent (12-17 y)' ELSE 'adult (18+ y)' END AS "group"
        """,
    )
    for name in ["age_d", "age_m", "age_y", "male", "female", "sex", "group"]:
        assert table[name].tolist() == expected[name].tolist(), name
    assert np.allclose(table["age_dec"], expected["age_dec"], rtol=0, atol=1e-12)
    assert set(table["group"]) >= {"infant (28 d-23 m)", "child (2-11 y)", "adolescent (12-17 y)"}


def _flag_sql(table: str, concept: str, date: str, concepts: str, window: str, extra: str = "") -> str:
    return f"""(SELECT count(*) FROM {table} e WHERE e.person_id = k.person_id AND e.{concept} IN ({concepts})
                AND e.{date} - k.index_date {window} {extra})"""


def test_event_flags_and_counts_equal_sql(table: pd.DataFrame, con: duckdb.DuckDBPyConnection) -> None:
    ics = ", ".join(map(str, c.INHALED_CORTICOSTEROIDS))
    salbutamol = (
        f"SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = {c.SALBUTAMOL}"
    )
    asthma_visits = (
        f"SELECT visit_occurrence_id FROM condition_occurrence WHERE condition_concept_id = {c.ASTHMA}"
    )
    expected = sql(
        con,
        f"""{_flag_sql("drug_exposure", "drug_concept_id", "drug_exposure_start_date", ics,
                       "BETWEEN 0 AND 30")} > 0 AS ics,
            {_flag_sql("drug_exposure", "drug_concept_id", "drug_exposure_start_date",
                       f"SELECT {c.SALBUTAMOL} UNION {salbutamol}", "BETWEEN -30 AND 365")} AS salbutamol_n,
            {_flag_sql("procedure_occurrence", "procedure_concept_id", "procedure_date",
                       str(c.NEBULIZER_THERAPY), ">= 0")} > 0 AS nebuliser,
            {_flag_sql("visit_occurrence", "visit_concept_id", "visit_start_date",
                       str(c.EMERGENCY_ROOM_VISIT), "IS NOT NULL")} AS ed_n,
            {_flag_sql("visit_occurrence", "visit_concept_id", "visit_start_date", str(c.INPATIENT_VISIT),
                       "BETWEEN 1 AND 365", f"AND e.visit_occurrence_id IN ({asthma_visits})")}
              > 0 AS admitted
        """,
    )  # fmt: skip
    for name in ["ics", "salbutamol_n", "nebuliser", "ed_n", "admitted"]:
        assert table[name].tolist() == expected[name].astype(int).tolist(), name
        assert table[name].sum() > 0, name  # the data exercise each covariate
    assert table["salbutamol_n"].max() > 1 and table["ed_n"].max() > 1


def test_descendants_come_from_concept_ancestor(table: pd.DataFrame, con: duckdb.DuckDBPyConnection) -> None:
    """The generator writes acute otitis media, a descendant of otitis media, never otitis media itself."""
    expected = sql(
        con,
        f"""EXISTS (SELECT 1 FROM condition_occurrence e JOIN concept_ancestor a
                    ON a.descendant_concept_id = e.condition_concept_id
                   AND a.ancestor_concept_id = {c.OTITIS_MEDIA}
                    WHERE e.person_id = k.person_id
                      AND e.condition_start_date < k.index_date)::INT AS otitis""",
    )
    assert table["otitis_before"].tolist() == expected["otitis"].tolist()
    assert table["otitis_before"].sum() > 0 and table["otitis_exact"].sum() == 0


def test_measurements_latest_and_earliest_equal_sql(
    table: pd.DataFrame, con: duckdb.DuckDBPyConnection
) -> None:
    def pick(order: str) -> str:
        return f"""(SELECT m.value_as_number FROM measurement m WHERE m.person_id = k.person_id
                    AND m.measurement_concept_id = {c.BODY_WEIGHT} AND m.value_as_number IS NOT NULL
                    AND m.measurement_date - k.index_date BETWEEN -365 AND 0
                    ORDER BY m.measurement_date {order}, m.measurement_id {order} LIMIT 1)"""

    expected = sql(con, f"{pick('DESC')} AS weight, {pick('ASC')} AS weight_first")
    for name in ["weight", "weight_first"]:
        assert table[name].isna().tolist() == expected[name].isna().tolist()
        assert np.allclose(table[name].dropna(), expected[name].dropna(), rtol=0, atol=1e-9)
    assert table["weight"].notna().mean() > 0.9 and (table["weight"] != table["weight_first"]).any()


def test_growth_sds_is_rcpchgrowth_of_the_chosen_measurement(
    table: pd.DataFrame, con: duckdb.DuckDBPyConnection
) -> None:
    """Each SDS equals rcpchgrowth's (scalar API) for the measurement the SQL picks, at its decimal age."""
    expected = sql(
        con,
        f"""p.gender_concept_id AS g,
            (SELECT m.value_as_number FROM measurement m WHERE m.person_id = k.person_id
             AND m.measurement_concept_id = {c.BMI} AND m.unit_concept_id = {c.UNIT_KG_PER_M2}
             AND m.measurement_date = k.index_date AND m.visit_occurrence_id IN (
                 SELECT visit_occurrence_id FROM condition_occurrence WHERE condition_concept_id = {c.ASTHMA})
             ) AS bmi,
            (k.index_date - {BIRTH}) / 365.25 AS age""",
    )
    rows = expected.dropna().head(150)
    scalar = [
        sds("bmi", float(b), "male" if g == c.MALE else "female", float(a))
        for b, g, a in zip(rows["bmi"], rows["g"], rows["age"], strict=True)
    ]
    assert np.allclose(table.loc[rows.index, "bmi_sds"], scalar, rtol=0, atol=1e-6)
    assert table["bmi_sds"].isna().tolist() == expected["bmi"].isna().tolist()
    heights = table["height_sds"].dropna()
    assert len(heights) > 0.9 * len(table) and abs(heights.mean()) < 0.2  # UK-WHO: about N(0, 1)


def _tte_sql(event_sql: str, start: int, end: int | None, censor_at_death: bool) -> str:
    """Independent time-to-event: first event day in [start, last day at risk], days from the index."""
    limits = ["o.end_day"] + ([str(end)] if end is not None else [])
    if censor_at_death:
        limits.append("coalesce(d.day, o.end_day)")
    return f"""
    , r AS (SELECT k.person_id, k.index_date, least({", ".join(limits)}) AS end_day FROM k
            LEFT JOIN (SELECT k2.person_id, max(op.observation_period_end_date) - k2.index_date AS end_day
                       FROM k k2 JOIN observation_period op ON op.person_id = k2.person_id
                        AND k2.index_date BETWEEN op.observation_period_start_date
                                              AND op.observation_period_end_date
                       GROUP BY k2.person_id, k2.index_date) o ON o.person_id = k.person_id
            LEFT JOIN (SELECT person_id, min(death_date) - (SELECT index_date FROM k k3
                       WHERE k3.person_id = death.person_id) AS day FROM death GROUP BY person_id) d
              ON d.person_id = k.person_id),
    e AS (SELECT r.person_id, min(x.day) AS first_day FROM r JOIN ({event_sql}) x ON x.person_id = r.person_id
          AND x.day BETWEEN {start} AND r.end_day GROUP BY r.person_id)
    SELECT r.person_id, CASE WHEN r.end_day >= {start} THEN coalesce(e.first_day, r.end_day) END AS "time",
           CASE WHEN r.end_day >= {start} THEN (e.first_day IS NOT NULL)::INT END AS event
    FROM r LEFT JOIN e USING (person_id) ORDER BY r.person_id"""


def _events_sql(table: str, concept: str, date: str, ids: str, extra: str = "") -> str:
    return f"""SELECT x.person_id, x.{date} - k.index_date AS day FROM {table} x JOIN k USING (person_id)
               WHERE x.{concept} IN ({ids}) {extra}"""


def _compare_tte(frame: pd.DataFrame, name: str, expected: pd.DataFrame) -> None:
    got = frame[[f"{name}_time", f"{name}_event"]].sort_index()
    assert got.index.tolist() == expected.index.tolist()
    assert got[f"{name}_time"].astype("Int64").tolist() == expected["time"].astype("Int64").tolist()
    assert got[f"{name}_event"].astype("Int64").tolist() == expected["event"].astype("Int64").tolist()


def test_time_to_event_equals_sql(table: pd.DataFrame, con: duckdb.DuckDBPyConnection) -> None:
    asthma = f"SELECT visit_occurrence_id FROM condition_occurrence WHERE condition_concept_id = {c.ASTHMA}"
    admissions = _events_sql(
        "visit_occurrence", "visit_concept_id", "visit_start_date", str(c.INPATIENT_VISIT),
        f"AND x.visit_occurrence_id IN ({asthma})",
    )  # fmt: skip
    prednisolone = _events_sql(
        "drug_exposure", "drug_concept_id", "drug_exposure_start_date", str(c.PREDNISOLONE)
    )
    for name, events, start, end in [("adm", admissions, 1, None), ("pred", prednisolone, 0, 365)]:
        expected = con.execute(f"WITH k AS ({COHORT_SQL}) {_tte_sql(events, start, end, True)}").df()
        _compare_tte(table, name, expected.set_index("person_id"))
        assert table[f"{name}_event"].sum() > 5 and table[f"{name}_time"].max() > 365 * (end is None)
    assert table["pred_time"].max() == 365 and table["adm_time"].min() >= 1


def test_time_to_event_is_censored_at_death(cdm_csv: Path, tmp_path: Path) -> None:
    """Every child from their first visit. The generator ends observation at death, so deaths are
    moved 200 days earlier here: censoring at death then ends the time at risk before observation does."""
    with open_store(f"duckdb:///{tmp_path / 'cdm.duckdb'}") as store:
        load_cdm(cdm_csv, store)
        store.execute("UPDATE death SET death_date = death_date - 200")
        covariates = [
            {"name": "death", "kind": "time_to_event", "domain": "death"},
            {"name": "amox", "kind": "time_to_event", "domain": "drug", "concepts": [c.AMOXICILLIN]},
            {"name": "amox_nc", "kind": "time_to_event", "domain": "drug", "concepts": [c.AMOXICILLIN],
             "censor_at_death": False},
        ]  # fmt: skip
        spec = TableSpec.model_validate({"cohort": EVERYONE, "covariates": covariates})
        frame = omop_table_arrow(store, spec).to_pandas().set_index("subject_id")
        visits = ", ".join(str(v) for v in EVERYONE["entry"]["visit"]["concepts"])  # not PICU stays
        first_visit = f"""SELECT v.person_id, min(v.visit_start_date) AS index_date FROM visit_occurrence v
            JOIN observation_period o ON o.person_id = v.person_id
             AND v.visit_start_date BETWEEN o.observation_period_start_date AND o.observation_period_end_date
            WHERE v.visit_concept_id IN ({visits}) GROUP BY v.person_id"""
        deaths = (
            "SELECT x.person_id, x.death_date - k.index_date AS day FROM death x JOIN k USING (person_id)"
        )
        amoxicillin = _events_sql(
            "drug_exposure", "drug_concept_id", "drug_exposure_start_date", str(c.AMOXICILLIN)
        )
        con = store.con  # type: ignore[attr-defined]
        for name, events, censor in [
            ("death", deaths, True),
            ("amox", amoxicillin, True),
            ("amox_nc", amoxicillin, False),
        ]:
            expected = con.execute(f"WITH k AS ({first_visit}) {_tte_sql(events, 0, None, censor)}").df()
            _compare_tte(frame, name, expected.set_index("person_id"))
    assert frame["death_event"].sum() > 3
    shortened = frame["amox_time"] < frame["amox_nc_time"]
    assert shortened.sum() > 3  # censoring at death made a difference
    assert (frame.loc[shortened, "amox_time"] == frame.loc[shortened, "death_time"]).all()


def test_every_entry_is_a_row_and_a_circe_object_is_read(
    store: CdmStore, con: duckdb.DuckDBPyConnection
) -> None:
    """A Circe cohort (every asthma diagnosis, each entry lasting one day) with ``entries: all``."""
    from phds.cohorts import parse_cohort

    circe = dict(parse_cohort("entry: {condition: {concepts: [317009]}}\nindex: all").expression)
    circe["EndStrategy"] = {"DateOffset": {"DateField": "StartDate", "Offset": 0}}
    circe["CollapseSettings"] = {"CollapseType": "ERA", "EraPad": 0}
    covariates = [{"name": "age_d", "kind": "age", "unit": "days"}]
    spec = TableSpec.model_validate({"cohort": circe, "covariates": covariates, "entries": "all"})
    frame = omop_table_arrow(store, spec).to_pandas()
    expected = con.execute(f"""SELECT DISTINCT co.person_id, co.condition_start_date - {BIRTH} AS age_d
        FROM condition_occurrence co JOIN person p USING (person_id)
        JOIN observation_period o USING (person_id)
        WHERE co.condition_concept_id = {c.ASTHMA} AND co.condition_start_date
              BETWEEN o.observation_period_start_date AND o.observation_period_end_date
        ORDER BY 1, 2""").df()
    assert frame.values.tolist() == expected.values.tolist()
    assert len(frame) > 1.5 * frame["subject_id"].nunique()  # children with asthma have several diagnoses


def test_analysis_table_at_a_node_is_cached_and_names_missing_variables(store: CdmStore) -> None:
    data = NodeData({"cdm": store.url}, {})
    try:
        spec = TableSpec.model_validate(
            {"cohort": ASTHMA_COHORT, "covariates": COVARIATES[:9], "source": "cdm"}
        )
        first = analysis_table(data, spec, ["age_dec", "male", "ics"])
        again = analysis_table(data, spec, ["ics"])
        assert again is first  # cached: a second GLM round does not rebuild the table
        summary = first.aggregate(n=first.count(), ics=first.ics.sum()).execute().iloc[0]
        assert 200 < summary["n"] and 0 < summary["ics"] < summary["n"]
        with pytest.raises(InputError, match="no variable 'bmi'") as info:
            analysis_table(data, spec, ["ics", "bmi"], field="analysis.params.variables")
        assert info.value.field == "analysis.params.variables"
    finally:
        data.close()


@pytest.mark.postgres
def test_duckdb_and_postgresql_give_the_same_table(
    store: CdmStore, cdm_csv: Path, pg_schema_url: str
) -> None:
    spec = TableSpec.model_validate({"cohort": ASTHMA_COHORT, "covariates": COVARIATES})
    on_duckdb = omop_table_arrow(store, spec).to_pandas()
    with open_store(pg_schema_url) as pg:
        load_cdm(cdm_csv, pg)
        on_postgres = omop_table_arrow(pg, spec).to_pandas()
    assert list(on_postgres.columns) == list(on_duckdb.columns) and len(on_postgres) == len(on_duckdb) > 200
    for column in on_duckdb.columns:
        left, right = on_duckdb[column], on_postgres[column]
        assert left.isna().tolist() == right.isna().tolist(), column
        if left.dtype.kind == "f":
            assert np.allclose(left.dropna(), right.dropna(), rtol=0, atol=1e-9), column
        else:
            assert left.dropna().tolist() == right.dropna().tolist(), column
