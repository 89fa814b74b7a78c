"""Data-quality checks: hand-made violations, then what the checks find in the three real OHDSI samples."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phds.cli.omop import app
from phds.omop.load import load_cdm
from phds.omop.quality import CheckResult, run_checks, summary
from phds.omop.schema import table_spec
from phds.omop.store import CdmStore, open_store

from .conftest import fill, person


@pytest.fixture(scope="session")
def real_checks(real: Any) -> Any:
    cache: dict[str, dict[str, CheckResult]] = {}

    def get(sample: str) -> dict[str, CheckResult]:
        if sample not in cache:
            with open_store(real(sample), read_only=True) as store:
                cache[sample] = {r.id: r for r in run_checks(store)}
        return cache[sample]

    return get


def visit(
    vid: int, pid: int, start: date, end: date, concept: int, provider: int | None = None
) -> dict[str, Any]:
    return {
        "visit_occurrence_id": vid,
        "person_id": pid,
        "visit_concept_id": concept,
        "visit_start_date": start,
        "visit_end_date": end,
        "visit_type_concept_id": 32817,
        "provider_id": provider,
    }


def concept(cid: int, code: str, vocabulary: str, standard: str | None = "S") -> dict[str, Any]:
    return {
        "concept_id": cid,
        "concept_name": code,
        "domain_id": "x",
        "vocabulary_id": vocabulary,
        "concept_class_id": "x",
        "standard_concept": standard,
        "concept_code": code,
        "valid_start_date": date(1970, 1, 1),
        "valid_end_date": date(2099, 12, 31),
    }


def weight(
    mid: int, pid: int, when: date, value: float, unit: int, unit_source: str = "kg"
) -> dict[str, Any]:
    return {
        "measurement_id": mid,
        "person_id": pid,
        "measurement_concept_id": 3025315,
        "measurement_date": when,
        "measurement_type_concept_id": 32817,
        "value_as_number": value,
        "unit_concept_id": unit,
        "unit_source_value": unit_source,
    }


def build_flawed(store: CdmStore, *, vocabulary: bool = True) -> None:
    """A girl (1), a boy who died (2), a person born after their death (3), and flawed events."""
    store.create_tables()
    fill(
        store,
        "person",
        [
            person(1, 8532, date(2015, 3, 10)),
            person(2, 8507, date(2010, 1, 1)),
            person(3, 8507, date(2000, 5, 5)),
        ],
    )
    fill(
        store,
        "observation_period",
        [
            {
                "observation_period_id": i,
                "person_id": i,
                "observation_period_start_date": s,
                "observation_period_end_date": e,
                "period_type_concept_id": 32817,
            }
            for i, s, e in [
                (1, date(2015, 3, 10), date(2024, 6, 30)),
                (2, date(2010, 1, 1), date(2020, 1, 1)),
                (3, date(2000, 5, 5), date(2024, 6, 30)),
            ]
        ],
    )
    fill(
        store,
        "death",
        [{"person_id": 2, "death_date": date(2020, 1, 1)}, {"person_id": 3, "death_date": date(1999, 1, 1)}],
    )
    fill(
        store,
        "visit_occurrence",
        [
            visit(1, 1, date(2016, 1, 1), date(2016, 1, 2), 9201, provider=5),  # provider table is empty
            visit(2, 1, date(2017, 5, 5), date(2017, 5, 1), 0),  # ends before it starts; unmapped
            visit(3, 2, date(2021, 1, 1), date(2021, 1, 1), 999),  # a year after death; non-standard concept
            visit(
                4, 2, date(2020, 2, 1), date(2020, 2, 1), 12345
            ),  # 31 days after death; concept not in concept
        ],
    )
    fill(
        store,
        "condition_occurrence",
        [
            {
                "condition_occurrence_id": 1,
                "person_id": 1,
                "condition_concept_id": 100,
                "condition_start_date": date(2014, 1, 1),
                "condition_type_concept_id": 32817,
                "visit_occurrence_id": 77,
            },
            {
                "condition_occurrence_id": 2,
                "person_id": 99,
                "condition_concept_id": 100,
                "condition_start_date": date(2016, 1, 1),
                "condition_type_concept_id": 32817,
                "visit_occurrence_id": 1,
            },
        ],
    )
    fill(
        store,
        "measurement",
        [
            weight(1, 1, date(2020, 3, 10), 100.0, 9529),  # a girl of 5 at 100 kg: SDS far above +5
            weight(2, 1, date(2020, 3, 10), 18000.0, 8504, "g"),  # 18 kg, plausible, in grams
            weight(3, 1, date(2020, 3, 10), 3.0, 0, "stone"),  # unknown unit: not checked
            weight(4, 3, date(2022, 1, 1), 400.0, 9529),  # an adult at 400 kg: above the adult bound
        ],
    )
    if vocabulary:
        fill(
            store,
            "concept",
            [
                concept(9201, "IP", "Visit"),
                concept(999, "old", "Visit", None),
                concept(100, "asthma", "SNOMED"),
                concept(3025315, "29463-7", "LOINC"),
                concept(9529, "kg", "UCUM"),
                concept(8504, "g", "UCUM"),
            ],
        )


@pytest.fixture
def flawed(tmp_path: Path) -> Iterator[dict[str, CheckResult]]:
    with open_store(f"duckdb:///{tmp_path}/flawed.duckdb") as store:
        build_flawed(store)
        yield {r.id: r for r in run_checks(store)}


def fc(r: CheckResult) -> tuple[int, int, str]:
    return r.failing_rows, r.rows_checked, r.status


def test_birth_after_death_and_events_before_birth(flawed: dict[str, CheckResult]) -> None:
    assert fc(flawed["plausibleAfterBirth:death.death_date"]) == (1, 2, "fail")
    assert fc(flawed["plausibleAfterBirth:condition_occurrence.condition_start_date"]) == (1, 1, "fail")
    assert fc(flawed["plausibleAfterBirth:visit_occurrence.visit_start_date"]) == (0, 4, "pass")


def test_events_after_death_allow_60_days(flawed: dict[str, CheckResult]) -> None:
    r = flawed["plausibleBeforeDeath:visit_occurrence.visit_start_date"]
    assert fc(r) == (1, 2, "fail") and r.percent == 50.0  # of the visits of persons who died


def test_end_before_start(flawed: dict[str, CheckResult]) -> None:
    assert fc(flawed["plausibleStartBeforeEnd:visit_occurrence.visit_start_date"]) == (1, 4, "fail")
    assert fc(flawed["plausibleStartBeforeEnd:observation_period.observation_period_start_date"]) == (
        0,
        3,
        "pass",
    )


def test_events_outside_observation(flawed: dict[str, CheckResult]) -> None:
    assert fc(flawed["outsideObservationPeriod:visit_occurrence.visit_start_date"]) == (2, 4, "fail")
    assert fc(flawed["outsideObservationPeriod:condition_occurrence.condition_start_date"]) == (2, 2, "fail")


def test_concepts_unmapped_nonstandard_and_unknown(flawed: dict[str, CheckResult]) -> None:
    assert fc(flawed["standardConceptRecordCompleteness:visit_occurrence.visit_concept_id"]) == (1, 4, "fail")
    assert fc(flawed["isStandardValidConcept:visit_occurrence.visit_concept_id"]) == (1, 4, "fail")
    assert fc(flawed["isForeignKey:visit_occurrence.visit_concept_id"]) == (1, 4, "fail")
    assert fc(flawed["isStandardValidConcept:condition_occurrence.condition_concept_id"]) == (0, 2, "pass")


def test_orphan_foreign_keys(flawed: dict[str, CheckResult]) -> None:
    assert fc(flawed["isForeignKey:condition_occurrence.person_id"]) == (1, 2, "fail")
    assert fc(flawed["isForeignKey:condition_occurrence.visit_occurrence_id"]) == (1, 2, "fail")
    provider = flawed["isForeignKey:visit_occurrence.provider_id"]
    assert fc(provider) == (1, 1, "fail") and provider.note == "provider is empty"
    assert fc(flawed["isForeignKey:visit_occurrence.person_id"]) == (0, 4, "pass")


def test_implausible_growth_for_children_and_adults(flawed: dict[str, CheckResult]) -> None:
    # 100 kg at 5 y (UK-WHO SDS > +5) and 400 kg in an adult; 18,000 g converts; "stone" is not read
    assert fc(flawed["plausibleValueHigh:measurement.value_as_number[weight]"]) == (2, 3, "fail")
    assert fc(flawed["plausibleValueLow:measurement.value_as_number[weight]"]) == (0, 3, "pass")
    assert flawed["plausibleValueLow:measurement.value_as_number[ofc]"].status == "not_applicable"


def test_growth_falls_back_to_standard_ids_without_a_vocabulary(tmp_path: Path) -> None:
    with open_store(f"duckdb:///{tmp_path}/novocab.duckdb") as store:
        build_flawed(store, vocabulary=False)
        results = {r.id: r for r in run_checks(store)}
    assert fc(results["plausibleValueHigh:measurement.value_as_number[weight]"]) == (2, 3, "fail")
    why = results["isStandardValidConcept:visit_occurrence.visit_concept_id"]
    assert why.status == "not_applicable" and why.note == "the concept table is empty"


def test_empty_and_partial_stores_do_not_fail(tmp_path: Path) -> None:
    with open_store(f"duckdb:///{tmp_path}/empty.duckdb") as store:
        store.create_tables()
        results = run_checks(store)
    assert results and summary(results) == {"pass": 0, "fail": 0, "not_applicable": len(results)}
    with open_store(f"duckdb:///{tmp_path}/person.duckdb") as store:
        store.execute(table_spec("person").create_sql("duckdb"))
        fill(store, "person", [person(1, 8532, date(2015, 3, 10))])
        only = run_checks(store)
    assert {r.table for r in only} == {"person"}
    assert {r.id: r.status for r in only}[
        "standardConceptRecordCompleteness:person.gender_concept_id"
    ] == "pass"


def test_synthea_findings(real_checks: Any) -> None:
    r = real_checks("synthea27nj")
    failed = {k: (v.failing_rows, v.rows_checked) for k, v in r.items() if v.status == "fail"}
    assert failed == {
        "isForeignKey:person.gender_concept_id": (28, 28),  # 8507/8532 are not in its vocabulary shard
        "plausibleValueLow:measurement.value_as_number[ofc]": (1, 81),  # 27.0 cm at 1 day: SDS < -5
    }
    assert fc(r["outsideObservationPeriod:measurement.measurement_date"]) == (4, 10040, "pass")
    assert fc(r["outsideObservationPeriod:observation.observation_date"]) == (6, 8099, "pass")
    assert fc(r["outsideObservationPeriod:condition_occurrence.condition_start_date"]) == (1, 470, "pass")
    assert fc(r["plausibleValueHigh:measurement.value_as_number[weight]"]) == (0, 511, "pass")
    assert fc(r["plausibleValueHigh:measurement.value_as_number[height]"]) == (0, 496, "pass")
    assert fc(r["plausibleBeforeDeath:visit_occurrence.visit_start_date"]) == (0, 430, "pass")


def test_eunomia_findings(real_checks: Any) -> None:
    r = real_checks("eunomia-gibleed")
    failed = {k: (v.failing_rows, v.rows_checked) for k, v in r.items() if v.status == "fail"}
    assert failed == {
        "isForeignKey:observation_period.person_id": (2649, 5343),  # periods of persons not in the sample
        "isForeignKey:procedure_occurrence.visit_occurrence_id": (36819, 37336),
        "isForeignKey:observation.visit_occurrence_id": (1320, 1477),
        "isForeignKey:observation.provider_id": (1477, 1477),  # PROVIDER.csv is empty
        "standardConceptRecordCompleteness:condition_era.condition_concept_id": (443, 65719),
    }
    assert fc(r["outsideObservationPeriod:procedure_occurrence.procedure_date"]) == (15, 37409, "pass")
    assert fc(r["plausibleAfterBirth:drug_era.drug_era_start_date"]) == (1, 52508, "pass")
    assert r["plausibleBeforeDeath:visit_occurrence.visit_start_date"].status == "not_applicable"  # no deaths


def test_mimic_findings(real_checks: Any) -> None:
    r = real_checks("mimic-iv-demo")
    # the demo's concept table holds only MIMIC's local concepts: standard ids are missing from it
    assert fc(r["isForeignKey:condition_occurrence.condition_concept_id"]) == (16441, 16441, "fail")
    assert fc(r["isForeignKey:drug_exposure.drug_concept_id"]) == (17683, 18229, "fail")  # 546 are 0
    assert fc(r["isForeignKey:procedure_occurrence.procedure_concept_id"]) == (18428, 18447, "fail")
    assert fc(r["standardConceptRecordCompleteness:death.cause_concept_id"]) == (15, 15, "fail")
    assert fc(r["standardConceptRecordCompleteness:drug_exposure.drug_concept_id"]) == (546, 18229, "pass")
    assert r["plausibleValueHigh:measurement.value_as_number[weight]"].status == "not_applicable"
    assert summary(list(r.values()))["fail"] == 12
    dates = {
        "plausibleAfterBirth",
        "plausibleBeforeDeath",
        "plausibleStartBeforeEnd",
        "outsideObservationPeriod",
    }
    timed = [v for v in r.values() if v.check in dates and v.rows_checked]
    assert len(timed) == 38 and all(v.failing_rows == 0 for v in timed)  # its dates are all consistent


@pytest.mark.postgres
def test_synthea_checks_are_identical_on_postgres(real: Any, shared_data: Path, pg_schema_url: str) -> None:
    with open_store(pg_schema_url) as pg:
        load_cdm(shared_data / "omop" / "synthea27nj", pg)
        on_pg = run_checks(pg)
    with open_store(real("synthea27nj"), read_only=True) as store:
        on_duckdb = run_checks(store)
    assert on_pg == on_duckdb


def test_cli_check_reports_and_exit_codes(real: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    url = real("synthea27nj")
    shown = runner.invoke(app, ["check", url])
    assert shown.exit_code == 0, shown.output
    assert "isForeignKey" in shown.output and "2 failed" in shown.output
    assert runner.invoke(app, ["check", url, "--fail-on-error"]).exit_code == 1
    command = [sys.executable, "-m", "phds.cli.main", "omop", "check", url, "--fail-on-error"]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 1  # through main()
    as_json = json.loads(runner.invoke(app, ["check", url, "--json"]).output)
    keys = {"id", "check", "table", "field", "failing_rows", "rows_checked", "percent", "status"}
    assert keys <= set(as_json[0])
    with open_store(f"duckdb:///{tmp_path}/empty.duckdb") as store:
        store.create_tables()
    clean = runner.invoke(app, ["check", f"duckdb:///{tmp_path}/empty.duckdb", "--fail-on-error"])
    assert clean.exit_code == 0, clean.output
