"""Secure aggregation over real processes: the hub sees only network sums, and survives dropouts.

Three hospital nodes and a hub run as processes. A study with ``secure_aggregation: true`` must give the
plaintext study's answer while the hub's database holds no hospital's own numbers. Then a node is
killed (SIGKILL, through the node's fault-injection point) right after it posted each stage: before
its keys, after its keys, after its shares — it is left out and named — and after its masked input —
its input is in the sum, recovered from the others' shares.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from phds.demo.network import DemoHospital, LocalNetwork
from phds.errors import SignatureInvalid
from phds.node.secure_round import FAULT_EXIT_AFTER
from phds.omop.simulator import HospitalResult

from .conftest import FAST_HUB, hospital, running_network
from .support import feasibility_spec, hub_store, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECURE_HUB = {**FAST_HUB, "PHDS_HUB_SECAGG_STAGE_SECONDS": "4", "PHDS_HUB_TASK_LEASE_SECONDS": "30"}
SITES = ["site1", "site2", "site3"]


@pytest.fixture(scope="module")
def secure_network(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    folder = shared_data / "tabular" / "datashield" / "CNSIM"
    hospitals = [DemoHospital(s, s.title(), tabular={"cnsim": folder / f"CNSIM{i}.csv"}) for i, s in
                 enumerate(SITES, start=1)]  # fmt: skip
    with running_network(tmp_path_factory.mktemp("secagg"), hospitals, hub_env=SECURE_HUB) as network:
        yield network


def _glm_spec(formula: str, *, secure: bool, title: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "title": title, "purpose": "secure aggregation test", "organisation": "acme-pharma",
        "service_type": "analytical_study", "hospitals": SITES,
        "analysis": {"name": "stats.glm", "params": {"table": {"dataset": "cnsim"}, "formula": formula,
                                                     "family": "binomial"}},
    }  # fmt: skip
    if secure:
        spec["secure_aggregation"] = True
    return spec


def _run(network: LocalNetwork, spec: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
    with network.client() as client:
        study = client.submit(spec)
        view = client.wait(study.id, timeout=timeout)
    return view.model_dump(mode="json")


def _coefficients(view: dict[str, Any]) -> dict[str, float]:
    return {c["term"]: float(c["estimate"]) for c in view["result"]["coefficients"]}


def _stored_results(network: LocalNetwork, study_id: str) -> list[dict[str, Any]]:
    with hub_store(network) as store, store.engine.connect() as con:
        rows = con.execute(
            text("SELECT payload FROM results WHERE study_id IN (:a, :b)"),
            {"a": study_id, "b": study_id.replace("-", "")},
        ).fetchall()
    out = []
    for (payload,) in rows:
        body = json.loads(payload) if isinstance(payload, str) else payload
        out.append(body or {})
    return out


FORMULA = "DIS_DIAB ~ GENDER + PM_BMI_CONTINUOUS + LAB_HDL"


def test_secure_glm_equals_the_plaintext_fit_and_the_hub_holds_no_hospital_sums(
    secure_network: LocalNetwork,
) -> None:
    plain = _run(secure_network, _glm_spec(FORMULA, secure=False, title="plain GLM"))
    secure = _run(secure_network, _glm_spec(FORMULA, secure=True, title="secure GLM"))
    assert plain["state"] == "completed" and secure["state"] == "completed", secure
    expected, got = _coefficients(plain), _coefficients(secure)
    assert expected.keys() == got.keys()
    for term, value in expected.items():
        assert abs(got[term] - value) <= 1e-6 * max(1.0, abs(value)), (term, got[term], value)
    rounds = secure["result"]["secure_aggregation"]["rounds"]
    assert rounds and all(r["contributors"] == SITES for r in rounds)
    # No IRLS release reached the hub in the clear: the plain study's are in its results table (each
    # hospital's QR factor of XᵀWX, under "main"), the secure study's are not.
    plain_rows = _stored_results(secure_network, plain["id"])
    secure_rows = _stored_results(secure_network, secure["id"])
    assert any("main" in json.dumps(r) for r in plain_rows)
    assert secure_rows and not any("main" in json.dumps(r) for r in secure_rows), secure_rows
    # The requester recomputes every secure round's sum from the signed transcript, and the result.
    with secure_network.client() as client:
        checked = client.verify(secure["id"])
    assert checked.rounds == secure["round"]


def test_a_hub_that_alters_a_secure_result_is_caught(secure_network: LocalNetwork) -> None:
    done = _run(secure_network, _glm_spec("DIS_DIAB ~ GENDER + LAB_HDL", secure=True, title="to alter"))
    assert done["state"] == "completed", done
    with hub_store(secure_network) as store, store.engine.begin() as con:
        for sid in (done["id"], done["id"].replace("-", "")):
            row = con.execute(text("SELECT result FROM studies WHERE id = :id"), {"id": sid}).fetchone()
            if row is not None:
                result = json.loads(row[0]) if isinstance(row[0], str) else dict(row[0])
                result["coefficients"][1]["estimate"] += 0.1  # a compromised hub reports another effect
                con.execute(text("UPDATE studies SET result = :r WHERE id = :id"),
                            {"r": json.dumps(result), "id": sid})  # fmt: skip
    with secure_network.client() as client, pytest.raises(SignatureInvalid, match="differs"):
        client.verify(done["id"])


@pytest.mark.fault
@pytest.mark.parametrize("stage", ["start", "keys", "shares", "masked"])
def test_a_node_killed_at_each_stage(secure_network: LocalNetwork, stage: str) -> None:
    victim = "site3"
    secure_network.stop_node(victim)
    secure_network.start_node(victim, extra_env={FAULT_EXIT_AFTER: stage})
    try:
        spec = _glm_spec(FORMULA, secure=True, title=f"node killed after {stage}")
        view = _run(secure_network, spec)
        wait_until(lambda: secure_network.nodes[victim].process.poll() is not None, "the victim to die")
        assert secure_network.nodes[victim].process.poll() == -9
        rounds = view["result"]["secure_aggregation"]["rounds"] if view.get("result") else []
        if stage == "masked":
            # Its masked input is in the first secure round's sum: the others' shares removed its mask.
            assert rounds[0]["contributors"] == SITES and victim in rounds[0]["dropped_after_input"]
        else:
            assert view["state"] == "partially_completed", view
            assert victim not in rounds[0]["contributors"]
            assert victim in rounds[0]["dropped_before_input"]
            states = {h["hospital"]: h["state"] for h in view["hospitals"]}
            assert states[victim] == "failed" and states["site1"] == "answered"
    finally:
        if secure_network.nodes[victim].process.poll() is None:
            secure_network.stop_node(victim)
        secure_network.start_node(victim)


@pytest.fixture(scope="module")
def secure_omop(
    tmp_path_factory: pytest.TempPathFactory, synthetic_hospitals: list[HospitalResult]
) -> Iterator[LocalNetwork]:
    hospitals = [hospital(data, name) for data, name in zip(synthetic_hospitals, OMOP_SITES, strict=True)]
    with running_network(tmp_path_factory.mktemp("secagg-omop"), hospitals, hub_env=SECURE_HUB) as network:
        yield network


OMOP_SITES = ["alpha", "beta", "gamma"]


def test_secure_feasibility_releases_only_the_network_total(secure_omop: LocalNetwork) -> None:
    plain = _run(secure_omop, feasibility_spec(secure_omop, OMOP_SITES, title="plain count"))
    secure = _run(secure_omop, feasibility_spec(secure_omop, OMOP_SITES, title="secure count",
                                                secure_aggregation=True))  # fmt: skip
    assert plain["state"] == "completed" and secure["state"] == "completed", secure
    assert secure["result"]["total"]["lower"] == plain["result"]["total"]["lower"]
    assert secure["result"]["total"]["upper"] == plain["result"]["total"]["upper"]
    for cell, total in plain["result"]["breakdowns"]["sex"].items():
        assert secure["result"]["breakdowns"]["sex"][cell]["lower"] == total["lower"], cell
    # No hospital's own count is in the secure result, nor in the hub's results table.
    assert not any("persons" in (entry or {}) for entry in secure["result"]["hospitals"].values())
    assert not any("persons" in json.dumps(r) for r in _stored_results(secure_omop, secure["id"]))
    assert any("persons" in json.dumps(r) for r in _stored_results(secure_omop, plain["id"]))


@pytest.fixture(scope="module")
def survival_network(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    folder = shared_data / "tabular" / "datashield" / "SURVIVAL" / "COLLAPSE_NO_MISSING"
    hospitals = [DemoHospital(s, s.title(), tabular={"s": folder / f"collapse_no_missing_study{i}.csv"})
                 for i, s in enumerate(SITES, start=1)]  # fmt: skip
    with running_network(tmp_path_factory.mktemp("secagg-cox"), hospitals, hub_env=SECURE_HUB) as network:
        yield network


def test_secure_stratified_cox_equals_the_plaintext_fit(survival_network: LocalNetwork) -> None:
    """The stratified Cox model's gradients and Hessians reach the hub only as network sums."""
    params = {"table": {"dataset": "s"}, "duration": "SURVTIME", "event": "CENS",
              "covariates": ["age.60", "female", "pm10.16"], "stratified_by_hospital": True}  # fmt: skip
    spec = {"title": "Cox", "purpose": "secure aggregation test", "organisation": "acme-pharma",
            "service_type": "analytical_study", "hospitals": SITES,
            "analysis": {"name": "survival.cox", "params": params}}  # fmt: skip
    plain = _run(survival_network, spec)
    secure = _run(survival_network, {**spec, "title": "secure Cox", "secure_aggregation": True})
    assert plain["state"] == "completed" and secure["state"] == "completed", secure
    for a, b in zip(plain["result"]["coefficients"], secure["result"]["coefficients"], strict=True):
        assert abs(a["coef"] - b["coef"]) < 1e-6 and abs(a["se"] / b["se"] - 1) < 1e-6, (a, b)
    assert secure["result"]["secure_aggregation"]["rounds"]
    with survival_network.client() as client:
        assert client.verify(secure["id"]).secure_rounds >= 1


def test_secure_feasibility_with_distributed_dp(secure_omop: LocalNetwork) -> None:
    """DP and secure aggregation together: each node adds its share of the noise, the hub sees the noisy
    sum only, and the requester verifies it from the transcript."""
    spec = feasibility_spec(secure_omop, OMOP_SITES, title="secure noisy count", secure_aggregation=True,
                            dp={"epsilon": 1.0})  # fmt: skip
    done = _run(secure_omop, spec)
    assert done["state"] == "completed", done
    total = done["result"]["total"]
    assert total["estimate"] is not None and total["ci95"] > 0 and not total["exact"]
    with secure_omop.client() as client:
        assert client.verify(done["id"]).secure_rounds == 1
