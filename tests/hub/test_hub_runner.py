"""The study runner's semantics: duplicates, leases, deadlines, declines, approvals, failures.

The background sweep is driven by hand here (``runner.sweep(now=…)``), so no test waits on a clock.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from phds.hub.runner import StudyRunner
from phds.hub.store.models import utcnow
from phds.hub.testing import gate_payload, released_count, study_spec

NOOP = gate_payload("system.noop", {})


def runner_of(network: Any) -> StudyRunner:
    runner: StudyRunner = network.client.app.state.runner
    return runner


def test_a_duplicate_result_is_acknowledged_and_stored_once(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    [task] = network.poll("h1")
    assert network.answer("h1", task, payload=NOOP) == {
        "accepted": True,
        "duplicate": False,
        "cancelled": False,
    }
    version = network.study(study["id"])["version"]
    again = network.answer("h1", task, status="error", reason="replayed")
    assert again == {"accepted": False, "duplicate": True, "cancelled": False}
    view = network.study(study["id"])
    assert view["version"] == version, "a duplicate changes nothing"
    assert view["hospitals"][0]["state"] == "answered"
    with network.store.unit() as uow:
        assert uow.results.count(uuid.UUID(task["id"])) == 1
        [stored] = uow.results.for_tasks([uuid.UUID(task["id"])])
        assert stored.status == "ok"


def test_an_expired_lease_is_delivered_again_with_the_next_attempt(network: Any) -> None:
    runner = runner_of(network)
    network.submit(study_spec("uni-a", ["h1"]))
    [first] = network.poll("h1")
    assert first["attempt"] == 1
    assert network.poll("h1") == [], "a leased task is not delivered twice"
    assert runner.sweep(now=utcnow()).requeued == 0, "the lease has not expired yet"
    report = runner.sweep(now=utcnow() + timedelta(seconds=61))
    assert report.requeued == 1
    [second] = network.poll("h1")
    assert (second["id"], second["attempt"]) == (first["id"], 2)
    assert second["lease_expires_at"] > first["lease_expires_at"]
    assert network.answer("h1", second, payload=NOOP)["accepted"] is True


def test_the_deadline_times_out_silent_hospitals_and_completes_with_the_rest(network: Any) -> None:
    runner = runner_of(network)
    study = network.submit(study_spec("uni-a", ["h1", "h2", "h3"], deadline_seconds=600))
    network.answer("h1", network.poll("h1")[0], payload=NOOP)
    network.answer("h2", network.poll("h2")[0], status="declined", reason="policy: no industry")
    [silent] = network.poll("h3")
    assert runner.sweep(now=utcnow() + timedelta(seconds=60)).timed_out_studies == 0
    assert network.study(study["id"])["state"] == "running"
    runner.sweep(now=utcnow() + timedelta(seconds=601))
    final = network.study(study["id"])
    assert final["state"] == "partially_completed"
    states = {h["hospital"]: (h["state"], h["reason"]) for h in final["hospitals"]}
    assert states["h1"] == ("answered", None)
    assert states["h2"] == ("declined", "policy: no industry")
    assert states["h3"][0] == "timed_out" and "deadline" in states["h3"][1]
    result = final["result"]
    who = result["attribution"]
    assert (who["answered"], who["declined"], who["timed_out"]) == (["h1"], ["h2"], ["h3"])
    late = network.answer("h3", silent, payload=NOOP)
    assert late == {"accepted": False, "duplicate": False, "cancelled": False}, (
        "a late answer is acknowledged, not used"
    )
    assert network.study(study["id"])["version"] == final["version"]


def test_every_hospital_declining_rejects_the_study(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    for hospital in ("h1", "h2"):
        network.answer(hospital, network.poll(hospital)[0], status="declined", reason=f"{hospital} says no")
    final = network.study(study["id"])
    assert final["state"] == "rejected"
    assert final["result"] is None and final["error"] == "every hospital declined"
    assert [h["reason"] for h in final["hospitals"]] == ["h1 says no", "h2 says no"]


def test_no_answer_at_all_fails_the_study(network: Any) -> None:
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    network.answer("h1", network.poll("h1")[0], status="error", reason="database down")
    network.answer("h2", network.poll("h2")[0], status="declined")
    final = network.study(study["id"])
    assert final["state"] == "failed" and "no hospital answered" in final["error"]
    assert final["hospitals"][0] == {**final["hospitals"][0], "state": "failed", "reason": "database down"}


def test_a_combine_failure_fails_the_study_with_the_analysis_message(network: Any) -> None:
    spec = study_spec("uni-a", ["h1"], "stats.mean_variance", {"dataset": "d", "variable": "v"})
    study = network.submit(spec)
    withheld = {"moments": {"type": "sums", "n": released_count(3), "values": None}}
    network.answer("h1", network.poll("h1")[0], payload=gate_payload("stats.mean_variance", withheld))
    final = network.study(study["id"])
    assert final["state"] == "failed"
    assert "no hospital released statistics" in final["error"]


def test_awaiting_approval_parks_the_task_until_the_node_answers(network: Any) -> None:
    runner = runner_of(network)
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    [task] = network.poll("h1")
    interim = network.answer("h1", task, status="awaiting_approval", reason="steward review")
    assert interim == {"accepted": True, "duplicate": False, "cancelled": False}
    waiting = network.study(study["id"])
    assert waiting["state"] == "awaiting_approval"
    assert waiting["hospitals"][0]["state"] == "awaiting_approval"
    assert waiting["hospitals"][0]["reason"] == "steward review"
    assert network.answer("h1", task, status="awaiting_approval", reason="steward review")["accepted"]
    assert network.study(study["id"])["version"] == waiting["version"], "repeating it changes nothing"
    assert runner.sweep(now=utcnow() + timedelta(seconds=120)).requeued == 0
    assert network.poll("h1") == [], "a parked task is not redelivered"

    network.answer("h2", network.poll("h2")[0], payload=NOOP)
    assert network.study(study["id"])["state"] == "awaiting_approval", "while any hospital waits"
    assert network.answer("h1", task, payload=NOOP) == {
        "accepted": True,
        "duplicate": False,
        "cancelled": False,
    }
    final = network.study(study["id"])
    assert final["state"] == "completed"
    assert final["result"]["attribution"]["answered"] == ["h1", "h2"]


def test_a_finished_study_cancels_its_open_tasks(network: Any) -> None:
    runner = runner_of(network)
    study = network.submit(study_spec("uni-a", ["h1", "h2"], deadline_seconds=30))
    network.answer("h1", network.poll("h1")[0], payload=NOOP)
    runner.sweep(now=utcnow() + timedelta(seconds=31))
    assert network.study(study["id"])["state"] == "partially_completed"
    assert network.poll("h2") == [], "h2's queued task was cancelled with the study"
    with network.store.unit() as uow:
        states = sorted(t.state for t in uow.tasks.of_study(uuid.UUID(study["id"])))
    assert states == ["cancelled", "done"]
