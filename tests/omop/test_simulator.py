"""The simulator of fake paediatric hospitals: reproducibility, ages, vocabulary, case mix, integrity."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest

from phds.errors import Conflict
from phds.omop.load import load_cdm
from phds.omop.simulator import REFERENCE_DATE, HospitalResult, codes, generate
from phds.omop.simulator.casemix import CONDITIONS, PROFILES, hospital_profiles
from phds.omop.simulator.eras import build_eras
from phds.omop.store import open_store
from phds.paediatrics.age import age_years_array

N = 20_000


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> list[HospitalResult]:
    """Three DuckDB hospitals (general, tertiary, respiratory) of 20,000 children, two chunks each."""
    return generate(tmp_path_factory.mktemp("synth"), hospitals=3, patients=N, seed=11, chunk_size=12_000)


def connect(result: HospitalResult) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(result.path), read_only=True)


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def csv_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.csv"))


def test_same_seed_gives_byte_identical_csv_and_another_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(tmp_path / name, hospitals=2, patients=2_500, seed=seed, fmt="csv", chunk_size=1_000)
    files = csv_files(tmp_path / "a")
    assert files == csv_files(tmp_path / "b")
    assert len(files) == 2 * 39  # every CDM v5.4 table, for both hospitals
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert (mismatch, errors) == ([], [])
    _, differ, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", files, shallow=False)
    assert "north-general/PERSON.csv" in differ


def test_a_hospitals_data_does_not_depend_on_how_many_hospitals_are_made(tmp_path: Path) -> None:
    generate(tmp_path / "one", hospitals=1, patients=1_500, seed=3, fmt="csv")
    generate(tmp_path / "three", hospitals=3, patients=1_500, seed=3, fmt="csv")
    files = csv_files(tmp_path / "one")
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "three", files, shallow=False)
    assert (mismatch, errors) == ([], [])


def test_hospital_names_cycle_through_the_profiles() -> None:
    slugs = [p.slug for p in hospital_profiles(len(PROFILES) + 2)]
    assert slugs[: len(PROFILES)] == [p.slug for p in PROFILES]
    assert slugs[len(PROFILES) :] == ["north-general-2", "central-tertiary-2"]
    assert len(set(slugs)) == len(slugs)


def test_every_child_is_0_to_17_at_the_reference_date(hospitals: list[HospitalResult]) -> None:
    with connect(hospitals[0]) as con:
        lo, hi, n = con.execute(
            "SELECT min(a), max(a), count(*) FROM (SELECT date_sub('year', "
            "make_date(year_of_birth, month_of_birth, day_of_birth), DATE '2025-12-31') AS a FROM person)"
        ).fetchone() or (None, None, None)
        assert (lo, hi, n) == (0, 17, N)
        assert scalar(con, "SELECT count(DISTINCT gender_concept_id) FROM person") == 2
        male = scalar(con, "SELECT avg((gender_concept_id = 8507)::INT) FROM person")
        assert 0.49 < float(male) < 0.535  # type: ignore[arg-type]
    assert REFERENCE_DATE.isoformat() == "2025-12-31"


def test_ages_hold_for_a_leap_day_reference_date(tmp_path: Path) -> None:
    reference = date(2024, 2, 29)
    [result] = generate(tmp_path, patients=3_000, seed=8, reference_date=reference)
    with connect(result) as con:
        births = np.array(
            [r[0] for r in con.execute("SELECT birth_datetime::DATE FROM person").fetchall()],
            dtype="datetime64[D]",
        )
        last = scalar(con, "SELECT max(observation_period_end_date) FROM observation_period")
    ages = age_years_array(births, np.datetime64(reference))
    assert ages.min() == 0 and ages.max() == 17
    assert last == reference


EVENT_CONCEPTS = {
    "person": ["gender_concept_id"],
    "observation_period": ["period_type_concept_id"],
    "visit_occurrence": ["visit_concept_id", "visit_type_concept_id"],
    "condition_occurrence": ["condition_concept_id", "condition_type_concept_id"],
    "drug_exposure": ["drug_concept_id", "drug_type_concept_id"],
    "procedure_occurrence": ["procedure_concept_id", "procedure_type_concept_id"],
    "measurement": ["measurement_concept_id", "measurement_type_concept_id", "unit_concept_id"],
    "death": ["death_type_concept_id", "cause_concept_id"],
    "condition_era": ["condition_concept_id"],
    "drug_era": ["drug_concept_id"],
    "care_site": ["place_of_service_concept_id"],
    "cdm_source": ["cdm_version_concept_id"],
}


def test_every_concept_written_is_in_the_shipped_vocabulary_and_standard(
    hospitals: list[HospitalResult],
) -> None:
    for result in hospitals:
        with connect(result) as con:
            for table, columns in EVENT_CONCEPTS.items():
                for col in columns:
                    bad = con.execute(
                        f"SELECT DISTINCT t.{col}, c.standard_concept FROM {table} t LEFT JOIN concept c "
                        f"ON c.concept_id = t.{col} WHERE t.{col} IS NOT NULL "
                        "AND (c.concept_id IS NULL OR c.standard_concept IS DISTINCT FROM 'S')"
                    ).fetchall()
                    assert bad == [], f"{result.slug}.{table}.{col}"
    for concept_id in codes.all_concept_ids():
        with connect(hospitals[0]) as con:
            assert scalar(con, f"SELECT standard_concept FROM concept WHERE concept_id = {concept_id}") == "S"


def _prevalence(con: duckdb.DuckDBPyConnection, concept_id: int) -> float:
    n = scalar(
        con,
        "SELECT count(DISTINCT person_id) FROM condition_occurrence "
        f"WHERE condition_concept_id = {concept_id}",
    )
    return int(n) / N  # type: ignore[call-overload]


def test_condition_prevalence_matches_the_configured_figures(hospitals: list[HospitalResult]) -> None:
    for result, profile in zip(hospitals, PROFILES, strict=False):
        with connect(result) as con:
            for spec in CONDITIONS:
                concept = codes.CONDITION[spec.key]
                if concept is None:
                    continue
                expected = spec.prevalence * profile.rr(spec.key)
                se = np.sqrt(expected * (1 - expected) / N)
                got = _prevalence(con, concept)
                # deaths remove a few later onsets; 4 SE plus a 2% relative margin
                assert abs(got - expected) < 4 * se + 0.02 * expected, (result.slug, spec.key, got, expected)


def test_case_mix_differs_between_hospitals(hospitals: list[HospitalResult]) -> None:
    general, tertiary, respiratory = (connect(h) for h in hospitals)
    chd, cf = codes.CONDITION["chd"], codes.CONDITION["cystic_fibrosis"]
    assert chd is not None and cf is not None
    assert _prevalence(tertiary, chd) > 3 * _prevalence(general, chd)
    assert _prevalence(respiratory, cf) > 5 * _prevalence(general, cf)
    assert _prevalence(respiratory, codes.CONDITION["asthma"] or 0) > 1.5 * _prevalence(
        general, codes.CONDITION["asthma"] or 0
    )
    share = "SELECT avg((visit_concept_id = 9201)::INT) FROM visit_occurrence"
    assert float(scalar(tertiary, share)) > 1.2 * float(scalar(general, share))  # type: ignore[arg-type]
    for con in (general, tertiary, respiratory):
        con.close()


def test_visits_are_most_frequent_in_infancy(hospitals: list[HospitalResult]) -> None:
    with connect(hospitals[0]) as con:
        rates = dict(
            con.execute(
                "WITH v AS (SELECT date_sub('year', "
                "make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth), "
                "visit_start_date) AS age FROM visit_occurrence JOIN person p USING (person_id)) "
                "SELECT age, count(*) FROM v GROUP BY age"
            ).fetchall()
        )
    assert rates[0] > 2 * rates[8]


def test_referential_integrity_and_dates(hospitals: list[HospitalResult]) -> None:
    checks = {
        "events of unknown persons": """
            SELECT count(*) FROM (SELECT person_id FROM visit_occurrence UNION ALL SELECT person_id FROM
            condition_occurrence UNION ALL SELECT person_id FROM drug_exposure UNION ALL SELECT person_id
            FROM measurement UNION ALL SELECT person_id FROM procedure_occurrence UNION ALL SELECT person_id
            FROM death) e ANTI JOIN person USING (person_id)""",
        "unknown visits": """
            SELECT count(*) FROM (SELECT visit_occurrence_id FROM condition_occurrence UNION ALL SELECT
            visit_occurrence_id FROM drug_exposure UNION ALL SELECT visit_occurrence_id FROM measurement
            UNION ALL SELECT visit_occurrence_id FROM procedure_occurrence) e
            ANTI JOIN visit_occurrence USING (visit_occurrence_id)""",
        "event of another person's visit": """
            SELECT count(*) FROM condition_occurrence c JOIN visit_occurrence v USING (visit_occurrence_id)
            WHERE c.person_id <> v.person_id""",
        "events outside observation": """
            SELECT count(*) FROM (SELECT person_id, visit_start_date s, visit_end_date e FROM visit_occurrence
            UNION ALL SELECT person_id, drug_exposure_start_date, drug_exposure_end_date FROM drug_exposure
            UNION ALL SELECT person_id, measurement_date, measurement_date FROM measurement
            UNION ALL SELECT person_id, condition_start_date,
                coalesce(condition_end_date, condition_start_date)
            FROM condition_occurrence) x JOIN observation_period o USING (person_id)
            WHERE x.s < o.observation_period_start_date OR x.e > o.observation_period_end_date
               OR x.e < x.s""",
        "birth after observation start": """
            SELECT count(*) FROM person p JOIN observation_period o USING (person_id)
            WHERE make_date(year_of_birth, month_of_birth, day_of_birth) > observation_period_start_date""",
        "death not at observation end": """
            SELECT count(*) FROM death JOIN observation_period USING (person_id)
            WHERE death_date <> observation_period_end_date""",
        "cause of death never recorded before the death": """
            SELECT count(*) FROM death d WHERE cause_concept_id IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM condition_occurrence c WHERE c.person_id = d.person_id
                AND c.condition_concept_id = d.cause_concept_id
                AND c.condition_start_date <= d.death_date)""",
        "duplicate ids": """
            SELECT (SELECT count(*) - count(DISTINCT visit_occurrence_id) FROM visit_occurrence)
                 + (SELECT count(*) - count(DISTINCT measurement_id) FROM measurement)
                 + (SELECT count(*) - count(DISTINCT drug_exposure_id) FROM drug_exposure)""",
        "eras inconsistent with records": """
            SELECT count(*) FROM drug_exposure d ANTI JOIN drug_era e ON d.person_id = e.person_id AND
            d.drug_concept_id = e.drug_concept_id AND d.drug_exposure_start_date BETWEEN e.drug_era_start_date
            AND e.drug_era_end_date""",
        "drug end before start or days supply missing": """
            SELECT count(*) FROM drug_exposure WHERE drug_exposure_end_date < drug_exposure_start_date
            OR days_supply IS NULL OR days_supply < 1""",
    }
    for result in hospitals:
        with connect(result) as con:
            for name, sql in checks.items():
                assert scalar(con, sql) == 0, f"{result.slug}: {name}"
            assert scalar(con, "SELECT count(*) FROM observation_period") == N
            assert scalar(con, "SELECT cdm_version FROM cdm_source") == "5.4"
            assert scalar(con, "SELECT cdm_source_abbreviation FROM cdm_source") == result.slug


def test_drugs_follow_their_conditions(hospitals: list[HospitalResult]) -> None:
    pairs = [
        (0, "asthma", "salbutamol"),
        (0, "type1_diabetes", "insulin"),
        (0, "adhd", "methylphenidate"),
        (0, "otitis_media", "amoxicillin"),
        (1, "epilepsy", "levetiracetam"),
        (1, "epilepsy", "valproate"),
        (1, "all", "methotrexate"),
        (1, "all", "mercaptopurine"),
        (2, "cystic_fibrosis", "dornase_alfa"),
    ]
    for hospital, condition, drug in pairs:
        c, d = codes.CONDITION[condition], codes.DRUG[drug]
        assert c is not None and d is not None
        with connect(hospitals[hospital]) as con:
            orphans = scalar(
                con,
                f"""SELECT count(DISTINCT person_id) FROM drug_exposure WHERE drug_concept_id = {d}
                AND person_id NOT IN (SELECT person_id FROM condition_occurrence
                                      WHERE condition_concept_id = {c})""",
            )
            users = scalar(
                con, f"SELECT count(DISTINCT person_id) FROM drug_exposure WHERE drug_concept_id = {d}"
            )
        assert orphans == 0 and int(users) > 0, (condition, drug)  # type: ignore[call-overload]


def test_deaths_are_rare_and_likelier_with_prematurity_and_chd(hospitals: list[HospitalResult]) -> None:
    with connect(hospitals[1]) as con:
        deaths = int(scalar(con, "SELECT count(*) FROM death"))  # type: ignore[call-overload]
        assert 0 < deaths < 0.02 * N
        rate = (
            "SELECT avg((d.person_id IS NOT NULL)::INT) FROM person p LEFT JOIN death d USING (person_id) "
            "WHERE p.person_id {} (SELECT person_id FROM condition_occurrence "
            "WHERE condition_concept_id IN ({}))"
        )
        sick = ",".join(str(codes.CONDITION[k]) for k in ("prematurity", "chd"))
        assert float(scalar(con, rate.format("IN", sick))) > 3 * float(
            scalar(con, rate.format("NOT IN", sick))
        )  # type: ignore[arg-type]


def test_build_eras_joins_records_within_the_persistence_window() -> None:
    # child 0, drug 7: days 0-9, 30-39 (gap 20: same era), 100-109 (new era); child 1: one open record
    eras = build_eras(
        np.array([0, 0, 0, 1]), np.array([7, 7, 7, 7]), np.array([30, 0, 100, 5]), np.array([39, 9, 109, -1])
    )
    assert eras.start.tolist() == [0, 100, 5]
    assert eras.end.tolist() == [39, 109, 6]
    assert eras.count.tolist() == [2, 1, 1]
    assert eras.gap_days.tolist() == [20, 0, 0]


def test_csv_output_loads_with_the_omop_loader(tmp_path: Path) -> None:
    [result] = generate(tmp_path / "csv", hospitals=1, patients=1_000, seed=2, fmt="csv")
    header = (result.path / "MEASUREMENT.csv").read_text().splitlines()[0]
    assert header.startswith("measurement_id,person_id,measurement_concept_id,measurement_date,")
    with open_store(f"duckdb:///{tmp_path / 'loaded.duckdb'}") as store:
        load_cdm(result.path, store)
        counts = store.row_counts()
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in result.rows.items() if v}


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    generate(tmp_path, patients=200, seed=1)
    with pytest.raises(Conflict):
        generate(tmp_path, patients=200, seed=1)
    [again] = generate(tmp_path, patients=300, seed=1, overwrite=True)
    with connect(again) as con:
        assert scalar(con, "SELECT count(*) FROM person") == 300


def test_cli_writes_hospitals_and_refuses_to_overwrite(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "phds.cli.main",
        "simulate",
        "--hospitals",
        "2",
        "--patients",
        "300",
        "--seed",
        "4",
        "--out",
        str(tmp_path),
        "--format",
        "csv",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "central-tertiary" / "PERSON.csv").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert again.returncode == Conflict.exit_code
    assert "--overwrite" in again.stderr


def test_old_synth_name_still_works_and_says_it_is_deprecated(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "phds.cli.main", "synth", "--patients", "50", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "deprecated" in done.stderr and "phds simulate" in done.stderr
    assert (tmp_path / "north-general.duckdb").is_file()
