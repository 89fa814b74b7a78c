"""The runner alive: long polls woken by events, and a hub restarted mid-study carrying on.

Ordering, not elapsed time, is asserted: a long poll is started, seen waiting, and must then return
with the work that the next event created (its timeout is far longer than any test needs).
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread

from phds.hub.app import create_app
from phds.hub.notify import Notifier
from phds.hub.store import HubStore
from phds.hub.testing import HubClient, gate_payload, hub_settings, mean_variance_payload, study_spec

NOOP = gate_payload("system.noop", {})


def until(portal: anyio.from_thread.BlockingPortal, condition: Callable[[], bool]) -> None:
    """Yield to the event loop until *condition* holds (bounded, so a broken hub fails the test)."""
    for _ in range(2000):
        if condition():
            return
        portal.call(anyio.sleep, 0.005)
    raise AssertionError("condition never became true")


def test_a_waiting_node_is_woken_by_a_new_task(
    network: Any, portal: anyio.from_thread.BlockingPortal
) -> None:
    notifier: Notifier = network.client.app.state.notifier
    node_id = network.node_ids["h1"]
    pending = network.client.start(
        "GET", "/api/v1/nodes/me/tasks", token=network.tokens["h1"], params={"wait": 60}
    )
    until(portal, lambda: notifier.waiting(node_id) == 1)
    assert not pending.done(), "no task yet, so the poll waits"
    admin = network.tokens["admin"]
    assert network.client.get("/api/v1/nodes/h1", token=admin).json()["polling_since"] is not None
    assert network.client.get("/api/v1/nodes/h2", token=admin).json()["polling_since"] is None
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    [task] = pending.result(timeout=60).json()
    assert task["study_id"] == study["id"] and task["hospital"] == "h1"
    assert notifier.waiting(node_id) == 0
    assert network.client.get("/api/v1/nodes/h1", token=admin).json()["polling_since"] is None


def test_a_waiting_requester_is_woken_when_the_study_changes(
    network: Any, portal: anyio.from_thread.BlockingPortal
) -> None:
    notifier: Notifier = network.client.app.state.notifier
    study = network.submit(study_spec("uni-a", ["h1"]))
    url = f"/api/v1/studies/{study['id']}/wait"
    token = network.tokens["requester"]
    at_once = network.client.get(url, token=token, params={"after_version": 0, "timeout": 60})
    assert at_once.json()["version"] == study["version"], "an older version returns at once"
    unchanged = network.client.get(url, token=token, params={"after_version": study["version"], "timeout": 0})
    assert unchanged.json()["version"] == study["version"]

    pending = network.client.start(
        "GET", url, token=token, params={"after_version": study["version"], "timeout": 60}
    )
    until(portal, lambda: notifier.waiting(uuid.UUID(study["id"])) == 1)
    assert not pending.done()
    network.answer("h1", network.poll("h1")[0], payload=NOOP)
    view = pending.result(timeout=60).json()
    assert view["version"] > study["version"] and view["state"] == "completed"
    other = network.client.get(url, token=network.tokens["requester_other"], params={"timeout": 0})
    assert other.status_code == 404


def test_a_restarted_hub_carries_on_mid_study(
    hub_url: str, portal: anyio.from_thread.BlockingPortal, network_class: Any
) -> None:
    """The first app is shut down while h1 holds a round-2 lease; a new app on the same database re-queues
    it when the lease expires (its background sweep), and the study completes."""
    settings = hub_settings(hub_url, task_lease_seconds=0.5, runner_tick_seconds=0.05)
    setup_store = HubStore.open(hub_url)
    first = HubClient(create_app(settings), portal, lifespan=True)
    network = network_class(setup_store, hub_url, first)
    data = {"h1": [1.0, 2.0, 3.0, 4.0, 5.0], "h2": [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]}
    spec = study_spec("uni-a", ["h1", "h2"], "stats.mean_variance", {"dataset": "d", "variable": "x"})
    study = network.submit(spec)
    for hospital, xs in data.items():
        network.answer(hospital, network.poll(hospital)[0], payload=mean_variance_payload(1, xs))
    [held] = network.poll("h1")
    [task] = network.poll("h2")
    network.answer("h2", task, payload=mean_variance_payload(2, data["h2"], task["state"]["mean"]))
    first.close()

    second = HubClient(create_app(settings), portal, lifespan=True)
    try:
        network.use(second)
        assert network.study(study["id"])["state"] == "running"
        [again] = network.poll("h1", wait=60)
        assert (again["id"], again["round"], again["attempt"]) == (held["id"], 2, 2)
        network.answer("h1", again, payload=mean_variance_payload(2, data["h1"], again["state"]["mean"]))
        final = network.study(study["id"])
        pooled = data["h1"] + data["h2"]
        assert final["state"] == "completed"
        assert math.isclose(final["result"]["variance"], statistics.variance(pooled))
    finally:
        second.close()
        setup_store.close()


def test_an_idle_long_poll_rechecks_and_returns_empty(
    store: HubStore, hub_url: str, make_client: Any, network_class: Any
) -> None:
    """With nothing queued the poll re-reads the database (safety net) and ends empty at its timeout."""
    network = network_class(store, hub_url, make_client(store, hub_url, poll_recheck_seconds=0.01))
    assert network.poll("h1", wait=0.05) == []
    notifier: Notifier = network.client.app.state.notifier
    assert notifier.waiting(network.node_ids["h1"]) == 0, "the subscription ends with the poll"


def test_a_final_wait_skips_intermediate_changes(
    network: Any, portal: anyio.from_thread.BlockingPortal
) -> None:
    """With ``final``, the long poll does not answer when one of two hospitals answers, only at the end."""
    notifier: Notifier = network.client.app.state.notifier
    study = network.submit(study_spec("uni-a", ["h1", "h2"]))
    url = f"/api/v1/studies/{study['id']}/wait"
    params = {"after_version": study["version"], "timeout": 60, "final": True}
    pending = network.client.start("GET", url, token=network.tokens["requester"], params=params)
    until(portal, lambda: notifier.waiting(uuid.UUID(study["id"])) == 1)
    network.answer("h1", network.poll("h1")[0], payload=NOOP)
    until(
        portal,
        lambda: (
            network.client.get(f"/api/v1/studies/{study['id']}", token=network.tokens["requester"]).json()[
                "version"
            ]
            > study["version"]
        ),
    )
    portal.call(anyio.sleep, 0.2)  # give a wrongly woken poll the chance to answer
    assert not pending.done(), "h2 has not answered: the study is not final"
    network.answer("h2", network.poll("h2")[0], payload=NOOP)
    assert pending.result(timeout=60).json()["state"] == "completed"
