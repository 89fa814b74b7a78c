"""Dataset profiles: disclosure on a hand-made CDM, then the real OHDSI samples on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from phds.cli.omop import app
from phds.omop.load import load_cdm
from phds.omop.profile import build_profile
from phds.omop.profile_model import CellCount, DatasetProfile, Suppressed, disclose, round_half_up
from phds.omop.schema import table_spec
from phds.omop.store import CdmStore, open_store

from .conftest import fill, person

END = date(2024, 6, 30)


def period(pid: int, start: date, end: date = END) -> dict[str, Any]:
    return {
        "observation_period_id": pid,
        "person_id": pid,
        "observation_period_start_date": start,
        "observation_period_end_date": end,
        "period_type_concept_id": 32817,
    }


def condition(rid: int, pid: int, concept: int) -> dict[str, Any]:
    return {
        "condition_occurrence_id": rid,
        "person_id": pid,
        "condition_concept_id": concept,
        "condition_start_date": date(2020, 1, 1),
        "condition_type_concept_id": 32817,
    }


def concept(cid: int, name: str) -> dict[str, Any]:
    return {
        "concept_id": cid,
        "concept_name": name,
        "domain_id": "Condition",
        "vocabulary_id": "SNOMED",
        "concept_class_id": "Clinical Finding",
        "standard_concept": "S",
        "concept_code": str(cid),
        "valid_start_date": date(1970, 1, 1),
        "valid_end_date": date(2099, 12, 31),
    }


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[CdmStore]:
    """13 persons: 6 girls aged 6, a boy aged 1, 5 men aged 40, a man who died at 50."""
    with open_store(f"duckdb:///{tmp_path}/tiny.duckdb") as store:
        store.create_tables()
        girls = [person(i, 8532, date(2018, 1, 15)) for i in range(1, 7)]
        men = [person(i, 8507, date(1984, 3, 1)) for i in range(8, 13)]
        fill(
            store,
            "person",
            [*girls, person(7, 8507, date(2023, 6, 1)), *men, person(13, 8507, date(1950, 1, 1))],
        )
        fill(
            store,
            "observation_period",
            [period(i, date(2018, 1, 15)) for i in range(1, 7)]
            + [period(7, date(2023, 6, 1))]
            + [period(i, date(2010, 1, 1)) for i in range(8, 13)]
            + [period(13, date(1960, 1, 1))],
        )
        fill(store, "death", [{"person_id": 13, "death_date": date(2000, 6, 1)}])
        rows = [condition(i, (i - 1) % 6 + 1, 100) for i in range(1, 13)]
        rows += [condition(13, 7, 200), condition(14, 8, 200)] + [condition(15 + i, 9, 0) for i in range(3)]
        fill(store, "condition_occurrence", rows)
        fill(store, "concept", [concept(100, "Asthma"), concept(200, "A rare disease")])
        fill(
            store,
            "vocabulary",
            [
                {
                    "vocabulary_id": "None",
                    "vocabulary_name": "OMOP",
                    "vocabulary_version": "v5.0 TEST",
                    "vocabulary_concept_id": 0,
                }
            ],
        )
        fill(
            store,
            "cdm_source",
            [
                {
                    "cdm_source_name": "Tiny",
                    "cdm_source_abbreviation": "T",
                    "cdm_holder": "PHDS test",
                    "source_release_date": date(2024, 7, 1),
                    "cdm_release_date": date(2024, 7, 2),
                    "cdm_version": "5.4",
                    "cdm_version_concept_id": 756265,
                    "vocabulary_version": "v5 other",
                }
            ],
        )
        yield store


def counts(items: list[Any], key: str = "group") -> dict[str, str]:
    return {getattr(i, key): str(i.persons) for i in items}


def test_disclose_suppresses_small_counts_and_rounds_the_rest() -> None:
    assert disclose(0, 5, 10) == 0
    assert disclose(1, 5, 10) == Suppressed(below=5)
    assert disclose(4, 5, 10) == Suppressed(below=5)
    assert [disclose(n, 5, 10) for n in (5, 14, 15, 2694)] == [10, 10, 20, 2690]
    assert [disclose(n, 11, 1) for n in (10, 11)] == [Suppressed(below=11), 11]
    assert round_half_up(3, 10) == 10  # a positive count never rounds to zero


def test_suppressed_count_is_the_string_lt5_in_json_and_back() -> None:
    adapter = TypeAdapter(CellCount)
    assert adapter.dump_json(Suppressed(below=5)) == b'"<5"'
    assert adapter.validate_json('"<5"') == Suppressed(below=5)
    assert adapter.validate_json("12") == 12
    with pytest.raises(ValidationError):
        adapter.validate_python("about 3")


def test_tiny_cdm_profile_exact_when_not_rounded(tiny: CdmStore) -> None:
    p = build_profile(tiny, round_to=1)
    assert (p.title, p.identifier, p.publisher, p.version) == ("Tiny", "T", "PHDS test", "2024-07-01")
    assert (p.cdm_version, p.vocabulary_version) == ("5.4", "v5.0 TEST")  # the vocabulary 'None' row wins
    assert p.number_of_unique_individuals == 13
    assert counts(p.age_groups) == {
        "PRETERM_NEWBORN": "0",
        "TERM_NEWBORN": "0",
        "INFANT": "<5",
        "CHILD": "6",
        "ADOLESCENT": "0",
        "ADULT": "6",
    }
    bands = {b.label: str(b.persons) for b in p.age_bands if b.persons != 0}
    assert bands == {"1-4": "<5", "5-9": "6", "40-44": "5", "50-54": "<5"}  # aged at death, not at 74
    assert (p.min_typical_age, p.max_typical_age) == (5, 44)
    assert counts(p.age_groups_observed) == {
        "TERM_NEWBORN": "7",
        "INFANT": "7",
        "CHILD": "7",
        "ADOLESCENT": "<5",
        "ADULT": "6",
    }
    assert counts(p.sex, "sex") == {"female": "6", "male": "7", "other": "0", "unknown": "0"}
    assert p.temporal is not None
    assert (p.temporal.start_date, p.temporal.end_date) == ("2010-01", "2024-06")  # not 1960-01, one man's
    assert "2024-06-30" in p.age_reference
    (cond,) = [d for d in p.domains if d.table == "condition_occurrence"]
    assert (cond.records, cond.persons) == (17, 9)
    assert p.number_of_records == 18  # 17 conditions and 1 death
    tops = {t.domain: t for t in p.top_concepts}
    assert set(tops) == {"condition", "death"} and tops["death"].concepts == []  # no cause recorded
    top = tops["condition"]
    assert [(c.concept_id, c.concept_name, c.persons, c.records) for c in top.concepts] == [
        (100, "Asthma", 6, 12),
        (200, "A rare disease", Suppressed(below=5), None),  # concept 0 (unmapped) left out
    ]
    assert p.has_coding_system == ["SNOMED"]


def test_tiny_cdm_profile_rounded_by_default(tiny: CdmStore) -> None:
    p = build_profile(tiny)
    assert p.number_of_unique_individuals == 10
    assert counts(p.age_groups)["CHILD"] == "10"
    assert counts(p.sex, "sex") == {"female": "10", "male": "10", "other": "0", "unknown": "0"}
    assert p.disclosure.min_cell_count == 5 and p.disclosure.round_to == 10


def test_higher_minimum_cell_count_suppresses_more(tiny: CdmStore) -> None:
    p = build_profile(tiny, min_cell_count=11, round_to=1)
    assert counts(p.age_groups)["CHILD"] == "<11"
    assert p.number_of_unique_individuals == 13
    assert (p.min_typical_age, p.max_typical_age, p.temporal) == (None, None, None)


def test_profile_json_round_trips_with_healthdcat_names(tiny: CdmStore) -> None:
    p = build_profile(tiny)
    data = json.loads(p.to_json())
    for name in (
        "numberOfUniqueIndividuals",
        "numberOfRecords",
        "minTypicalAge",
        "maxTypicalAge",
        "hasCodingSystem",
    ):
        assert name in data
    assert set(data["temporal"]) == {"startDate", "endDate", "method"}
    assert DatasetProfile.model_validate_json(p.to_json()) == p


def test_empty_store_profiles_without_error(tmp_path: Path) -> None:
    with open_store(f"duckdb:///{tmp_path}/empty.duckdb") as store:
        store.create_tables()
        p = build_profile(store)
    assert p.number_of_unique_individuals is None
    assert (p.number_of_records, p.temporal, p.sex, p.top_concepts) == (0, None, [], [])
    assert all(g.persons == 0 for g in p.age_groups)


def test_store_with_only_a_person_table_uses_the_reference_date(tmp_path: Path) -> None:
    with open_store(f"duckdb:///{tmp_path}/person.duckdb") as store:
        store.execute(table_spec("person").create_sql("duckdb"))
        fill(store, "person", [person(i, 8532, date(2020, 1, 1)) for i in range(1, 8)])
        assert build_profile(store).age_groups[3].persons == 0  # no observation, no reference: no age
        p = build_profile(store, reference_date=date(2024, 6, 30), round_to=1)
    assert counts(p.age_groups)["CHILD"] == "7"
    assert (p.temporal, p.domains, p.cdm_version) == (None, [], None)


def released_counts(data: Any) -> Iterator[int]:
    """Every integer count under a 'persons' or 'records' key of the profile JSON."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in {"persons", "records"} and isinstance(v, int):
                yield v
            else:
                yield from released_counts(v)
    elif isinstance(data, list):
        for v in data:
            yield from released_counts(v)


@pytest.mark.parametrize("sample", ["eunomia-gibleed", "synthea27nj", "mimic-iv-demo"])
def test_real_profiles_never_release_a_small_or_unrounded_count(real: Any, sample: str) -> None:
    with open_store(real(sample), read_only=True) as store:
        data = json.loads(build_profile(store).to_json())
    values = list(released_counts(data))
    assert values and all(v == 0 or (v >= 5 and v % 10 == 0) for v in values)


def test_eunomia_profile(real: Any) -> None:
    with open_store(real("eunomia-gibleed"), read_only=True) as store:
        p = build_profile(store)
    assert p.number_of_unique_individuals == 2690  # 2,694 persons
    assert (p.cdm_version, p.vocabulary_version) == ("v5.3.1", "v5.0 18-JAN-19")
    assert (p.min_typical_age, p.max_typical_age) == (30, 90)
    assert p.temporal is not None and (p.temporal.start_date, p.temporal.end_date) == ("1910-03", "2019-06")
    assert counts(p.sex, "sex") == {"female": "1370", "male": "1320", "other": "0", "unknown": "0"}
    assert counts(p.age_groups)["ADULT"] == "2690"
    # every person is observed from birth, so all ICH E11 groups hold everyone
    assert set(counts(p.age_groups_observed).values()) == {"2690"}
    domains = {d.domain: d.records for d in p.domains}
    assert domains["condition"] == 0 and domains["condition_era"] == 65720 and domains["drug_era"] == 52510
    eras = {t.domain: t.concepts[0] for t in p.top_concepts}
    assert (eras["condition_era"].concept_name, eras["drug_era"].concept_name) == (
        "Osteoarthritis",
        "Acetaminophen",
    )
    assert p.has_coding_system == ["RxNorm", "SNOMED", "Visit"]


def test_synthea_profile(real: Any) -> None:
    with open_store(real("synthea27nj"), read_only=True) as store:
        p = build_profile(store)
    assert (p.number_of_unique_individuals, p.cdm_version, p.title) == (30, "5.4", "NJ")
    assert counts(p.age_groups) == {
        "PRETERM_NEWBORN": "0",
        "TERM_NEWBORN": "0",
        "INFANT": "<5",
        "CHILD": "10",
        "ADOLESCENT": "0",
        "ADULT": "20",
    }
    assert (p.min_typical_age, p.max_typical_age) == (None, None)  # 28 persons: no band reaches 5
    assert p.temporal is not None and (p.temporal.start_date, p.temporal.end_date) == ("1970-01", "2022-09")
    tops = {t.domain: t.concepts for t in p.top_concepts}
    assert tops["measurement"][0].concept_name == "Systolic blood pressure"
    assert tops["death"][0].persons == Suppressed(below=5) and tops["death"][0].records is None
    assert "LOINC" in p.has_coding_system


def test_mimic_profile(real: Any) -> None:
    with open_store(real("mimic-iv-demo"), read_only=True) as store:
        p = build_profile(store)
    assert (p.number_of_unique_individuals, p.cdm_version) == (100, "5.3.1")
    assert counts(p.age_groups)["ADULT"] == "100"
    assert (p.min_typical_age, p.max_typical_age) == (40, 89)
    assert p.temporal is not None and p.temporal.start_date == "2112-09"  # MIMIC shifts dates into the future
    assert {d.domain: d.records for d in p.domains}["measurement"] == 0
    # the demo's concept table holds only MIMIC's local concepts: top concepts have no names
    assert all(c.concept_name is None for t in p.top_concepts for c in t.concepts)


@pytest.mark.postgres
def test_synthea_profile_is_identical_on_postgres(real: Any, shared_data: Path, pg_schema_url: str) -> None:
    with open_store(pg_schema_url) as pg:
        load_cdm(shared_data / "omop" / "synthea27nj", pg)
        on_pg = build_profile(pg)
    with open_store(real("synthea27nj"), read_only=True) as store:
        on_duckdb = build_profile(store)
    assert on_pg == on_duckdb


def test_cli_profile_prints_tables_and_json(real: Any) -> None:
    runner = CliRunner()
    url = real("synthea27nj")
    shown = runner.invoke(app, ["profile", url])
    assert shown.exit_code == 0, shown.output
    assert "numberOfUniqueIndividuals" in shown.output and "child (2-11 y)" in shown.output
    as_json = runner.invoke(app, ["profile", url, "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["numberOfUniqueIndividuals"] == 30


def test_missing_or_impossible_birth_parts_do_not_fail(tmp_path: Path) -> None:
    with open_store(f"duckdb:///{tmp_path}/births.duckdb") as store:
        store.execute(table_spec("person").create_sql("duckdb"))
        rows = [
            person(1, 8532, date(2020, 4, 1)),
            person(2, 8532, date(2020, 1, 1)),
            person(3, 8507, date(2020, 1, 1)),
        ]
        rows[0]["day_of_birth"] = 31  # 31 April: read as 1 May
        rows[1]["month_of_birth"] = rows[1]["day_of_birth"] = None  # year only: read as 1 July
        rows[2]["month_of_birth"] = 13  # impossible month: read as July
        fill(store, "person", rows)
        june = build_profile(store, reference_date=date(2020, 6, 30), min_cell_count=1, round_to=1)
        december = build_profile(store, reference_date=date(2020, 12, 31), min_cell_count=1, round_to=1)
    assert counts(june.age_groups)["INFANT"] == "1"  # only the May baby is born by 30 June
    assert counts(december.age_groups)["INFANT"] == "3"
