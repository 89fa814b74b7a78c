"""Covariate declarations are checked at the hub, and every error names the covariate's field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from phds.analyses.base import Analysis, Final, LocalStep, NextRound
from phds.analyses.omop_covariates import (
    EventCovariate,
    MeasurementCovariate,
    TimeToEventCovariate,
    check_table_at_hub,
    cohort_definition,
)
from phds.analyses.omop_table import GROUND_TRUTH_TABLE
from phds.analyses.tables import TableSpec
from phds.errors import InputError
from phds.omop.vocabulary import concepts as c
from phds.sources import NodeData

COHORT = {"entry": {"condition": {"concepts": [c.ASTHMA]}}}
DRUG = {"name": "ics", "kind": "drug", "concepts": [c.BUDESONIDE], "window": {"start": 0, "end": 30}}


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: TableSpec


class _TableAnalysis(Analysis[_Params]):
    """The smallest analysis with a table parameter: its ``parse_params`` is the hub's validation."""

    name: ClassVar[str] = "test.table"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "table"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "omop"
    params_model = _Params

    def local(self, data: NodeData, params: _Params, round_no: int, state: Mapping[str, Any]) -> LocalStep:
        return LocalStep([])

    def combine(
        self,
        params: _Params,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        return Final({})


def refused(covariates: list[Any]) -> InputError:
    with pytest.raises(InputError) as info:
        _TableAnalysis().parse_params({"table": {"cohort": COHORT, "covariates": covariates}})
    return info.value


@pytest.mark.parametrize(
    ("covariates", "field", "message"),
    [
        ([DRUG, {**DRUG, "concepts": [c.BUDESONIDE, "939259"]}], "covariates.1.concepts.1", "valid integer"),
        ([{**DRUG, "concepts": [True]}], "covariates.0.concepts.0", "valid integer"),
        ([{**DRUG, "concepts": [-5]}], "covariates.0.concepts.0", "greater than or equal to 1"),
        ([{**DRUG, "concepts": []}], "covariates.0.concepts", "at least 1 item"),
        ([{**DRUG, "window": {"start": 30, "end": 0}}], "covariates.0.window", "start 30 is after end 0"),
        ([{**DRUG, "window": {"start": 0, "end": 10**6}}], "covariates.0.window.end", "less than or equal"),
        ([{k: v for k, v in DRUG.items() if k != "window"}], "covariates.0.window", "Field required"),
        ([{**DRUG, "name": "ics; DROP TABLE person"}], "covariates.0.name", "should match pattern"),
        ([{**DRUG, "kind": "drugs"}], "covariates.0.kind", "Input should be 'age'"),
        ([{**DRUG, "colour": "red"}], "covariates.0.colour", "Extra inputs are not permitted"),
        ([DRUG, {"name": "ics", "kind": "age"}], "covariates.1.name", "already made by covariates[0]"),
        ([{"name": "subject_id", "kind": "sex"}], "covariates.0.name", "reserved"),
        ([{"name": "age", "kind": "age", "unit": "weeks"}], "covariates.0.unit", "'days', 'months'"),
        ([{"name": "sex", "kind": "sex", "coding": "M"}], "covariates.0.coding", "'male', 'female'"),
        (
            [{"name": "w", "kind": "measurement", "concepts": [c.BODY_WEIGHT], "window": {}, "value": "sds"}],
            "covariates.0.growth",
            "needs a growth measurement",
        ),
        (
            [{"name": "w", "kind": "measurement", "concepts": [1], "window": {}, "growth": "weight"}],
            "covariates.0.growth",
            "needs a growth measurement",
        ),
        ([{**DRUG, "visit": {}}], "covariates.0.visit", "give visit concepts, a condition, or both"),
        (
            [{"name": "t", "kind": "time_to_event", "domain": "drug"}],
            "covariates.0.concepts",
            "name the event",
        ),
        (
            [
                {
                    "name": "t",
                    "kind": "time_to_event",
                    "domain": "death",
                    "time_at_risk": {"start": 9, "end": 1},
                }
            ],
            "covariates.0.time_at_risk",
            "start 9 is after end 1",
        ),
        (
            [{"name": "t", "kind": "time_to_event", "domain": "death"}, {"name": "t_event", "kind": "age"}],
            "covariates.1.name",
            "'t_event' is already made by covariates[0]",
        ),
        (["age"], "covariates.0", "an object with a name and a kind"),
    ],
)
def test_errors_name_the_covariate_field(covariates: list[Any], field: str, message: str) -> None:
    error = refused(covariates)
    assert error.field == f"analysis.params.table.{field}"
    assert message in error.message


def test_a_dataset_takes_no_covariates_and_names_are_unique_per_column() -> None:
    with pytest.raises(ValidationError, match="belong to a cohort table"):
        TableSpec.model_validate({"dataset": "cnsim", "entries": "all"})
    spec = TableSpec.model_validate({"cohort": COHORT, "covariates": [DRUG, {**DRUG, "name": "ics_event"}]})
    assert [cv.columns() for cv in spec.covariates] == [["ics"], ["ics_event"]]


def test_the_ground_truth_spec_is_valid_and_known_to_the_shipped_vocabulary() -> None:
    spec = TableSpec.model_validate(GROUND_TRUTH_TABLE)
    assert TableSpec.model_validate_json(spec.model_dump_json()) == spec  # no serializer warnings either
    kinds = [type(cv) for cv in spec.covariates]
    assert kinds[2] is MeasurementCovariate and kinds[3] is EventCovariate and kinds[4] is EventCovariate
    check_table_at_hub(spec, lambda ids: ids & set(c.REGISTRY))
    definition = cohort_definition(spec)
    assert definition.kind == "yaml" and definition.concept_ids() == {c.ASTHMA}
    # the same cohort as YAML text and as its compiled Circe JSON object builds the same (fingerprint)
    text = "entry: {condition: {concepts: [317009]}}\nobservation_window: {prior: 0, post: 365}\n"
    as_text = cohort_definition(TableSpec(cohort=text))
    as_circe = cohort_definition(TableSpec(cohort=dict(definition.expression)))
    assert as_text.fingerprint == as_circe.fingerprint == definition.fingerprint


def test_hub_check_names_unknown_concepts_and_cohort_errors() -> None:
    known = {c.ASTHMA, c.BUDESONIDE}
    spec = TableSpec.model_validate(
        {
            "cohort": COHORT,
            "covariates": [
                DRUG,
                {"name": "t", "kind": "time_to_event", "domain": "visit", "concepts": [c.INPATIENT_VISIT]},
            ],
        }
    )
    with pytest.raises(InputError, match="unknown concept id\\(s\\): 9201") as info:
        check_table_at_hub(spec, lambda ids: ids & known)
    assert info.value.field == "analysis.params.table.covariates.1"
    assert isinstance(spec.covariates[1], TimeToEventCovariate)
    bad_cohort = TableSpec.model_validate({"cohort": {"entry": {"condition": {"concepts": [1]}}, "agee": 3}})
    with pytest.raises(InputError, match="Extra inputs are not permitted") as info:
        check_table_at_hub(bad_cohort)
    assert info.value.field == "analysis.params.table.cohort.agee"
    with pytest.raises(InputError) as info:
        check_table_at_hub(TableSpec.model_validate({"cohort": COHORT}), lambda ids: set())
    assert info.value.field == "analysis.params.table.cohort" and "317009" in info.value.message
    check_table_at_hub(TableSpec(dataset="cnsim"), lambda ids: set())  # datasets have no concepts


def test_the_schema_is_json_schema_for_portals() -> None:
    schema = TableSpec.model_json_schema()
    items = schema["properties"]["covariates"]["items"]
    assert {ref["$ref"].rsplit("/", 1)[-1] for ref in items["anyOf"]} >= {
        "AgeCovariate",
        "MeasurementCovariate",
        "TimeToEventCovariate",
    }
