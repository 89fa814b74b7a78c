"""The hub restarted mid-study loses nothing.

A study waits for gamma's steward while alpha (or beta) has answered. The hub is stopped, with SIGTERM
(graceful) and with SIGKILL (a crash), and started again on the same database and port. The node
processes keep running throughout and reconnect on their own (backoff); the steward's approval, given
while the hub is down or after it is back, reaches the hub; the study completes with every result.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from phds.demo.network import LocalNetwork
from phds.hub import services
from phds.hub.store.models import utcnow

from .support import (
    api,
    approve,
    audit_entries,
    audit_entries_now,
    audit_verify,
    feasibility_spec,
    hub_store,
    metered_receipts,
    released_for,
    results_of,
    task_of,
    tracebacks,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def _submit_and_park(network: LocalNetwork, auto: str) -> tuple[str, int]:
    """Submit to *auto* and gamma; wait until *auto* answered and gamma awaits its steward."""
    with network.client() as client:
        study = client.submit(feasibility_spec(network, [auto, "gamma"]))
        view = wait_until(
            lambda: (
                (v := client.study(study.id))
                and {h.hospital: h.state.value for h in v.hospitals}
                == {auto: "answered", "gamma": "awaiting_approval"}
                and v
            ),
            f"{auto} to answer and gamma to wait for its steward",
        )
    assert view.state.value == "awaiting_approval"
    return study.id, view.version


def _completed(network: LocalNetwork, study_id: str, auto: str, version_before: int) -> None:
    with network.client() as client:
        view = client.wait(study_id, timeout=120)
    assert view.state.value == "completed", view
    assert view.version > version_before, "the study's history continued from where it stopped"
    assert {h.hospital: h.state.value for h in view.hospitals} == {auto: "answered", "gamma": "answered"}
    assert view.result is not None and view.result["attribution"]["answered"] == sorted([auto, "gamma"])
    results = results_of(network, study_id)
    assert len(results) == 2 and {r["status"] for r in results} == {"ok"}
    task = task_of(network, study_id, "gamma")
    assert task is not None
    assert len(released_for(audit_entries(network, "gamma", study_id), str(task["id"]))) == 1
    assert audit_verify(network, "gamma").stdout.startswith("ok:")


def _nodes_alive(network: LocalNetwork) -> None:
    for name, node in network.nodes.items():
        assert node.process is not None and node.process.poll() is None, f"the node of {name} exited"


def test_hub_stopped_with_sigterm_while_the_steward_approves_then_restarted(network: LocalNetwork) -> None:
    study_id, version = _submit_and_park(network, "alpha")
    task = task_of(network, study_id, "gamma")
    assert task is not None

    hub_log = network.log_path("hub")
    shutdowns = hub_log.read_text(encoding="utf-8").count("Application shutdown complete")
    # uvicorn shuts down gracefully, then re-raises the signal, so the exit status is -SIGTERM
    assert network.stop_hub(signal.SIGTERM) in {0, -signal.SIGTERM}
    text = hub_log.read_text(encoding="utf-8")
    assert text.count("Application shutdown complete") == shutdowns + 1 and "study runner stopped" in text
    approve(network, "gamma", study_id)  # at the node, with the hub down
    wait_until(
        lambda: released_for(audit_entries_now(network, "gamma", study_id), str(task["id"])),
        "gamma to run the approved task while the hub is down",
    )
    _nodes_alive(network)

    restarted = datetime.now(UTC)
    network.start_hub()
    for name in network.nodes:
        network.wait_for_node(name, since=restarted)  # each node reconnected by itself
    _completed(network, study_id, "alpha", version)
    _nodes_alive(network)
    log = network.log_path("node-gamma").read_text(encoding="utf-8")
    assert "hub unreachable" in log and "hub reachable again" in log


def test_hub_killed_with_sigkill_mid_study_then_restarted(network: LocalNetwork) -> None:
    study_id, version = _submit_and_park(network, "beta")

    assert network.stop_hub(signal.SIGKILL) == -signal.SIGKILL
    restarted = datetime.now(UTC)
    network.start_hub()
    for name in network.nodes:
        network.wait_for_node(name, since=restarted)
    with network.client() as client:
        view = client.study(study_id)
    assert view.version == version and view.state.value == "awaiting_approval", "nothing lost, nothing new"

    approve(network, "gamma", study_id)
    _completed(network, study_id, "beta", version)
    _nodes_alive(network)
    metered = metered_receipts(network, study_id, expected=2)
    assert sorted(r["hospital"] for r in metered) == ["beta", "gamma"], "a hub killed mid-study meters once"


def test_a_stopping_hub_answers_open_long_polls_instead_of_waiting_for_them(network: LocalNetwork) -> None:
    """SIGTERM must not be held up by a requester's 60 s /wait (nor by nodes' task polls): the poll is
    answered with the current view and the hub exits by itself, long before the 45 s after which
    ``stop_hub`` would have to SIGKILL it."""
    spec = feasibility_spec(network, ["alpha"])
    spec["analysis"] = {"name": "system.noop"}
    with network.client() as client:
        view = client.wait(client.submit(spec).id, timeout=120)
    assert view.state.value == "completed"
    token, token_id = _fresh_token(network)  # its first use shows the long poll being served
    answers: list[httpx.Response | BaseException] = []

    def long_poll() -> None:
        try:
            with api(network, token) as http:
                params = {"after_version": view.version, "timeout": 60}
                answers.append(http.get(f"/studies/{view.id}/wait", params=params, timeout=120))
        except httpx.HTTPError as exc:
            answers.append(exc)

    poller = threading.Thread(target=long_poll)
    poller.start()
    try:
        wait_until(lambda: _used(network, token_id), "the hub to authenticate the long poll")
        assert network.stop_hub(signal.SIGTERM, timeout=45) == -signal.SIGTERM, "exited by itself"
    finally:
        poller.join(timeout=120)
    [answer] = answers
    assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
    assert answer.json()["version"] == view.version, "the unchanged view, answered early"
    assert tracebacks(network.log_path("hub")) == []
    restarted = datetime.now(UTC)
    network.start_hub()
    for name in network.nodes:
        network.wait_for_node(name, since=restarted)


def _fresh_token(network: LocalNetwork) -> tuple[str, str]:
    """A new token of acme-pharma's researcher: ``(token, token id)``."""
    with hub_store(network) as store, store.unit() as uow:
        user = uow.users.by_email("researcher@acme.example")
        assert user is not None
        token, row = services.issue_token(uow, user_id=user.id, expires_at=utcnow() + timedelta(hours=1))
        return token, row.id


def _used(network: LocalNetwork, token_id: str) -> bool:
    """Whether the hub has authenticated a request with the token (PHDS_HUB_TOKEN_TOUCH_SECONDS is 0)."""
    with hub_store(network) as store, store.unit() as uow:
        row = uow.tokens.get(token_id)
        return row is not None and row.last_used_at is not None
