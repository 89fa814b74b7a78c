"""The YAML short form: what it compiles to, that the result is Circe JSON again, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phds.cohorts import parse_cohort
from phds.errors import InputError

DATA = Path(__file__).parent / "data"


def read_data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_short_form_compiles_to_the_atlas_cohort_it_abbreviates() -> None:
    short = parse_cohort(read_data("asthma.yaml"), filename="asthma.yaml")
    atlas = parse_cohort(read_data("asthma_atlas.json"))
    assert short.kind == "yaml"
    assert short.name == "Children 2-11 with asthma treated with salbutamol"
    assert short.concept_ids() == atlas.concept_ids() == {317009, 1154343}
    expression = short.expression
    assert expression["PrimaryCriteria"]["CriteriaList"] == [{"ConditionOccurrence": {"CodesetId": 0}}]
    assert expression["PrimaryCriteria"]["PrimaryCriteriaLimit"] == {"Type": "First"}
    items = expression["ConceptSets"][1]["expression"]["items"]
    assert items == [
        {
            "concept": {"CONCEPT_ID": 1154343},
            "isExcluded": False,
            "includeDescendants": True,
            "includeMapped": False,
        }
    ]
    drug_rule = expression["InclusionRules"][0]["expression"]["CriteriaList"][0]
    assert drug_rule["StartWindow"] == {"Start": {"Days": 365, "Coeff": -1}, "End": {"Days": 365, "Coeff": 1}}
    assert drug_rule["Occurrence"] == {"Type": 2, "Count": 1}
    demographic = expression["InclusionRules"][1]["expression"]["DemographicCriteriaList"]
    assert demographic == [{"Age": {"Op": "bt", "Value": 2, "Extent": 11}}]


def test_compiled_json_parses_back_as_circe_with_the_same_fingerprint() -> None:
    short = parse_cohort(read_data("asthma.yaml"))
    again = parse_cohort(json.dumps(short.expression, indent=2), filename="exported.json")
    assert again.kind == "circe"
    assert again.name == short.name
    assert again.fingerprint == short.fingerprint


def test_exclusions_sex_value_ranges_and_open_windows() -> None:
    text = """
name: Asthma, no bronchitis before, low peak flow
entry: {condition: {concepts: [317009, 317009], descendants: true, exclude: [2000000101]}}
require:
  - measurement: {concepts: [2000000301]}
    value: {min: 50, max: 80}
    window: {start: 0, end: 0}
  - drug: {concepts: [1154343]}
    window: {start: -30}
    min_count: 1
    max_count: 3
exclude:
  - condition: {concepts: [260139]}
    window: {end: -1}
sex: [female]
age: {max: 11}
observation_window: {prior: 30, post: 0}
index: all
"""
    expression = parse_cohort(text).expression
    entry_set = expression["ConceptSets"][0]["expression"]["items"]
    assert [(i["concept"]["CONCEPT_ID"], i["isExcluded"]) for i in entry_set] == [
        (317009, False),
        (2000000101, True),
    ]
    rules = expression["InclusionRules"]
    measurement, drug, bronchitis = (r["expression"]["CriteriaList"] for r in rules[:3])
    value = measurement[0]["Criteria"]["Measurement"]["ValueAsNumber"]
    assert value == {"Op": "bt", "Value": 50, "Extent": 80}
    assert measurement[0]["StartWindow"]["Start"] == {"Days": 0, "Coeff": 1}
    assert drug[0]["StartWindow"] == {"Start": {"Days": 30, "Coeff": -1}, "End": {"Coeff": 1}}
    assert [c["Occurrence"] for c in drug] == [{"Type": 2, "Count": 1}, {"Type": 1, "Count": 3}]
    assert bronchitis[0]["Occurrence"] == {"Type": 0, "Count": 0}
    assert bronchitis[0]["StartWindow"] == {"Start": {"Coeff": -1}, "End": {"Days": 1, "Coeff": -1}}
    demographic = expression["InclusionRules"][3]["expression"]["DemographicCriteriaList"][0]
    assert demographic["Age"] == {"Op": "lte", "Value": 11}
    assert [g["CONCEPT_ID"] for g in demographic["Gender"]] == [8532]
    assert expression["PrimaryCriteria"]["ObservationWindow"] == {"PriorDays": 30, "PostDays": 0}
    assert expression["ExpressionLimit"] == {"Type": "All"}


def test_identical_concept_lists_share_one_concept_set() -> None:
    text = """
entry: {condition: {concepts: [317009]}}
require:
  - condition: {concepts: [317009]}
    window: {start: 1}
"""
    expression = parse_cohort(text).expression
    assert len(expression["ConceptSets"]) == 1


REQ = "entry: {drug: {concepts: [1]}}\nrequire:\n  - drug: {concepts: [2]}\n"


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("entry: {condition: {concepts: [1]}, drug: {concepts: [2]}}", "entry", "exactly one of"),
        ("entry: {condition: {concepts: []}}", "entry.condition.concepts", "at least 1"),
        ("entry: {condition: {concepts: ['317009']}}", "entry.condition.concepts[0]", "valid integer"),
        ("entry: {condition: {concepts: [1]}, value: {min: 1}}", "entry", "measurement or observation"),
        (REQ + "    window: {start: 5, end: -5}",
         "require[0].window", "after end"),
        (REQ + "    min_count: 2\n    max_count: 1",
         "require[0]", "below min_count"),
        ("entry: {drug: {concepts: [1]}}\nage: {min: 12, max: 2}", "age", "above max"),
        ("entry: {drug: {concepts: [1]}}\nsex: [boy]", "sex[0]", "'female' or 'male'"),
        ("entry: {drug: {concepts: [1]}}\nwindow: {}", "window", "Extra inputs"),
        ("name: no entry", "entry", "Field required"),
    ],
)  # fmt: skip
def test_short_form_errors_name_the_field(text: str, field: str, says: str) -> None:
    with pytest.raises(InputError) as info:
        parse_cohort(text, filename="cohort.yaml")
    assert info.value.field == field
    assert info.value.file == "cohort.yaml"
    assert says in str(info.value)


def test_yaml_syntax_errors_give_the_line() -> None:
    text = "name: broken\nentry:\n  condition: {concepts: [1]\nage: {min: 2}\n"
    with pytest.raises(InputError) as info:
        parse_cohort(text, filename="broken.yaml")
    assert info.value.line == 4
    assert "not valid YAML" in str(info.value)


def test_a_yaml_scalar_is_not_a_cohort() -> None:
    with pytest.raises(InputError, match="YAML short form"):
        parse_cohort("just text", filename="x.yaml")


def test_circe_json_written_as_yaml_is_read_as_circe() -> None:
    text = """
ConceptSets:
  - id: 0
    name: Asthma
    expression: {items: [{concept: {CONCEPT_ID: 317009}, includeDescendants: true}]}
PrimaryCriteria:
  CriteriaList: [{ConditionOccurrence: {CodesetId: 0}}]
"""
    definition = parse_cohort(text, filename="cohort.yaml")
    assert definition.kind == "circe"
    assert definition.concept_ids() == {317009}


def test_yaml_aliases_are_refused() -> None:
    text = "base: &c {concepts: [317009]}\nentry: {condition: *c}\n"
    with pytest.raises(InputError, match="aliases") as info:
        parse_cohort(text, filename="alias.yaml")
    assert info.value.line == 2


def test_the_example_in_the_howto_parses() -> None:
    import re

    howto = (Path(__file__).parents[2] / "docs" / "howto" / "cohorts.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(.*?)```", howto, re.S)
    assert match is not None
    definition = parse_cohort(match.group(1), filename="cohorts.md")
    assert definition.concept_ids() == {317009, 1154343, 3011505, 441267, 8507, 8532}
    assert len(definition.expression["InclusionRules"]) == 4
