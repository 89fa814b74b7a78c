"""Forms generated from the analyses' Params schemas: every built-in analysis gets a form with a label on
every control, and a filled form reads back into parameters its analysis accepts."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
import yaml

from phds.analyses import available_analyses, get_analysis
from phds.analyses.omop_table import GROUND_TRUTH_TABLE
from phds.demo.scenario import default_cohort
from phds.protocol.studies import StudySpec
from phds.web.params_form import FormField, form_fields, schema_group
from phds.web.params_values import (
    apply_action,
    counts_for,
    counts_in,
    error_target,
    form_from_values,
    read_form,
)
from phds.web.render import templates

PREFIX = "analysis.params"
CNSIM = {"dataset": "cnsim"}
ROSSI = {"dataset": "rossi"}

#: One valid parameter set per built-in analysis, using every kind of control the schemas have.
EXAMPLES: dict[str, dict[str, Any]] = {
    "feasibility.count": {"cohort": default_cohort(), "breakdowns": ["sex", "age_group"]},
    "stats.mean_variance": {"dataset": "cnsim", "variable": "LAB_HDL"},
    "stats.glm": {
        "table": GROUND_TRUTH_TABLE,
        "formula": "ics ~ age_years + male",
        "family": "binomial",
        "max_iter": 30,
        "tol": 1e-9,
        "levels": {"C(g)": ["a", "b"]},
        "reference_levels": {"g": "a"},
    },
    "survival.cox": {
        "table": ROSSI,
        "duration": "week",
        "event": "arrest",
        "covariates": ["fin", "age"],
        "ties": "breslow",
        "stratified_by_hospital": False,
        "min_risk_set": 6,
        "time_width": 2.5,
    },
    "survival.km": {
        "table": ROSSI,
        "duration": "week",
        "event": "arrest",
        "group": "fin",
        "time_width": 4,
        "group_levels": ["0", "1"],
        "horizon": 52.0,
    },
    "stats.summary": {
        "table": CNSIM,
        "variable": "LAB_HDL",
        "quantiles": [0.25, 0.5, 0.75],
        "max_rounds": 20,
    },
    "stats.table": {
        "table": CNSIM,
        "rows": "PM_BMI_CATEGORICAL",
        "columns": "GENDER",
        "levels": {"GENDER": ["0", "1"]},
        "max_levels": 10,
    },
    "stats.characterisation": {
        "cohorts": [
            {"label": "girls", "table": CNSIM, "where": {"GENDER": 1}},
            {"label": "boys", "table": CNSIM, "where": {"GENDER": 0}},
        ],
        "numeric": ["LAB_HDL"],
        "categorical": ["PM_BMI_CATEGORICAL"],
        "quantiles": False,
        "compare": ["girls", "boys"],
    },
    "system.noop": {},
    "benchmarking.indicators": {
        "table": GROUND_TRUTH_TABLE,
        "indicator": "asthma admission within a year",
        "outcome": "admitted",
        "outcome_type": "binary",
        "risk_factors": ["age_years", "male"],
        "coverage": 0.9,
        "max_iter": 30,
    },
    "learning.fedavg": {
        "table": {"dataset": "cnsim"},
        "outcome": "DIS_DIAB",
        "features": {"numeric": ["LAB_HDL", "PM_BMI_CONTINUOUS"], "categorical": {"GENDER": ["0", "1"]}},
        "model": {"kind": "logistic"},
        "rounds": 10,
        "clip_norm": 50.0,
    },
    "learning.fedprox": {
        "table": {"dataset": "cnsim"},
        "outcome": "DIS_DIAB",
        "features": {"numeric": ["LAB_HDL"]},
        "model": {"kind": "mlp", "hidden": [8]},
        "mu": 0.1,
    },
    "synthetic.mst": {
        "table": {"dataset": "cnsim"},
        "columns": [
            {"name": "GENDER", "categories": [0, 1]},
            {"name": "LAB_HDL", "cuts": [1.0, 1.5, 2.0], "bounds": [0.0, 4.0]},
        ],
        "rows": 500,
        "target": {"column": "GENDER", "positive": 1},
    },
}


def fields_of(name: str, counts: dict[str, int] | None = None) -> list[FormField]:
    return form_fields(get_analysis(name).params_model.model_json_schema(), PREFIX, counts)


def normalised(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The validated parameters as JSON; a cohort given as text is compared as the YAML it holds."""
    dumped = get_analysis(name).parse_params(params).model_dump(mode="json")

    def unfold(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: yaml.safe_load(v) if k == "cohort" and isinstance(v, str) else unfold(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [unfold(v) for v in value]
        return value

    return dict(unfold(dumped))


def test_every_built_in_analysis_has_an_example() -> None:
    assert set(EXAMPLES) == set(available_analyses())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_filled_form_round_trips_into_the_same_valid_params(name: str) -> None:
    params = EXAMPLES[name]
    counts = counts_for(fields_of(name), params)
    fields = fields_of(name, counts)
    shown = form_from_values(fields, params)
    assert counts_in(shown) == counts
    read, errors = read_form(fields, shown)
    assert errors == {}
    assert normalised(name, read) == normalised(name, params)


class Controls(HTMLParser):
    """Every form control's id and name, every ``<label for>`` and whether each control sits in a label."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.open_labels = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append({**a, "in_label": "yes" if self.open_labels else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1


def render_fields(fields: list[FormField], values: dict[str, list[str]], errors: dict[str, str]) -> str:
    macro = templates.env.get_template("newstudy_fields.html").module.field  # type: ignore[attr-defined]
    return "".join(str(macro(f, values, errors)) for f in fields)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_control_of_every_form_has_a_label_and_a_unique_id(name: str) -> None:
    fields = fields_of(name)
    html = render_fields(fields, form_from_values(fields, {}), {})
    parsed = Controls()
    parsed.feed(html)
    ids = [c.get("id") for c in parsed.controls if c.get("id")]
    assert len(ids) == len(set(ids))
    for control in parsed.controls:
        assert control["in_label"] or control.get("id") in parsed.label_for, control
    names = {str(c["name"]) for c in parsed.controls}
    assert all(n.startswith(PREFIX + ".") for n in names)


def test_the_glm_form_has_the_controls_its_schema_asks_for() -> None:
    by_name = {f.name: f for top in fields_of("stats.glm") for f in top.walk()}
    assert by_name[f"{PREFIX}.formula"].required and by_name[f"{PREFIX}.formula"].kind == "text"
    family = by_name[f"{PREFIX}.family"]
    assert family.kind == "select" and list(family.choices) == ["gaussian", "binomial", "poisson"]
    assert family.default == "gaussian"
    assert by_name[f"{PREFIX}.table"].kind == "group" and by_name[f"{PREFIX}.table"].label == "Table"
    assert by_name[f"{PREFIX}.table.cohort"].kind == "textarea"
    covariates = by_name[f"{PREFIX}.table.covariates"]
    assert covariates.kind == "yaml" and {v.tag for v in covariates.variants} >= {"kind: age", "kind: sex"}
    assert yaml.safe_load(covariates.example)  # the example itself is valid YAML
    max_iter = by_name[f"{PREFIX}.max_iter"]
    assert (max_iter.kind, max_iter.value_type, max_iter.attrs["min"], max_iter.attrs["max"]) == (
        "number",
        "integer",
        "1",
        "100",
    )
    assert by_name[f"{PREFIX}.tol"].constraints == ["more than 0 and at most 0.01"]


def test_a_person_fills_the_glm_form_by_hand() -> None:
    covariates = yaml.safe_dump(GROUND_TRUTH_TABLE["covariates"], sort_keys=False)
    form = {
        f"{PREFIX}.table.cohort": [yaml.safe_dump(GROUND_TRUTH_TABLE["cohort"])],
        f"{PREFIX}.table.covariates": [covariates],
        f"{PREFIX}.table.entries": ["first"],
        f"{PREFIX}.formula": ["  ics ~ age_years + male  "],
        f"{PREFIX}.family": ["binomial"],
        f"{PREFIX}.offset": [""],
        f"{PREFIX}.max_iter": ["25"],
        f"{PREFIX}.tol": ["1e-08"],
    }
    params, errors = read_form(fields_of("stats.glm"), form)
    assert errors == {}
    parsed = get_analysis("stats.glm").parse_params(params)
    assert parsed.model_dump(mode="json")["formula"] == "ics ~ age_years + male"
    assert "offset" not in params  # an empty input leaves the default


def test_what_cannot_be_read_is_reported_at_its_field() -> None:
    form = {
        f"{PREFIX}.max_iter": ["many"],
        f"{PREFIX}.tol": ["inf"],
        f"{PREFIX}.levels": ["a: [b"],
        f"{PREFIX}.family": ["cauchy"],
    }
    _, errors = read_form(fields_of("stats.glm"), form)
    assert errors[f"{PREFIX}.max_iter"] == "'many' is not a whole number"
    assert "finite" in errors[f"{PREFIX}.tol"]
    assert (
        errors[f"{PREFIX}.levels"].startswith("line 1, column ")
        and "not valid YAML" in errors[f"{PREFIX}.levels"]
    )
    assert errors[f"{PREFIX}.family"] == "choose one of gaussian, binomial, poisson"


def test_a_tuple_needs_exactly_its_number_of_values() -> None:
    _, errors = read_form(fields_of("stats.characterisation"), {f"{PREFIX}.compare": ["girls"]})
    assert errors == {f"{PREFIX}.compare": "give exactly 2 values separated by commas"}


def test_a_check_error_lands_on_the_field_or_the_yaml_field_holding_it() -> None:
    fields = fields_of("stats.glm")
    assert error_target(fields, f"{PREFIX}.formula") == f"{PREFIX}.formula"
    assert error_target(fields, f"{PREFIX}.table.covariates.3.window.start") == f"{PREFIX}.table.covariates"
    assert error_target(fields, f"{PREFIX}.table") == f"{PREFIX}.table"
    assert error_target(fields, "analysis.name") is None


def test_items_of_a_repeatable_fieldset_are_added_and_removed() -> None:
    name = f"{PREFIX}.cohorts"
    shown = form_from_values(
        fields_of("stats.characterisation", {name: 2}), EXAMPLES["stats.characterisation"]
    )
    assert counts_in(shown) == {name: 2}
    added = apply_action(f"add:{name}", shown)
    assert counts_in(added) == {name: 3}
    assert len(fields_of("stats.characterisation", counts_in(added))[0].children) == 3
    removed = apply_action(f"remove:{name}.0", shown)
    assert counts_in(removed) == {name: 1}
    assert removed[f"{name}.0.label"] == ["boys"]  # the second item moved up
    assert f"{name}.1.label" not in removed


def test_the_study_dp_block_is_an_optional_fieldset_left_out_unless_included() -> None:
    study = {f.key: f for f in form_fields(StudySpec.model_json_schema(), "")}
    dp = study["dp"]
    assert dp.kind == "group" and dp.optional_group
    assert read_form([dp], {"dp.epsilon": ["1"]})[0] == {}
    read, errors = read_form(
        [dp], {"dp.__include": ["yes"], "dp.epsilon": ["1.5"], "dp.bounds": ["x: [0, 5]"]}
    )
    assert errors == {}
    assert read == {"dp": {"epsilon": 1.5, "bounds": {"x": [0, 5]}}}


def test_a_group_schema_becomes_one_fieldset() -> None:
    schema = StudySpec.model_json_schema()["$defs"]["DpRequest"]
    group = schema_group({**schema, "$defs": {}}, "dp", "Differential privacy", optional=True)
    assert group.optional_group and [c.key for c in group.children] == [
        "epsilon",
        "rho",
        "mechanism",
        "bounds",
    ]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_whole_new_study_page_of_every_analysis_has_labelled_controls(name: str) -> None:
    """The page as the portal renders it: the study's fields and the analysis's, ids unique across both."""
    from datetime import UTC, datetime

    from phds.hub.api.analyses import analysis_info
    from phds.protocol.catalogue import CatalogueEntry
    from phds.web.pages.study_forms import PARAMS_PREFIX, initial_values, study_fields

    info = analysis_info(get_analysis(name))
    entry = CatalogueEntry(
        id=1,
        hospital="alpha",
        display_name="Alpha",
        country="GB",
        node_id="00000000-0000-0000-0000-000000000001",
        published_at=datetime.now(UTC),
        profile={},
    )
    study = study_fields(info, [entry], [{"id": "APP-1", "state": "accepted", "form": {"title": "T"}}])
    params = form_fields(info.params_schema, PARAMS_PREFIX)
    keys = [f.key for f in study]
    assert ("dp" in keys) is info.dp_support and (
        "secure_aggregation" in keys
    ) is info.secure_aggregation_support
    html = templates.env.get_template("newstudy_form.html").render(
        info=info,
        study_fields=study,
        param_fields=params,
        values=initial_values(info, study, params),
        errors={},
        error_labels={},
        problem=None,
        csrf="x",
        viewer=None,
        nav=[],
    )
    parsed = Controls()
    parsed.feed(html)
    ids = [c["id"] for c in parsed.controls if c.get("id")]
    assert len(ids) == len(set(ids))
    for control in parsed.controls:
        assert control["in_label"] or control.get("id") in parsed.label_for, control
    assert 'value="alpha"' in html and "APP-1: T" in html
