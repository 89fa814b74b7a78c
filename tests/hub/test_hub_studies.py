"""Studies over HTTP: submission and its validation, scoping, and a two-round study over three hospitals."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from phds.hub.testing import gate_payload, mean_variance_payload, study_spec

pytestmark = pytest.mark.usefixtures("network")

DATA = {
    "h1": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "h2": [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0],
    "h3": [5.0, 5.0, 5.0, 5.0, 5.0, 7.5],
}
MV = {"dataset": "growth", "variable": "height_sds"}


def test_two_round_study_over_three_hospitals(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2", "h3"], "stats.mean_variance", MV))
    assert (study["state"], study["round"], study["version"]) == ("submitted", 1, 1)
    assert study["spec"]["analysis"]["version"] == "1", "the hub records the version it resolved"
    assert [h["hospital"] for h in study["hospitals"]] == ["h1", "h2", "h3"]
    assert {h["state"] for h in study["hospitals"]} == {"pending"}

    versions = [study["version"]]
    for hospital, xs in DATA.items():
        [task] = network.poll(hospital)
        assert (task["round"], task["attempt"], task["hospital"]) == (1, 1, hospital)
        assert task["requester"] == {"organisation": "uni-a", "category": "academic"}
        assert (task["analysis"], task["analysis_version"], task["params"]) == (
            "stats.mean_variance",
            "1",
            MV,
        )
        assert task["study_id"] == study["id"] and task["state"] == {}
        assert network.answer(hospital, task, payload=mean_variance_payload(1, xs)) == {
            "accepted": True,
            "duplicate": False,
            "cancelled": False,
        }
        versions.append(network.study(study["id"])["version"])
    assert versions == sorted(set(versions)), "every change bumps the version"

    after_round_1 = network.study(study["id"])
    assert (after_round_1["state"], after_round_1["round"]) == ("running", 2)
    assert {h["state"] for h in after_round_1["hospitals"]} == {"pending"}
    pooled = [x for xs in DATA.values() for x in xs]
    for hospital, xs in DATA.items():
        [task] = network.poll(hospital)
        assert (task["round"], task["attempt"]) == (2, 1)
        assert math.isclose(task["state"]["mean"], statistics.fmean(pooled))
        network.answer(hospital, task, payload=mean_variance_payload(2, xs, task["state"]["mean"]))

    final = network.study(study["id"])
    assert final["state"] == "completed" and final["finished_at"] is not None and final["error"] is None
    result = final["result"]
    assert result["n"] == len(pooled)
    assert math.isclose(result["mean"], statistics.fmean(pooled))
    assert math.isclose(result["variance"], statistics.variance(pooled))
    assert result["attribution"]["answered"] == ["h1", "h2", "h3"]
    who = result["attribution"]
    assert who["declined"] == who["refused"] == who["failed"] == who["timed_out"] == []
    assert result["notes"] == []
    assert {h["state"] for h in final["hospitals"]} == {"answered"}
    as_steward = network.study(study["id"], actor="steward")
    assert as_steward["state"] == "completed" and as_steward["result"] is None, (
        "the result is the requester's"
    )
    assert all(network.poll(h) == [] for h in DATA), "no task is left after the final round"


def test_a_hospital_that_drops_out_of_round_two_is_named(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"], "stats.mean_variance", MV))
    for hospital in ("h1", "h2"):
        [task] = network.poll(hospital)
        network.answer(hospital, task, payload=mean_variance_payload(1, DATA[hospital]))
    [task] = network.poll("h1")
    network.answer("h1", task, payload=mean_variance_payload(2, DATA["h1"], task["state"]["mean"]))
    [task] = network.poll("h2")
    network.answer("h2", task, status="refused", reason="statistics of fewer than 5 persons")
    final = network.study(study["id"])
    assert final["state"] == "partially_completed"
    who = final["result"]["attribution"]
    assert (who["answered"], who["refused"]) == (["h1"], ["h2"])
    assert math.isclose(final["result"]["variance"], statistics.variance(DATA["h1"]))
    h2 = final["hospitals"][1]
    assert h2["state"] == "declined" and "fewer than 5" in h2["reason"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"analysis": {"name": "no.such"}}, "analysis.name"),
        ({"analysis": {"name": "system.noop", "version": "9"}}, "analysis.version"),
        ({"analysis": {"name": "stats.mean_variance", "params": {"dataset": "1x", "variable": "v"}}},
         "analysis.params.dataset"),
        ({"analysis": {"name": "feasibility.count", "params": {"cohort": "{not json"}}},
         "analysis.params.cohort"),
        ({"hospitals": ["h1", "h2", "nowhere"]}, "hospitals[2]"),
        ({"hospitals": ["h1", "uni-a"]}, "hospitals[1]"),
        ({"hospitals": ["h-unenrolled"]}, "hospitals[0]"),
    ],
)  # fmt: skip
def test_invalid_studies_name_the_field(network: Any, change: dict[str, Any], field: str) -> None:
    spec = {**study_spec("uni-a", ["h1"]), **change}
    response = network.client.post("/api/v1/studies", token=network.tokens["requester"], json=spec)
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in body["message"]
    assert body["details"][0]["field"].startswith(field)
    listed = network.client.get("/api/v1/studies", token=network.tokens["requester"]).json()
    assert listed == [], "nothing is half-written"


def test_requesters_submit_only_for_their_own_organisation(network: Any) -> None:
    spec = study_spec("uni-a", ["h1"])
    response = network.client.post("/api/v1/studies", token=network.tokens["requester_other"], json=spec)
    assert response.status_code == 403
    assert "pharma-b" in response.json()["message"]
    for actor in ("admin", "steward", "h1"):
        refused = network.client.post("/api/v1/studies", token=network.tokens[actor], json=spec)
        assert refused.status_code == 403, actor


def test_studies_are_scoped_to_requester_and_targeted_stewards(network: Any) -> None:
    mine = network.submit(study_spec("uni-a", ["h1", "h2"]))
    theirs = network.submit(study_spec("pharma-b", ["h2"]), actor="requester_other")

    def ids(actor: str) -> list[str]:
        response = network.client.get("/api/v1/studies", token=network.tokens[actor])
        assert response.status_code == 200
        return [s["id"] for s in response.json()]

    assert ids("requester") == [mine["id"]]
    assert ids("requester_other") == [theirs["id"]]
    assert ids("steward") == [mine["id"]], "h1's steward sees the study that targets h1"
    assert ids("steward_h3") == []
    assert ids("admin") == [theirs["id"], mine["id"]], "newest first"
    for actor, status in (("requester_other", 404), ("steward_h3", 404), ("h1", 403), ("admin", 200)):
        response = network.client.get(f"/api/v1/studies/{mine['id']}", token=network.tokens[actor])
        assert response.status_code == status, actor
    assert network.client.get("/api/v1/studies/not-a-uuid", token=network.tokens["admin"]).status_code == 404


def test_a_node_sees_and_answers_only_its_own_tasks(network: Any) -> None:
    network.submit(study_spec("uni-a", ["h1"]))
    assert network.poll("h2") == []
    [task] = network.poll("h1")
    body = {"task_id": task["id"], "status": "ok", "payload": gate_payload("system.noop", {})}
    stolen = network.client.post(f"/api/v1/tasks/{task['id']}/result", token=network.tokens["h2"], json=body)
    assert stolen.status_code == 404
    mismatched = network.client.post(
        "/api/v1/tasks/00000000-0000-0000-0000-000000000000/result", token=network.tokens["h1"], json=body
    )
    assert mismatched.status_code == 422 and mismatched.json()["details"][0]["field"] == "task_id"
    assert network.answer("h1", task, payload=body["payload"])["accepted"] is True


def test_feasibility_study_sums_released_counts(network: Any) -> None:
    from phds.hub.testing import released_count

    cohort = "name: Asthma\nentry: {condition: {concepts: [317009], descendants: true}}\n"
    study = network.submit(study_spec("uni-a", ["h1", "h2"], "feasibility.count", {"cohort": cohort}))
    for hospital, n in (("h1", 12), ("h2", 3)):
        [task] = network.poll(hospital)
        persons = {"type": "count", **released_count(n)}
        network.answer(hospital, task, payload=gate_payload("feasibility.count", {"persons": persons}))
    final = network.study(study["id"])
    assert final["state"] == "completed", final
    total = final["result"]["total"]
    assert (total["lower"], total["upper"]) == (13, 16), "h2's count is below 5, so the total is a range"


def test_a_requester_cancels_a_running_study_and_nodes_learn_it(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    [task_h1] = network.poll("h1")
    [task_h2] = network.poll("h2")
    cancel = f"/api/v1/studies/{study['id']}/cancel"
    for actor, status in (("requester_other", 404), ("steward", 403), ("h1", 403), ("admin", 403)):
        assert network.client.post(cancel, token=network.tokens[actor], json={}).status_code == status, actor
    done = network.client.post(cancel, token=network.tokens["requester"], json={"reason": "wrong cohort"})
    assert done.status_code == 200, done.text
    view = done.json()
    assert view["state"] == "cancelled" and view["error"] == "cancelled by the requester: wrong cohort"
    assert {h["state"] for h in view["hospitals"]} == {"cancelled"}
    states = network.client.post(
        "/api/v1/nodes/me/tasks/states",
        token=network.tokens["h1"],
        json={"task_ids": [task_h1["id"], task_h2["id"]]},
    )
    assert states.json() == {"states": {task_h1["id"]: "cancelled"}}, "another node's task is left out"
    late = network.answer("h1", task_h1, payload=gate_payload("system.noop", {}))
    assert late == {"accepted": False, "duplicate": False, "cancelled": True}
    assert network.client.post(cancel, token=network.tokens["requester"]).json()["version"] == view["version"]
    assert network.poll("h2") == []
