"""A requester cancels a study while one hospital's steward has not decided yet (real hub and nodes).

Attacks and mistakes stopped: a cancelled study's parked task is never run later (so no value is
released, no budget spent, nothing billed for it); a steward approving it afterwards finds nothing to
approve; a hospital's steward cannot cancel a requester's study; a finished study cannot be turned into
a cancelled one (its result and invoice lines stay as they were).
"""

from __future__ import annotations

import httpx
import pytest

from phds.demo.network import LocalNetwork
from phds.errors import Conflict
from phds.protocol.studies import StudyState

from .support import audit_entries_now, feasibility_spec, phds, wait_until

pytestmark = pytest.mark.slow  # real hub and node processes, a parked task and its withdrawal: ~40 s


def test_cancelling_withdraws_a_parked_task_at_the_node_and_audits_it(network: LocalNetwork) -> None:
    with network.client() as client:
        study = client.submit(feasibility_spec(network, ["gamma", "beta"]))
        wait_until(
            lambda: (
                {h.hospital: h.state.value for h in client.study(study.id).hospitals}
                == {"gamma": "awaiting_approval", "beta": "answered"}
            ),
            "beta to answer and gamma to park the task for its steward",
        )
        steward = network.nodes["gamma"].steward_token
        refused = httpx.post(
            f"{network.hub_url}/api/v1/studies/{study.id}/cancel",
            headers={"Authorization": f"Bearer {steward}"},
            json={},
        )
        assert refused.status_code == 403, refused.text

        done = phds(network, "study", "cancel", study.id, "--reason", "protocol amended", "--token",
                    network.requester_token, "--hub", network.hub_url)  # fmt: skip
        assert "cancelled" in done.stdout, done.stdout
        view = client.study(study.id)
        assert view.state is StudyState.CANCELLED
        states = {h.hospital: (h.state.value, h.reason) for h in view.hospitals}
        assert states == {
            "gamma": ("cancelled", "cancelled by the requester: protocol amended"),
            "beta": ("answered", None),
        }
        assert client.cancel(study.id).version == view.version, "cancelling again changes nothing"

        entries = wait_until(
            lambda: [
                e for e in audit_entries_now(network, "gamma", study.id) if e["kind"] == "study_cancelled"
            ],
            "gamma to learn of the cancellation and audit it",
        )
        assert "withdrawn" in entries[0]["payload"]["action"]
        late = phds(network, "node", "approve", study.id, "--config", str(network.nodes["gamma"].config),
                    "--as", "steward@gamma", check=False)  # fmt: skip
        assert late.returncode != 0 and "no study" in (late.stderr + late.stdout)
        kinds = [e["kind"] for e in audit_entries_now(network, "gamma", study.id)]
        assert "query_run" not in kinds and "value_released" not in kinds, kinds


def test_a_finished_study_cannot_be_cancelled(network: LocalNetwork) -> None:
    with network.client() as client:
        study = client.submit(feasibility_spec(network, ["alpha", "beta"]))
        view = client.wait(study.id, timeout=120)
        assert view.state is StudyState.COMPLETED
        with pytest.raises(Conflict, match="already ended"):
            client.cancel(study.id)
        assert client.study(study.id).state is StudyState.COMPLETED


def test_approving_after_the_cancellation_reached_the_node_runs_nothing(network: LocalNetwork) -> None:
    """The node checks with the hub before it runs a decided parked task, whatever the check interval."""
    with network.client() as client:
        study = client.submit(feasibility_spec(network, ["gamma"]))
        wait_until(
            lambda: client.study(study.id).state is StudyState.AWAITING_APPROVAL, "gamma to park the task"
        )
        client.cancel(study.id)
    config = str(network.nodes["gamma"].config)
    approved = phds(network, "node", "approve", study.id, "--config", config, "--as", "steward@gamma",
                    check=False)  # fmt: skip
    wait_until(
        lambda: any(e["kind"] == "study_cancelled" for e in audit_entries_now(network, "gamma", study.id)),
        "gamma to withdraw the task",
    )
    kinds = [e["kind"] for e in audit_entries_now(network, "gamma", study.id)]
    assert "value_released" not in kinds, (approved.returncode, kinds)
