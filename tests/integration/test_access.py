"""Cross-organisation access over real HTTP: what the hub hides (404) and what it forbids (403).

- another requester organisation cannot read, list or wait on a study: 404, the same answer as for a
  study that does not exist, so existence is not revealed;
- nobody submits in another organisation's name (403), nor as a steward or a node (403);
- a steward sees only studies that target its hospital (others: 404), and never the result;
- a node cannot answer another node's task (404), even while that task is pending, and the genuine
  answer still wins.
"""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest

from phds.demo.network import LocalNetwork

from .conftest import Principals
from .support import (
    api,
    audit_entries,
    credential,
    feasibility_spec,
    released_for,
    results_of,
    task_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a network of real processes: ~45 s


@pytest.fixture(scope="module")
def study_id(guarded_network: LocalNetwork) -> str:
    """A finished feasibility study of acme-pharma at north only."""
    with guarded_network.client() as client:
        study = client.submit(feasibility_spec(guarded_network, ["north"]))
        assert client.wait(study.id, timeout=120).state.value == "completed"
    return study.id


def _hidden(response: httpx.Response, unknown: httpx.Response, study_id: str) -> None:
    """*response* (an existing study) must look exactly like *unknown* (a made-up id)."""
    assert response.status_code == unknown.status_code == 404, response.text
    assert response.json()["code"] == unknown.json()["code"] == "NotFound"
    made_up = unknown.request.url.path.split("/")[4]
    assert response.json()["message"].replace(study_id, "ID") == unknown.json()["message"].replace(
        made_up, "ID"
    )


def test_another_requester_organisation_gets_404_as_if_the_study_did_not_exist(
    guarded_network: LocalNetwork, principals: Principals, study_id: str
) -> None:
    made_up = str(uuid.uuid4())
    with api(guarded_network, principals.rival_requester) as rival:
        for suffix in ("", "/wait?timeout=0"):
            _hidden(
                rival.get(f"/studies/{study_id}{suffix}"), rival.get(f"/studies/{made_up}{suffix}"), study_id
            )
        listed = rival.get("/studies")
        assert listed.status_code == 200 and study_id not in {s["id"] for s in listed.json()}
    with api(guarded_network, guarded_network.requester_token) as owner:
        assert owner.get(f"/studies/{study_id}").json()["result"]["attribution"]["answered"] == ["north"]


def test_nobody_submits_in_another_organisations_name(
    guarded_network: LocalNetwork, principals: Principals
) -> None:
    as_acme = feasibility_spec(guarded_network, ["north"])
    with api(guarded_network, principals.rival_requester) as rival:
        refused = rival.post("/studies", json=as_acme)
        assert refused.status_code == 403 and refused.json()["code"] == "PermissionDenied", refused.text
        assert "acme-pharma" in refused.json()["message"] or "organisation" in refused.json()["message"]
    with api(guarded_network, guarded_network.requester_token) as acme:
        refused = acme.post("/studies", json={**as_acme, "organisation": "rival-labs"})
        assert refused.status_code == 403, refused.text
    steward = guarded_network.nodes["north"].steward_token
    node = credential(guarded_network, "north")["credential"]
    for token in (steward, node, guarded_network.admin_token):
        with api(guarded_network, token) as client:
            assert client.post("/studies", json=as_acme).status_code == 403
    with api(guarded_network, guarded_network.requester_token) as acme:
        assert acme.get("/studies").status_code == 200, "the refusals did not lock the owner out"


def test_a_steward_sees_only_studies_of_its_own_hospital(
    guarded_network: LocalNetwork, study_id: str
) -> None:
    made_up = str(uuid.uuid4())
    with api(guarded_network, guarded_network.nodes["south"].steward_token) as south:
        _hidden(south.get(f"/studies/{study_id}"), south.get(f"/studies/{made_up}"), study_id)
        assert study_id not in {s["id"] for s in south.get("/studies").json()}
    with api(guarded_network, guarded_network.nodes["north"].steward_token) as north:
        mine = north.get(f"/studies/{study_id}")
        assert mine.status_code == 200 and mine.json()["result"] is None, "the result is the requester's"
        assert study_id in {s["id"] for s in north.get("/studies").json()}


def test_nodes_and_requesters_stay_on_their_own_side(guarded_network: LocalNetwork, study_id: str) -> None:
    node = credential(guarded_network, "south")["credential"]
    with api(guarded_network, node) as south:
        assert south.get("/studies").status_code == 403
        assert south.get(f"/studies/{study_id}").status_code == 403
    task = task_of(guarded_network, study_id, "north")
    assert task is not None
    with api(guarded_network, guarded_network.requester_token) as acme:
        assert acme.get("/nodes/me/tasks").status_code == 403
        forged = {"task_id": str(task["id"]), "status": "ok", "payload": {}}
        assert acme.post(f"/tasks/{task['id']}/result", json=forged).status_code == 403


def test_a_node_cannot_answer_another_nodes_pending_task(guarded_network: LocalNetwork) -> None:
    north = guarded_network.nodes["north"].process
    assert north is not None
    north.send_signal(signal.SIGSTOP)  # north's task stays pending while south tries to answer it
    try:
        with guarded_network.client() as client:
            study = client.submit(feasibility_spec(guarded_network, ["north"]))
        task = wait_until(lambda: task_of(guarded_network, study.id, "north"), "north's task")
        forged = {
            "task_id": str(task["id"]),
            "status": "ok",
            "payload": {"analysis": "feasibility.count", "min_cell_count": 5, "values": {}, "notes": []},
        }
        with api(guarded_network, credential(guarded_network, "south")["credential"]) as south:
            answer = south.post(f"/tasks/{task['id']}/result", json=forged)
            assert answer.status_code == 404 and answer.json()["code"] == "NotFound", answer.text
            declined = south.post(f"/tasks/{task['id']}/result", json={**forged, "status": "declined"})
            assert declined.status_code == 404
        assert results_of(guarded_network, study.id) == []
    finally:
        north.send_signal(signal.SIGCONT)
    with guarded_network.client() as client:
        view = client.wait(study.id, timeout=120)
    assert view.state.value == "completed" and view.result is not None
    [stored] = results_of(guarded_network, study.id)
    [released] = released_for(audit_entries(guarded_network, "north", study.id), str(task["id"]))
    assert stored["audit_hash"] == released["hash"], "the stored answer is north's own"
