"""Everything the supported subset accepts must build in circepy: no surprise may wait at a node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phds.cohorts import CohortBuilder, count_cohort, parse_cohort
from phds.cohorts.subset import ATTRIBUTE_KINDS, SUPPORTED_CRITERIA
from phds.omop.store import CdmStore

DATA = Path(__file__).parent / "data"
NEUTRAL: dict[str, Any] = {  # a value of each kind that keeps (almost) every row
    "codeset": 0,
    "bool": False,
    "concepts": [{"CONCEPT_ID": 32817, "CONCEPT_NAME": "EHR"}],
    "numeric_range": {"Op": "gte", "Value": -1_000_000},
    "date_range": {"Op": "gt", "Value": "1900-01-01"},
}


def buildable(criterion: str, concept_list: int, source: bool) -> dict[str, Any]:
    """Attributes of a criterion type that circepy 0.3 can combine: one concept-list filter, and
    either CodesetId or the source-concept codeset."""
    attributes = list(SUPPORTED_CRITERIA[criterion])
    lists = [a for a in attributes if ATTRIBUTE_KINDS[a] == "concepts" and a != "Gender"]
    drop = set(lists) - set(lists[concept_list : concept_list + 1])
    drop |= {"CodesetId"} if source else {a for a in attributes if a.endswith("SourceConcept")}
    return {a: NEUTRAL[ATTRIBUTE_KINDS[a]] for a in attributes if a not in drop}


CASES = [
    (criterion, i, source)
    for criterion, attributes in SUPPORTED_CRITERIA.items()
    for i in range(max(1, sum(ATTRIBUTE_KINDS[a] == "concepts" and a != "Gender" for a in attributes)))
    for source in (
        (False, True) if any(a.endswith("SourceConcept") for a in attributes) and i == 0 else (False,)
    )
]


@pytest.mark.parametrize(("criterion", "concept_list", "source"), CASES)
def test_every_allowed_attribute_builds(
    tiny_duckdb: CdmStore, criterion: str, concept_list: int, source: bool
) -> None:
    body = buildable(criterion, concept_list, source)
    body["CorrelatedCriteria"] = {
        "Type": "ALL",
        "CriteriaList": [
            {
                "Criteria": {"ConditionOccurrence": {"CodesetId": 0}},
                "StartWindow": {"Start": {"Coeff": -1}, "End": {"Coeff": 1}},
                "Occurrence": {"Type": 2, "Count": 0},
            }
        ],
    }
    expression = {
        "ConceptSets": [{"id": 0, "expression": {"items": [{"concept": {"CONCEPT_ID": 317009}}]}}],
        "PrimaryCriteria": {"CriteriaList": [{criterion: body}]},
    }
    definition = parse_cohort(json.dumps(expression))
    table = CohortBuilder(tiny_duckdb).table(definition)
    assert table.count().to_pyarrow().as_py() >= 0


def test_cohort_level_features_build_and_neutral_values_keep_the_cohort(tiny_duckdb: CdmStore) -> None:
    base = json.loads((DATA / "asthma_atlas.json").read_text())
    full = json.loads(json.dumps(base))
    any_condition = {"ConditionOccurrence": {"CodesetId": 0}}
    always = {"Start": {"Coeff": -1}, "End": {"Coeff": 1}}
    full["PrimaryCriteria"]["ObservationWindow"] = {"PriorDays": 0, "PostDays": 0}
    full["AdditionalCriteria"] = {
        "Type": "ANY",
        "CriteriaList": [
            {
                "Criteria": any_condition,
                "StartWindow": {**always, "UseEventEnd": False, "UseIndexEnd": False},
                "EndWindow": always,
                "RestrictVisit": False,
                "IgnoreObservationPeriod": True,
                "Occurrence": {"Type": 2, "Count": 1, "IsDistinct": True},
            }
        ],
        "DemographicCriteriaList": [
            {"Gender": [{"CONCEPT_ID": 8532}], "OccurrenceStartDate": {"Op": "gt", "Value": "1900-01-01"}}
        ],
        "Groups": [
            {"Type": "AT_LEAST", "Count": 1, "DemographicCriteriaList": [{"Age": {"Op": "lt", "Value": 99}}]}
        ],
    }
    full["QualifiedLimit"] = {"Type": "All"}
    full["EndStrategy"] = {"DateOffset": {"DateField": "EndDate", "Offset": 7}}
    full["CensoringCriteria"] = [{"Death": {}}]
    full["CensorWindow"] = {"StartDate": "1900-01-01", "EndDate": "2099-12-31"}
    full["CollapseSettings"] = {"CollapseType": "ERA", "EraPad": 30}
    counts = count_cohort(tiny_duckdb, parse_cohort(json.dumps(full)))
    assert counts.total == count_cohort(tiny_duckdb, parse_cohort(json.dumps(base))).total == 4


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"CodesetId": 0, "ConditionSourceConcept": 0}, "ConditionSourceConcept", "combined with CodesetId"),
        (
            {"ConditionType": NEUTRAL["concepts"], "VisitType": NEUTRAL["concepts"]},
            "VisitType",
            "ConditionType",
        ),
    ],
)
def test_filters_circepy_cannot_combine_are_refused_before_any_node(
    body: dict[str, Any], field: str, says: str
) -> None:
    expression = {
        "ConceptSets": [{"id": 0, "expression": {"items": [{"concept": {"CONCEPT_ID": 317009}}]}}],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {**body, "Gender": NEUTRAL["concepts"]}}]
        },
    }
    from phds.errors import InputError

    with pytest.raises(InputError, match=says) as info:
        parse_cohort(json.dumps(expression))
    assert info.value.field == f"PrimaryCriteria.CriteriaList[0].ConditionOccurrence.{field}"
