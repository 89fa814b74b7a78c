"""The simulator's PICU admissions: valid CDM rows, plausible values, case mix, reproducibility by seed."""

from __future__ import annotations

import dataclasses
import filecmp
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from phds.omop.simulator import HospitalResult, codes, generate
from phds.omop.simulator import picu_truth as pt
from phds.omop.simulator.casemix import PROFILES, HospitalProfile
from phds.omop.simulator.chunk import IdCounter, build_chunk
from phds.omop.vocabulary import concepts as c

N = 10_000
#: Plausible recorded ranges (clinical limits of survivable physiology, wider than any normal range).
PLAUSIBLE = {
    c.HEART_RATE: (40, 250, c.UNIT_PER_MINUTE),
    c.RESPIRATORY_RATE: (8, 90, c.UNIT_PER_MINUTE),
    c.BODY_TEMPERATURE: (34.0, 42.0, c.UNIT_DEGREE_CELSIUS),
    c.SYSTOLIC_BLOOD_PRESSURE: (40, 180, c.UNIT_MM_HG),
    c.LACTATE_BLOOD: (0.3, 20.0, c.UNIT_MMOL_PER_L),
    c.LEUKOCYTES: (0.5, 60.0, c.UNIT_THOUSAND_PER_UL),
    c.C_REACTIVE_PROTEIN: (0.2, 400.0, c.UNIT_MG_PER_L),
}


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> list[HospitalResult]:
    """The general hospital and the tertiary centre, 10,000 children each in two chunks."""
    return generate(tmp_path_factory.mktemp("picu-sim"), hospitals=2, patients=N, seed=21, chunk_size=6_000)


def rows(result: HospitalResult, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(result.path), read_only=True) as con:
        return con.execute(sql).fetchall()


PICU = f"SELECT * FROM visit_occurrence WHERE visit_concept_id = {c.INTENSIVE_CARE_VISIT}"


def test_picu_visits_are_one_per_child_in_the_icu_care_site_with_the_window_observed(
    hospitals: list[HospitalResult],
) -> None:
    for h in hospitals:
        [(n, children, sites, short, inside)] = rows(
            h,
            f"""SELECT count(*), count(DISTINCT person_id), list(DISTINCT care_site_id),
                   count(*) FILTER (WHERE o.observation_period_end_date
                                           < v.visit_start_date + {pt.WINDOW_DAYS}),
                   bool_and(v.visit_end_date <= o.observation_period_end_date
                            AND v.visit_start_date >= o.observation_period_start_date
                            AND v.visit_end_date >= v.visit_start_date)
                FROM ({PICU}) v JOIN observation_period o USING (person_id)""",
        )
        assert n == children > 50, h.slug  # at most one admission per child
        assert sites == [4] and short == 0 and inside
        [(name,)] = rows(h, "SELECT care_site_name FROM care_site WHERE care_site_id = 4")
        assert "intensive care" in str(name)


def test_each_admission_has_the_seven_values_with_units_on_the_admission_day(
    hospitals: list[HospitalResult],
) -> None:
    for h in hospitals:
        found = rows(
            h,
            f"""SELECT m.measurement_concept_id, m.unit_concept_id, count(*),
                   count(DISTINCT m.visit_occurrence_id),
                   min(m.value_as_number), max(m.value_as_number),
                   bool_and(m.measurement_date = v.visit_start_date AND m.person_id = v.person_id)
                FROM measurement m JOIN ({PICU}) v USING (visit_occurrence_id)
                GROUP BY ALL ORDER BY 1""",
        )
        [(admissions,)] = rows(h, f"SELECT count(*) FROM ({PICU})")
        assert [r[0] for r in found] == sorted(PLAUSIBLE)  # nothing else is measured in the PICU visit
        for concept, unit, n, visits, lo, hi, same_day in found:
            low, high, expected_unit = PLAUSIBLE[int(concept)]  # type: ignore[call-overload]
            assert unit == expected_unit and n == visits == admissions and same_day, concept
            assert low <= float(lo) and float(hi) <= high, (concept, lo, hi)  # type: ignore[arg-type]
        [(typ,)] = rows(h, "SELECT typeof(value_as_number) FROM measurement LIMIT 1")
        assert typ in {"DOUBLE", "DECIMAL(18,3)"} or str(typ).startswith("DECIMAL")


def test_sepsis_is_recorded_only_in_picu_visits_within_the_window(hospitals: list[HospitalResult]) -> None:
    for h in hospitals:
        [(n, in_picu, in_window, per_visit)] = rows(
            h,
            f"""SELECT count(*), count(*) FILTER (WHERE v.visit_concept_id = {c.INTENSIVE_CARE_VISIT}),
                   count(*) FILTER (WHERE s.condition_start_date BETWEEN v.visit_start_date
                                    AND least(v.visit_start_date + {pt.WINDOW_DAYS}, v.visit_end_date)),
                   max(k)
                FROM (SELECT *, count(*) OVER (PARTITION BY visit_occurrence_id) AS k
                      FROM condition_occurrence
                      WHERE condition_concept_id = {c.SEPSIS}) s
                JOIN visit_occurrence v USING (visit_occurrence_id)""",
        )
        assert n > 10 and n == in_picu == in_window and per_visit == 1, h.slug
        [(others,)] = rows(
            h,
            f"""SELECT count(*) FROM condition_occurrence WHERE visit_occurrence_id IN
                (SELECT visit_occurrence_id FROM ({PICU})) AND condition_concept_id <> {c.SEPSIS}""",
        )
        assert others == 0
    assert {codes.INTENSIVE_CARE, codes.SEPSIS, c.LACTATE_BLOOD, c.UNIT_MM_HG} <= codes.all_concept_ids()


def test_admission_values_follow_the_cited_age_references(hospitals: list[HospitalResult]) -> None:
    """Heart and respiratory rates fall with age (Fleming 2011); sepsis admissions exceed the Goldstein 2005
    SIRS tachycardia limit more often than the others."""
    values = rows(
        hospitals[1],
        f"""SELECT (v.visit_start_date
                - make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth)) / 365.25,
               max(m.value_as_number) FILTER (WHERE m.measurement_concept_id = {c.HEART_RATE}),
               max(m.value_as_number) FILTER (WHERE m.measurement_concept_id = {c.RESPIRATORY_RATE}),
               EXISTS (SELECT 1 FROM condition_occurrence s
                       WHERE s.visit_occurrence_id = v.visit_occurrence_id)
            FROM ({PICU}) v JOIN person p USING (person_id) JOIN measurement m USING (visit_occurrence_id)
            GROUP BY ALL""",
    )
    age, hr, rr, sepsis = (np.array([r[i] for r in values], dtype=float) for i in range(4))
    infants, teens = age < 1, age >= 12
    assert np.median(hr[infants]) > np.median(hr[teens]) + 30
    assert np.median(rr[infants]) > 1.8 * np.median(rr[teens])
    hr_limit, rr_limit = np.zeros_like(age), np.zeros_like(age)
    for lo, hi, tachycardia, tachypnoea, _wbc, _sbp in pt.SIRS_LIMITS:
        band = (age >= lo) & (age < hi)
        hr_limit[band], rr_limit[band] = tachycardia, tachypnoea
    assert (hr_limit > 0).all()  # the bands cover 0-18 years
    septic = sepsis == 1
    for value, limit in ((hr, hr_limit), (rr, rr_limit)):
        above = value > limit
        assert above[septic].mean() > above[~septic].mean()


def test_case_mix_of_intensive_care_differs_between_hospitals(hospitals: list[HospitalResult]) -> None:
    share = (
        f"SELECT count(*) / {N}, avg((s.person_id IS NOT NULL)::INT) FROM ({PICU}) v LEFT JOIN "
        "condition_occurrence s ON s.visit_occurrence_id = v.visit_occurrence_id "
        f"AND s.condition_concept_id = {c.SEPSIS}"
    )
    ((general_rate, general_sepsis),) = rows(hospitals[0], share)
    ((tertiary_rate, tertiary_sepsis),) = rows(hospitals[1], share)
    assert float(tertiary_rate) > 2 * float(general_rate)  # type: ignore[arg-type]  # 4% against 1.5%
    assert float(tertiary_sepsis) > float(general_sepsis)  # type: ignore[arg-type]
    mixes = [p.picu for p in PROFILES]
    assert len({(m.rate, m.severity_mean, m.infant_share) for m in mixes}) == len(mixes)


def test_picu_rows_are_reproducible_by_seed(tmp_path: Path) -> None:
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        generate(tmp_path / name, hospitals=2, patients=3_000, seed=seed, fmt="csv", chunk_size=2_000)
    files = ["central-tertiary/VISIT_OCCURRENCE.csv", "central-tertiary/MEASUREMENT.csv"]
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert (mismatch, errors) == ([], [])
    _, differ, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", files, shallow=False)
    assert differ == files


def test_adding_picu_admissions_changes_no_other_row() -> None:
    """The PICU draws come from a generator spawned from the chunk's: with no admissions, every other row
    is the same, so the asthma ground truth and the earlier case mix are untouched."""
    with_picu = PROFILES[1]
    without = dataclasses.replace(with_picu, picu=pt.PicuMix(rate=0.0))

    def chunk(profile: HospitalProfile) -> dict[str, pa.Table]:
        rng = np.random.default_rng(np.random.SeedSequence(9, spawn_key=(1, 0)))
        return build_chunk(rng, profile, 4_000, 1, date(2025, 12, 31), IdCounter())

    a, b = chunk(with_picu), chunk(without)
    for table in ("person", "observation_period", "death"):
        assert a[table].equals(b[table]), table
    for table in ("drug_exposure", "procedure_occurrence"):  # visit ids shift: PICU visits are interleaved
        assert (
            a[table]
            .drop_columns(["visit_occurrence_id"])
            .equals(b[table].drop_columns(["visit_occurrence_id"]))
        )
    keep = ["person_id", "visit_concept_id", "visit_start_date", "visit_end_date"]
    visits = a["visit_occurrence"]
    other = visits.filter(pc.not_equal(visits["visit_concept_id"], c.INTENSIVE_CARE_VISIT))
    assert other.select(keep).equals(b["visit_occurrence"].select(keep))
    assert visits.num_rows > other.num_rows
