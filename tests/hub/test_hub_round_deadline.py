"""Per-round deadlines (``round_deadline_seconds`` of ``learning.fedavg``): a straggler is skipped, named.

The hub's sweep is driven by hand (``runner.sweep(now=…)``); the nodes are the in-process hub's test
nodes answering with payloads shaped as their gates release them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from phds.analyses.learning_eval import bin_levels
from phds.hub.store.models import utcnow
from phds.hub.testing import gate_payload, released_count, study_spec
from phds.protocol.canonical import canonical_hash

from .test_hub_runner import runner_of

PARAMS: dict[str, Any] = {
    "table": {"dataset": "t"},
    "outcome": "y",
    "features": {"numeric": ["x"]},
    "preprocessing": {"standardise": "none"},
    "rounds": 2,
    "round_deadline_seconds": 30,
    "eval_bins": [0.5],
}


def _update(n: int, update: list[float]) -> dict[str, Any]:
    values = {"update": update, "clip_norm": 10.0, "loss": 0.69}
    model = {"type": "model", "n_obs": released_count(n), "n_params": 2, "values": values}
    return gate_payload("learning.fedavg", {"update": model})


def _evaluation(weights: list[float]) -> dict[str, Any]:
    cells = dict.fromkeys(bin_levels([0.5]), 10)
    breakdown = {
        "type": "breakdown",
        "total": released_count(40),
        "cells": {k: released_count(v) for k, v in cells.items()},
    }
    accept = {
        "type": "model",
        "n_obs": released_count(100),
        "n_params": 2,
        "values": {"model_sha256": canonical_hash({"weights": weights})},
    }
    return gate_payload("learning.fedavg", {"calibration": breakdown, "accept": accept})


def _round_state(network: Any, study_id: str) -> dict[str, Any]:
    with network.store.unit() as uow:
        row = uow.studies.get(uuid.UUID(study_id))
        assert row is not None
        return uow.studies.round_state(row)


def test_a_hospital_past_the_round_deadline_is_skipped_and_named(network: Any) -> None:
    runner = runner_of(network)
    spec = study_spec("uni-a", ["h1", "h2", "h3"], "learning.fedavg", PARAMS, service_type="research")
    study = network.submit(spec)
    for hospital in ("h1", "h2", "h3"):  # round 1: everyone trains
        network.answer(hospital, network.poll(hospital)[0], payload=_update(100, [0.1, 0.1]))
    for hospital, n in (("h1", 100), ("h2", 300)):  # round 2: h3 leases its task and never answers
        network.answer(hospital, network.poll(hospital)[0], payload=_update(n, [0.4, -0.4]))
    [late] = network.poll("h3")
    runner.sweep(now=utcnow() + timedelta(seconds=20))
    assert network.study(study["id"])["round"] == 2, "inside the round deadline the round waits"
    runner.sweep(now=utcnow() + timedelta(seconds=31))
    view = network.study(study["id"])
    states = {h["hospital"]: (h["state"], h["reason"]) for h in view["hospitals"]}
    assert states["h3"][0] == "timed_out" and "straggler" in states["h3"][1]
    assert view["round"] == 3 and network.poll("h3") == [], "the straggler gets no further round"
    state = _round_state(network, study["id"])
    assert state["phase"] == "evaluate" and state["skipped"] == {"h3": 2}
    # 0.1 + 0.4 and 0.1 − 0.4: the weighted mean of the two updates that came in time
    assert state["weights"] == pytest.approx([0.5, -0.3], abs=1e-12)
    with network.store.unit() as uow:
        task = uow.tasks.get(uuid.UUID(late["id"]))
        assert task is not None and task.state == "cancelled"
    for hospital in ("h1", "h2"):
        network.answer(hospital, network.poll(hospital)[0], payload=_evaluation(state["weights"]))
    final = network.study(study["id"])
    assert final["state"] == "partially_completed"
    result = final["result"]
    assert result["model"]["weights"] == state["weights"], "accepted by both evaluating hospitals (2 of 3)"
    assert any("h3 did not answer round 2" in n for n in result["notes"])
    assert any(n.startswith("h3: straggler") for n in result["notes"])
    assert result["attribution"]["timed_out"] == ["h3"]
