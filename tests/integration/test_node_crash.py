"""A node killed mid-task and restarted: the study completes, each task has one result and one release.

Two ways of dying, both made deterministic without hooks in the product:
- the node is paused (SIGSTOP) while the hub hands it a task, so the hub holds a lease the node never
  reads; then it is killed (SIGKILL) and restarted. The lease (2 s here) expires, the hub delivers the
  task again with attempt 2, and the new process answers it.
- the node computes and releases a value (audited) but dies before the hub has it: the hub is paused
  while the steward approves a parked task, the node is killed as soon as its audit log shows the
  release, then the hub resumes and the node restarts. Its outbox posts the stored result; nothing is
  computed or released twice.
"""

from __future__ import annotations

import signal

import pytest

from phds.demo.network import LocalNetwork

from .support import (
    approve,
    audit_entries,
    audit_entries_now,
    audit_verify,
    feasibility_spec,
    metered_receipts,
    pause_while_polling,
    released_for,
    results_of,
    task_of,
    tasks_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def _final(network: LocalNetwork, study_id: str) -> dict[str, object]:
    with network.client() as client:
        view = client.wait(study_id, timeout=120)
    assert view.state.is_final, f"study still {view.state.value} after 120 s"
    return view.model_dump(mode="json")


def test_a_node_killed_holding_a_lease_is_redelivered_the_task_and_answers_it_once(
    network: LocalNetwork,
) -> None:
    # The network's nodes poll for 3 s: too short to submit a study inside one poll on a loaded machine.
    network.stop_node("alpha")
    network.start_node("alpha", node_args=("--poll-wait", "30", "--catalogue-minutes", "0"))
    pause_while_polling(network, "alpha", poll_wait=30)  # the hub will lease the task into the open poll
    with network.client() as client:
        study = client.submit(feasibility_spec(network, ["alpha", "beta"]))

    leased = wait_until(
        lambda: (t := task_of(network, study.id, "alpha")) and t["state"] == "leased" and t,
        "the hub to lease alpha's task to the paused node",
    )
    assert leased["attempt"] == 1
    assert network.stop_node("alpha", signal.SIGKILL) == -signal.SIGKILL
    network.start_node("alpha")

    view = _final(network, study.id)
    assert view["state"] == "completed", view
    assert {h["hospital"]: h["state"] for h in view["hospitals"]} == {"alpha": "answered", "beta": "answered"}

    task = task_of(network, study.id, "alpha")
    assert task is not None and task["state"] == "done"
    assert task["attempt"] >= 2, "the expired lease must have been delivered again"
    results = results_of(network, study.id)
    assert len(results) == len(tasks_of(network, study.id)) == 2
    assert len({r["task_id"] for r in results}) == 2, "one stored result per task"
    assert all(r["status"] == "ok" and r["audit_hash"] for r in results)

    entries = audit_entries(network, "alpha", study.id)
    released = released_for(entries, str(task["id"]))
    assert len(released) == 1, [e["kind"] for e in entries]
    attempts = [e["payload"]["attempt"] for e in entries if e["kind"] == "task_received"]
    # The paused process never read attempt 1; the restarted one ran the task once, from attempt 2 on
    # (with a 2 s lease its first, slow cohort build may outlive the lease: the hub then counts on).
    assert len(attempts) == 1 and attempts[0] >= 2, attempts
    assert released[0]["hash"] in {r["audit_hash"] for r in results}
    assert audit_verify(network, "alpha").stdout.startswith("ok:")
    metered = metered_receipts(network, study.id, expected=2)
    assert sorted(r["hospital"] for r in metered) == ["alpha", "beta"], "each task metered once"
    receipts = [e for e in entries if e["kind"] == "usage_receipt"]
    assert len(receipts) == 1, "one receipt at the node, however often the task was delivered"


def test_a_node_killed_after_releasing_but_before_posting_posts_the_stored_result_once(
    network: LocalNetwork,
) -> None:
    with network.client() as client:
        study = client.submit(feasibility_spec(network, ["gamma", "beta"]))
        wait_until(
            lambda: (
                {h.hospital: h.state.value for h in client.study(study.id).hospitals}
                == {"gamma": "awaiting_approval", "beta": "answered"}
            ),
            "beta to answer and gamma to park the task for its steward",
        )
    task = task_of(network, study.id, "gamma")
    assert task is not None and task["state"] == "parked"

    assert network.hub is not None
    network.hub.send_signal(signal.SIGSTOP)  # the node's post will hang: the hub never gets the result
    try:
        approve(network, "gamma", study.id)
        released = wait_until(
            lambda: released_for(audit_entries_now(network, "gamma", study.id), str(task["id"])),
            "gamma to compute and release the approved task",
        )
        assert network.stop_node("gamma", signal.SIGKILL) == -signal.SIGKILL
    finally:
        network.hub.send_signal(signal.SIGCONT)
    # The killed node's request may sit complete in the paused hub's socket buffer, so the hub may or
    # may not have gamma's result now; either way the restarted node posts its stored copy again.
    log = network.log_path("node-gamma")
    restart_at = len(log.read_bytes())
    network.start_node("gamma")
    wait_until(
        lambda: f"task {task['id']}: ok posted" in log.read_bytes()[restart_at:].decode(errors="replace"),
        "the restarted node to post the stored result from its outbox",
    )

    view = _final(network, study.id)
    assert view["state"] == "completed", view
    results = results_of(network, study.id)
    assert len(results) == 2 and len({r["task_id"] for r in results}) == 2
    mine = [r for r in results if str(r["task_id"]) == str(task["id"])]
    assert [r["audit_hash"] for r in mine] == [released[0]["hash"]], "the stored release was posted"

    entries = audit_entries(network, "gamma", study.id)
    assert len(released_for(entries, str(task["id"]))) == 1, [e["kind"] for e in entries]
    assert sum(e["kind"] == "query_run" for e in entries) == 1, "computed once"
    assert audit_verify(network, "gamma").stdout.startswith("ok:")
    metered = metered_receipts(network, study.id, expected=2)
    assert sorted(r["hospital"] for r in metered) == ["beta", "gamma"], "posted twice, metered once"
    [mine] = [r for r in metered if r["hospital"] == "gamma"]
    [entry] = [e for e in entries if e["kind"] == "usage_receipt"]
    assert (mine["receipt"]["audit_seq"], mine["receipt"]["audit_hash"]) == (entry["seq"], entry["hash"])
