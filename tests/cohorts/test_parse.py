"""Parsing cohort definitions: ATLAS exports, wrappers, fingerprints, and errors that name their place."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from phds.cohorts import CohortDefinition, parse_cohort, validate_concepts
from phds.errors import InputError

DATA = Path(__file__).parent / "data"


def read_data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def atlas() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(read_data("asthma_atlas.json"))
    return result


def refused(expression: Any) -> InputError:
    with pytest.raises(InputError) as info:
        parse_cohort(json.dumps(expression), filename="cohort.json")
    return info.value


def test_atlas_export_parses_with_its_title_and_concepts() -> None:
    definition = parse_cohort(read_data("asthma_atlas.json"), filename="asthma_atlas.json")
    assert definition.kind == "circe"
    assert definition.name == "Children 2-11 with asthma treated with salbutamol"
    assert definition.concept_ids() == {317009, 1154343}
    assert len(definition.fingerprint) == 64
    assert definition.expression == atlas()  # kept whole, names and all


def test_semantic_expression_keeps_only_what_runs() -> None:
    semantic = parse_cohort(read_data("asthma_atlas.json")).semantic_expression
    text = json.dumps(semantic)
    for cosmetic in ("Asthma", "albuterol", "Title", "CONCEPT_NAME", "salbutamol within", "cdmVersionRange"):
        assert cosmetic not in text
    assert semantic["ConceptSets"][0]["expression"]["items"][0]["concept"] == {"CONCEPT_ID": 317009}


def test_webapi_wrapper_with_expression_as_string_or_object() -> None:
    bare = parse_cohort(read_data("asthma_atlas.json"))
    as_object = parse_cohort(json.dumps({"id": 7, "name": "Asthma kids", "expression": atlas()}))
    as_string = parse_cohort(json.dumps({"id": 7, "name": "Asthma kids", "expression": json.dumps(atlas())}))
    assert as_object.name == as_string.name == "Asthma kids"
    assert as_object.fingerprint == as_string.fingerprint == bare.fingerprint


def test_fingerprint_ignores_names_order_and_layout_but_not_meaning() -> None:
    base = parse_cohort(read_data("asthma_atlas.json")).fingerprint
    renamed = atlas()
    renamed["Title"] = "Something else"
    renamed["ConceptSets"][0]["name"] = "Wheeze"
    renamed["ConceptSets"][0]["expression"]["items"][0]["concept"]["CONCEPT_NAME"] = "whatever"
    renamed["InclusionRules"][0]["name"] = "renamed rule"
    reordered = dict(reversed(list(renamed.items())))
    assert parse_cohort(json.dumps(reordered, indent=4)).fingerprint == base

    wider = atlas()
    wider["InclusionRules"][1]["expression"]["DemographicCriteriaList"][0]["Age"]["Extent"] = 17
    assert parse_cohort(json.dumps(wider)).fingerprint != base


def test_definition_round_trips_through_its_wire_form() -> None:
    definition = parse_cohort(read_data("asthma_atlas.json"))
    again = CohortDefinition.model_validate_json(definition.model_dump_json())
    assert again.fingerprint == definition.fingerprint
    assert again.concept_ids() == definition.concept_ids()


def test_constructing_a_definition_directly_checks_it() -> None:
    bad = atlas()
    bad["PrimaryCriteria"]["CriteriaList"][0] = {"Specimen": {"CodesetId": 0}}
    with pytest.raises(InputError, match=r"PrimaryCriteria\.CriteriaList\[0\]\.Specimen: not supported"):
        CohortDefinition(kind="circe", expression=bad)


@pytest.mark.parametrize(
    ("mutate", "field", "says"),
    [
        (lambda e: e["PrimaryCriteria"]["CriteriaList"].append({"Specimen": {"CodesetId": 0}}),
         "PrimaryCriteria.CriteriaList[1].Specimen", "not supported"),
        (lambda e: e["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"].update(CodesetID=0),
         "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.CodesetID", "not supported"),
        (lambda e: e["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"].update(
            StopReason={"Text": "x", "Op": "contains"}),
         "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.StopReason", "not supported"),
        (lambda e: e["InclusionRules"][1]["expression"]["DemographicCriteriaList"][0]["Age"].update(Op="!bt"),
         "InclusionRules[1].expression.DemographicCriteriaList[0].Age.Op", "'!bt' is not supported"),
        (lambda e: e["InclusionRules"][0]["expression"]["CriteriaList"][0]["Criteria"]["DrugExposure"].update(
            CodesetId=5),
         "InclusionRules[0].expression.CriteriaList[0].Criteria.DrugExposure.CodesetId", "concept set 5"),
        (lambda e: e["ConceptSets"][1].update(id=0), "ConceptSets[1].id", "used twice"),
        (lambda e: e["ConceptSets"][0]["expression"]["items"][0]["concept"].update(CONCEPT_ID="317009"),
         "ConceptSets[0].expression.items[0].concept.CONCEPT_ID", "whole number"),
        (lambda e: e["ConceptSets"][0]["expression"]["items"][0]["concept"].update(CONCEPT_ID=2**64),
         "ConceptSets[0].expression.items[0].concept.CONCEPT_ID", "too large"),
        (lambda e: e["InclusionRules"][1]["expression"]["DemographicCriteriaList"][0]["Age"].update(
            Value=float("nan")),
         "InclusionRules[1].expression.DemographicCriteriaList[0].Age.Value", "finite number"),
        (lambda e: e.update(EndStrategy={"CustomEra": {"DrugCodesetId": 1, "GapDays": 30}}),
         "EndStrategy.CustomEra", "not supported"),
        (lambda e: e["PrimaryCriteria"].update(CriteriaList=[]),
         "PrimaryCriteria.CriteriaList", "at least 1"),
        (lambda e: e.pop("PrimaryCriteria"), "PrimaryCriteria", "required"),
        (lambda e: e["InclusionRules"][0]["expression"].update(Type="AT_LEAST"),
         "InclusionRules[0].expression.Count", "required"),
        (lambda e: e["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"].update(
            OccurrenceStartDate={"Op": "gt", "Value": "2020-13-01"}),
         "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.OccurrenceStartDate.Value", "YYYY-MM-DD"),
    ],
)  # fmt: skip
def test_unsupported_or_wrong_parts_are_named_by_json_path(mutate: Any, field: str, says: str) -> None:
    expression = copy.deepcopy(atlas())
    mutate(expression)
    error = refused(expression)
    assert error.field == field
    assert error.file == "cohort.json"
    assert f"field {field}: " in str(error)
    assert says in str(error)


def test_paths_inside_a_wrapper_start_with_expression() -> None:
    expression = atlas()
    expression["PrimaryCriteria"]["CriteriaList"][0] = {"Episode": {}}
    error = refused({"name": "x", "expression": expression})
    assert error.field == "expression.PrimaryCriteria.CriteriaList[0].Episode"


def test_malformed_json_reports_line_and_column() -> None:
    text = '{\n  "PrimaryCriteria": {\n    "CriteriaList": [,]\n  }\n}'
    with pytest.raises(InputError) as info:
        parse_cohort(text, filename="broken.json")
    assert (info.value.line, info.value.column) == (3, "22")
    assert "broken.json" in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_json_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InputError, match="must be a JSON object"):
        parse_cohort("[1, 2]", filename="list.json")


def test_validate_concepts_lists_the_unknown_ones() -> None:
    definition = parse_cohort(read_data("asthma_atlas.json"))
    vocabulary = {317009, 8507, 8532}
    seen: list[set[int]] = []

    def known(ids: set[int]) -> set[int]:
        seen.append(ids)
        return ids & vocabulary

    with pytest.raises(InputError, match=r"unknown concept id\(s\): 1154343$") as info:
        validate_concepts(definition, known)
    assert info.value.field == "ConceptSets"
    assert seen == [{317009, 1154343}]
    validate_concepts(definition, lambda ids: ids)  # all known: no error


def test_oversized_and_overnested_definitions_are_refused() -> None:
    from phds.cohorts.circe import MAX_DEFINITION_CHARS
    from phds.errors import PayloadTooLarge

    with pytest.raises(PayloadTooLarge):
        parse_cohort(" " * (MAX_DEFINITION_CHARS + 1), filename="big.json")
    group: dict[str, Any] = {"Type": "ALL", "Groups": []}
    nested = group
    for _ in range(12):
        inner: dict[str, Any] = {"Type": "ALL", "Groups": []}
        nested["Groups"].append(inner)
        nested = inner
    expression = atlas()
    expression["AdditionalCriteria"] = group
    error = refused(expression)
    assert error.field is not None and error.field.startswith("AdditionalCriteria.Groups[0].Groups[0]")
    assert "nested more than" in str(error)
