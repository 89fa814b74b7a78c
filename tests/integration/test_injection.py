"""No requester string reaches SQL as text: every free-text field of a study carries SQL.

Each case is submitted over HTTP. It is either refused with a 4xx that names the field, or it runs
harmlessly: a cohort whose names carry SQL counts exactly the persons the clean cohort counts (the names
never reach a query), and afterwards the nodes' CDM tables and the hub's tables are all there with the
same row counts (the hub's only grow by the studies accepted here).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from phds.demo.network import LocalNetwork
from phds.errors import InputError
from phds.omop.simulator import HospitalResult

from .support import api, cdm_row_counts, feasibility_spec, hub_row_counts, tracebacks

pytestmark = pytest.mark.integration

DROP = "'); DROP TABLE person; --"
OR_TRUE = 'x" OR 1=1 --'
DELETE = "1; DELETE FROM studies; SELECT '"
ATLAS = Path(__file__).resolve().parents[1] / "cohorts" / "data" / "asthma_atlas.json"
PWNED = Path("/tmp/phds-integration-pwned")

Spec = dict[str, Any]


def _atlas(change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    cohort: dict[str, Any] = json.loads(ATLAS.read_text(encoding="utf-8"))
    if change is not None:
        change(cohort)
    return cohort


def _names(cohort: dict[str, Any]) -> None:
    cohort["Title"] = DROP
    for concept_set in cohort["ConceptSets"]:
        concept_set["name"] = OR_TRUE
        for item in concept_set["expression"]["items"]:
            concept = item["concept"]
            concept["CONCEPT_NAME"] = DROP
            concept["CONCEPT_CODE"] = OR_TRUE
            concept["VOCABULARY_ID"] = DELETE
            concept["DOMAIN_ID"] = DROP


def _concept_id(cohort: dict[str, Any]) -> None:
    cohort["ConceptSets"][0]["expression"]["items"][0]["concept"]["CONCEPT_ID"] = "317009) OR (1=1"


def _codeset_id(cohort: dict[str, Any]) -> None:
    cohort["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["CodesetId"] = DROP


YAML_NAMED = f"""name: "{DROP}"
entry:
  condition: {{concepts: [317009], descendants: true}}
age: {{min: 2, max: 11}}
"""
YAML_CONCEPT = """name: x
entry:
  condition: {concepts: ["317009 OR 1=1"], descendants: true}
"""
YAML_TAG = f"""name: !!python/object/apply:os.system ["touch {PWNED}"]
entry:
  condition: {{concepts: [317009]}}
"""


def _params(**params: Any) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        spec["analysis"]["params"].update(params)

    return change


def _fields(**fields: Any) -> Callable[[Spec], None]:
    return lambda spec: spec.update(fields)


# label -> (change to the clean spec, fields a refusal may name; empty: it must be accepted)
CASES: dict[str, tuple[Callable[[Spec], None], tuple[str, ...]]] = {
    "title and purpose": (_fields(title=DROP, purpose=f"{OR_TRUE} {DELETE}"), ()),
    "circe names": (_params(cohort=_atlas(_names)), ()),
    "circe names as text": (_params(cohort=json.dumps(_atlas(_names))), ()),
    "yaml cohort name": (_params(cohort=YAML_NAMED), ()),
    "circe concept id": (_params(cohort=_atlas(_concept_id)), ("analysis.params.cohort",)),
    "circe codeset id": (_params(cohort=_atlas(_codeset_id)), ("analysis.params.cohort",)),
    "yaml concept id": (_params(cohort=YAML_CONCEPT), ("analysis.params.cohort",)),
    "yaml python tag": (_params(cohort=YAML_TAG), ("analysis.params.cohort",)),
    "breakdown name": (_params(breakdowns=[DROP]), ("analysis.params.breakdowns",)),
    "source name": (_params(source=DROP), ("analysis.params.source",)),
    "organisation": (_fields(organisation=DROP), ("organisation", "you submit for")),
    "hospital": (_fields(hospitals=[OR_TRUE]), ("hospitals",)),
    "service type": (_fields(service_type=DROP), ("service_type",)),
    "analysis name": (_fields(analysis={"name": DROP, "params": {}}), ("analysis.name",)),
    "analysis version": (
        lambda spec: spec["analysis"].update(version="1' OR '1'='1"),
        ("analysis.version", "analysis.name"),
    ),
    "dataset": (
        _fields(analysis={"name": "stats.mean_variance", "params": {"dataset": DROP, "variable": "x"}}),
        ("analysis.params.dataset",),
    ),
    "variable": (
        _fields(analysis={"name": "stats.mean_variance", "params": {"dataset": "cdm", "variable": OR_TRUE}}),
        ("analysis.params.variable",),
    ),
    "omop table as dataset": (
        _fields(
            analysis={
                "name": "stats.mean_variance",
                "params": {"dataset": "person", "variable": "year_of_birth"},
            }
        ),
        ("analysis.params.dataset",),
    ),
}


@pytest.fixture(scope="module")
def outcome(guarded_network: LocalNetwork, synthetic_hospitals: list[HospitalResult]) -> dict[str, Any]:
    """Submit every case (and a clean reference), wait for the accepted ones; counts before and after."""
    urls = [f"duckdb:///{h.path.resolve()}" for h in synthetic_hospitals]
    cdm_before = [cdm_row_counts(url) for url in urls]
    hub_before = hub_row_counts(guarded_network)
    clean = feasibility_spec(guarded_network, ["north"])
    clean["analysis"]["params"] = {"cohort": _atlas(), "breakdowns": ["sex"]}
    answers: dict[str, httpx.Response] = {}
    with api(guarded_network, guarded_network.requester_token) as client:

        def submit(spec: dict[str, Any]) -> httpx.Response:
            # Nodes run only signed studies; a spec the signer itself refuses goes to the hub unsigned,
            # which refuses it naming the field.
            try:
                signed = guarded_network.signed(spec)
            except InputError:
                return client.post("/studies", json=spec)
            return client.post("/studies/signed", json=signed)

        answers["clean"] = submit(clean)
        for label, (change, _) in CASES.items():
            spec = copy.deepcopy(clean)
            change(spec)
            answers[label] = submit(spec)
    views = {}
    with guarded_network.client() as sdk:
        for label, response in answers.items():
            if response.status_code == 201:
                views[label] = sdk.wait(response.json()["id"], timeout=120)
    return {
        "answers": answers,
        "views": views,
        "cdm": (cdm_before, [cdm_row_counts(url) for url in urls]),
        "hub": (hub_before, hub_row_counts(guarded_network)),
    }


def _persons(view: Any) -> Any:
    assert view.state.is_final, view.state
    return (view.result or {}).get("hospitals", {}).get("north", {}).get("persons")


@pytest.mark.parametrize("label", list(CASES))
def test_each_sql_laden_field_is_refused_naming_it_or_runs_harmlessly(
    outcome: dict[str, Any], label: str
) -> None:
    response: httpx.Response = outcome["answers"][label]
    refusal_fields = CASES[label][1]
    assert response.status_code < 500, response.text[:300]
    if response.status_code == 201:
        view = outcome["views"][label]
        reference = outcome["views"]["clean"]
        assert view.state.value in {"completed", "partially_completed", "rejected", "failed"}
        if view.state.value == "completed" and view.spec.analysis.name == "feasibility.count":
            if label.startswith("circe"):
                assert _persons(view) == _persons(reference), "names never change what is counted"
            assert _persons(view) is not None
        else:  # refused at the node instead: with a reason naming the field, not an internal error
            assert refusal_fields and view.state.value != "completed", (label, view.state)
            reasons = " ".join(h.reason or "" for h in view.hospitals)
            assert any(field in reasons for field in refusal_fields), reasons
            assert "internal error" not in reasons
        return
    assert refusal_fields, f"{label}: a harmless field was refused: {response.text[:300]}"
    assert 400 <= response.status_code < 500
    body = response.json()
    named = {d["field"].removeprefix("body.") for d in body["details"] if d.get("field")}
    named_text = " ".join(named) + " " + body["message"]
    assert any(
        field in named_text.replace("[", ".").replace("]", "") or field in named_text
        for field in refusal_fields
    ), (
        label,
        body,
    )


def test_the_reference_study_counted_persons(outcome: dict[str, Any]) -> None:
    assert outcome["answers"]["clean"].status_code == 201
    assert outcome["views"]["clean"].state.value == "completed"
    assert _persons(outcome["views"]["clean"])["value"] > 0


def test_the_nodes_cdm_tables_are_intact(outcome: dict[str, Any]) -> None:
    before, after = outcome["cdm"]
    assert after == before
    assert all(counts["person"] > 0 for counts in after)


def test_the_hub_tables_are_intact(outcome: dict[str, Any], guarded_network: LocalNetwork) -> None:
    before, after = outcome["hub"]
    assert set(after) == set(before), "no table vanished"
    accepted = sum(r.status_code == 201 for r in outcome["answers"].values())
    assert after["studies"] == before["studies"] + accepted
    assert all(after[name] >= before[name] for name in before), "no rows deleted"
    assert tracebacks(guarded_network.log_path("hub")) == []
    assert not PWNED.exists(), "a YAML tag ran code"
