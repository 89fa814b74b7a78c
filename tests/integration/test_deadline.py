"""A node offline past the study's deadline: the study ends partially completed with the others' counts.

First both auto-approving hospitals answer a study (the reference); then beta's node is stopped and the
same study is submitted with a 3-second deadline. The hub's sweep marks beta ``timed_out``, combines
alpha's answer alone and ends the study ``partially_completed``; when beta comes back, its cancelled
task is not delivered and the finished study does not change.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest

from phds.demo.network import LocalNetwork
from phds.sdk import FeasibilityResult

from .support import audit_entries, feasibility_spec, results_of, task_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # waits out a deadline: ~16 s


def _result(network: LocalNetwork, spec: dict[str, object]) -> FeasibilityResult:
    with network.client() as client:
        study = client.submit(spec)
        view = client.wait(study.id, timeout=120)
        assert view.state.is_final, f"study still {view.state.value} after 120 s"
        result = client.results(study.id)
    assert isinstance(result, FeasibilityResult)
    return result


def test_a_node_offline_past_the_deadline_gives_a_partial_result(network: LocalNetwork) -> None:
    full = _result(network, feasibility_spec(network, ["alpha", "beta"]))
    assert full.study.state.value == "completed"
    alpha_persons = full.hospitals["alpha"]["persons"]
    beta_persons = full.hospitals["beta"]["persons"]
    assert alpha_persons["value"] > 0 and beta_persons["value"] > 0, "choose hospitals with cases"

    assert network.stop_node("beta", signal.SIGTERM) == 0, "SIGTERM stops a node cleanly"
    partial = _result(network, feasibility_spec(network, ["alpha", "beta"], deadline_seconds=3))
    study = partial.study
    assert study.state.value == "partially_completed"
    assert {h.hospital: h.state.value for h in study.hospitals} == {"alpha": "answered", "beta": "timed_out"}
    raw = partial.raw
    assert raw["attribution"]["answered"] == ["alpha"] and raw["attribution"]["timed_out"] == ["beta"]
    assert set(partial.hospitals) == {"alpha"}, "only the answered hospital's counts"
    assert partial.hospitals["alpha"]["persons"] == alpha_persons
    assert (partial.total.lower, partial.total.upper) == (alpha_persons["value"], alpha_persons["value"])
    both = alpha_persons["value"] + beta_persons["value"]
    assert (full.total.lower, full.total.upper) == (both, both)
    assert [r["status"] for r in results_of(network, study.id)] == ["ok"]
    beta_task = task_of(network, study.id, "beta")
    assert beta_task is not None and beta_task["state"] == "cancelled"

    back = datetime.now(UTC)
    network.start_node("beta")
    network.wait_for_node("beta", since=back)
    with network.client() as client:
        again = client.study(study.id)
    assert again.version == study.version and again.state.value == "partially_completed"
    beta_task = task_of(network, study.id, "beta")
    assert beta_task is not None and beta_task["state"] == "cancelled", "a cancelled task is never delivered"
    assert audit_entries(network, "beta", study.id) == [], "beta never saw the study"
