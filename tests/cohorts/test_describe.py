"""Cohort definitions described for a person: YAML short forms and ATLAS exports as readable lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from phds.cohorts.describe import Line, describe_cohort
from phds.demo.scenario import default_cohort
from phds.errors import InputError

DATA = Path(__file__).parent / "data"
NAMES = {317009: "Asthma", 1154343: "albuterol", 255573: "Chronic obstructive lung disease"}


def _texts(lines: tuple[Line, ...]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.append(line.text)
        out.extend(_texts(line.children))
    return out


def test_the_demo_yaml_cohort_reads_as_concepts_entry_age_and_criteria() -> None:
    d = describe_cohort(default_cohort(), names=NAMES.get)
    assert (d.name, d.kind, d.age, d.sex) == (
        "Children 2-11 with asthma and salbutamol",
        "yaml",
        "from 2 to 11 years at the entry event",
        None,
    )
    assert [cs.items for cs in d.concept_sets] == [
        ("317009 Asthma, with its descendants",),
        ("1154343 albuterol, with its descendants",),
    ]
    assert _texts(d.entry) == [
        "each person's earliest event that is a condition occurrence in concept set 0 "
        "(317009 Asthma, with its descendants)"
    ]
    assert (
        "at least 1 × drug exposure in concept set 1 (1154343 albuterol, with its descendants), at any time"
        in (_texts(d.criteria))
    )
    assert d.exit == ("membership ends at the end of the person's observation period",)


def test_windows_counts_exclusions_sex_and_observation_read_as_written() -> None:
    text = """
name: Asthma, salbutamol within a year, never COPD, girls and boys
entry:
  condition: {concepts: [317009], descendants: true}
require:
  - drug: {concepts: [1154343]}
    window: {start: -365, end: 0}
    min_count: 2
    max_count: 5
exclude:
  - condition: {concepts: [255573]}
age: {min: 2}
sex: [female, male]
observation_window: {prior: 180, post: 30}
index: all
"""
    d = describe_cohort(text, names=NAMES.get)
    lines = _texts(d.entry) + _texts(d.criteria)
    assert "with at least 180 days of observation before it and 30 days after it" in lines
    assert d.entry[0].text.startswith("every event that is a condition occurrence")
    assert (
        "at least 2 × drug exposure in concept set 1 (1154343 albuterol), starting between 365 days before "
        "the entry date and the entry date" in lines
    )
    assert any(t.startswith("at most 5 × drug exposure") for t in lines)
    assert any(
        t.startswith("no condition occurrence in concept set 2 (255573 Chronic obstructive") for t in lines
    )
    assert d.age == "at least 2 years at the entry event"
    assert d.sex == "8532 FEMALE, 8507 MALE"


def test_an_atlas_export_keeps_its_names_and_unknown_concepts_say_so() -> None:
    d = describe_cohort((DATA / "asthma_atlas.json").read_text(encoding="utf-8"))
    assert d.kind == "circe" and d.name == "Children 2-11 with asthma treated with salbutamol"
    assert [cs.name for cs in d.concept_sets] == ["Asthma", "Salbutamol"]
    assert any("named “salbutamol within a year of diagnosis”" in t for t in _texts(d.criteria))
    bare = describe_cohort(
        {
            "PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}]},
            "ConceptSets": [{"id": 0, "expression": {"items": [{"concept": {"CONCEPT_ID": 42}}]}}],
        }
    )
    assert bare.concept_sets[0].items == ("42 (unnamed)",)


def test_nested_groups_read_as_any_of_and_at_least() -> None:
    group = {
        "Type": "AT_LEAST",
        "Count": 1,
        "CriteriaList": [
            {
                "Criteria": {"DrugExposure": {"CodesetId": 0}},
                "StartWindow": {"Start": {"Coeff": -1}, "End": {"Coeff": 1}},
                "Occurrence": {"Type": 2, "Count": 1},
            },
        ],
        "Groups": [
            {
                "Type": "ANY",
                "DemographicCriteriaList": [
                    {"Age": {"Op": "lt", "Value": 5}},
                    {"Age": {"Op": "gte", "Value": 12}},
                ],
            }
        ],
    }
    expression = {
        "ConceptSets": [{"id": 0, "expression": {"items": [{"concept": {"CONCEPT_ID": 1154343}}]}}],
        "PrimaryCriteria": {"CriteriaList": [{"DrugExposure": {"CodesetId": 0, "First": True}}]},
        "InclusionRules": [{"name": "young or old", "expression": group}],
        "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 30}},
    }
    d = describe_cohort(expression, names=NAMES.get)
    lines = _texts(d.criteria)
    assert "at least 1 of:" in lines and "any of:" in lines
    assert (
        "age at the entry event below 5 years" in lines
        and "age at the entry event at least 12 years" in lines
    )
    assert "the first in the person's history" in d.entry[0].text
    assert d.age is None  # the ages are alternatives, not a range every member has
    assert d.exit[0] == "membership ends 30 days after the entry event's start date"


def test_an_unreadable_cohort_raises_the_error_a_node_would() -> None:
    with pytest.raises(InputError, match="not supported"):
        describe_cohort({"PrimaryCriteria": {"CriteriaList": [{"Specimen": {}}]}})
