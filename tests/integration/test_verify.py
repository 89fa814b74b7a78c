"""``phds study verify`` over real processes: signed releases recompute the result; a hub that alters a
result or a relayed payload is caught, and nodes decline what the requester did not sign."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from phds.demo.network import DemoHospital, LocalNetwork
from phds.errors import SignatureInvalid

from .conftest import running_network
from .support import hub_store, phds

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~18 s


@pytest.fixture(scope="module")
def cnsim_network(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    folder = shared_data / "tabular" / "datashield" / "CNSIM"
    hospitals = [
        DemoHospital(f"site{i}", f"Site {i}", tabular={"cnsim": folder / f"CNSIM{i}.csv"}) for i in (1, 2)
    ]
    with running_network(tmp_path_factory.mktemp("verify"), hospitals) as network:
        yield network


# Each test summarises another variable: their missingness differs by hundreds of rows, so the nodes'
# overlap guard has no reason to refuse the second (LAB_HDL and LAB_TSC differ by 4-6 rows: it would).


def _mean_study(network: LocalNetwork, variable: str) -> dict[str, Any]:
    return {
        "title": f"Mean of {variable}",
        "purpose": "verification",
        "organisation": "acme-pharma",
        "service_type": "analytical_study",
        "hospitals": ["site1", "site2"],
        "analysis": {"name": "stats.mean_variance", "params": {"dataset": "cnsim", "variable": variable}},
    }


def _finished(network: LocalNetwork, variable: str) -> str:
    with network.client() as client:
        study = client.submit(_mean_study(network, variable))
        view = client.wait(study.id, timeout=120)
    assert view.state.value == "completed", (view.state, [h.reason for h in view.hospitals])
    return study.id


def test_a_signed_study_verifies_from_its_releases(cnsim_network: LocalNetwork) -> None:
    study_id = _finished(cnsim_network, "LAB_HDL")
    done = phds(cnsim_network, "study", "verify", study_id, "--hub", cnsim_network.hub_url,
                "--token", cnsim_network.requester_token)  # fmt: skip
    assert "verified" in done.stdout
    with cnsim_network.client() as client:
        releases = client.releases(study_id)
        assert {e.hospital for e in releases} == {"site1", "site2"} and {e.round for e in releases} == {1, 2}
        assert client.verify(study_id).rounds == 2


def test_a_hub_that_alters_the_result_is_caught(cnsim_network: LocalNetwork) -> None:
    study_id = _finished(cnsim_network, "PM_BMI_CONTINUOUS")
    with hub_store(cnsim_network) as store, store.engine.begin() as con:
        raw = con.execute(
            text("SELECT result FROM studies WHERE id = :id"), {"id": study_id.replace("-", "")}
        )
        row = (
            raw.fetchone()
            or con.execute(text("SELECT result FROM studies WHERE id = :id"), {"id": study_id}).fetchone()
        )
        assert row is not None
        result = json.loads(row[0]) if isinstance(row[0], str) else dict(row[0])
        result["mean"] += 0.5  # a compromised hub reports another mean
        for key in (study_id, study_id.replace("-", "")):
            con.execute(
                text("UPDATE studies SET result = :r WHERE id = :id"), {"r": json.dumps(result), "id": key}
            )
    done = phds(cnsim_network, "study", "verify", study_id, "--hub", cnsim_network.hub_url,
                "--token", cnsim_network.requester_token, check=False)  # fmt: skip
    assert done.returncode == SignatureInvalid.exit_code, done.stdout + done.stderr
    assert "differs from the one recomputed" in done.stderr


def test_a_hub_that_alters_a_relayed_payload_is_caught(cnsim_network: LocalNetwork) -> None:
    study_id = _finished(cnsim_network, "LAB_GLUC_ADJUSTED")
    with hub_store(cnsim_network) as store, store.engine.begin() as con:
        rows = con.execute(text("SELECT id, envelope FROM results WHERE envelope IS NOT NULL")).fetchall()
        changed = 0
        for rid, envelope in rows:
            env = json.loads(envelope) if isinstance(envelope, str) else dict(envelope)
            if env["study_id"] != study_id or env["round"] != 1 or env["hospital"] != "site1":
                continue
            env["payload"]["values"]["moments"]["values"]["sum"] *= 1.01
            con.execute(
                text("UPDATE results SET envelope = :e WHERE id = :id"), {"e": json.dumps(env), "id": rid}
            )
            changed += 1
    assert changed == 1
    with cnsim_network.client() as client:
        with pytest.raises(SignatureInvalid, match="altered"):
            client.verify(study_id)
        with pytest.raises(SignatureInvalid, match="altered"):
            client.results(study_id)  # the SDK checks every release's signature when it reads a result


def test_nodes_decline_an_unsigned_study(cnsim_network: LocalNetwork) -> None:
    """The hub accepts an unsigned study, but nodes that pin the network's keys decline to run it."""
    bearer = {"Authorization": f"Bearer {cnsim_network.requester_token}"}
    with httpx.Client(base_url=f"{cnsim_network.hub_url}/api/v1", headers=bearer) as http:
        view = http.post("/studies", json=_mean_study(cnsim_network, "LAB_TRIG")).json()
    with cnsim_network.client() as client:
        final = client.wait(view["id"], timeout=120)
    assert final.state.value == "rejected"
    assert all("unsigned" in (h.reason or "") for h in final.hospitals)


def test_a_multi_round_glm_verifies_bit_for_bit(cnsim_network: LocalNetwork) -> None:
    """Every IRLS round's state is recomputed from the signed releases: the hub combines hospitals in a
    fixed order, so floating-point sums agree to the last bit with the requester's recomputation."""
    spec = _mean_study(cnsim_network, "LAB_HDL")
    spec["title"] = "GLM"
    spec["analysis"] = {"name": "stats.glm", "params": {"table": {"dataset": "cnsim"},
                        "formula": "DIS_DIAB ~ GENDER + LAB_HDL", "family": "binomial"}}  # fmt: skip
    with cnsim_network.client() as client:
        study = client.submit(spec)
        view = client.wait(study.id, timeout=120)
        assert view.state.value == "completed", [h.reason for h in view.hospitals]
        outcome = client.verify(study.id)
    assert outcome.rounds >= 4 and outcome.hospitals == ("site1", "site2")
