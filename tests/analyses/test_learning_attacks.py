"""The attacks each control of federated learning stops (``learning.fedavg``, the update gate rule).

* a hub that sends a crafted global model so that one node's update is carried by a single row;
* a hub that starts training from a model of its choosing, or (under secure aggregation) sends a model
  that does not follow from the last network sum, for training or for evaluation;
* a requester asking a node with too few rows (a node's update of one row is that row's gradient);
* an update longer than its clip, or not finite (a modified analysis);
* a requester running DP-FedAvg past the node's budget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses.learning_frame import held_out_mask
from phds.analyses.testing import Federation, everything_auto, run_federation
from phds.errors import DisclosureRefused
from phds.node.gate import GateContext
from phds.privacy.aggregates import DesignEvidence, Persons, PointEvidence, UpdateAggregate
from phds.protocol.tasks import Task

from .test_learning import PARAMS, _tables

SMALL: dict[str, Any] = {
    "table": {"dataset": "t"},
    "outcome": "y",
    "features": {"numeric": ["x"]},
    "preprocessing": {"standardise": "none"},
    "rounds": 3,
    "batch_size": 0,
    "held_out_fraction": 0.05,
    "min_rows": 5,
}


def _one_row_target(tmp_path: Path, rows: int = 80) -> Path:
    """Rows at x = ±(1..1.03) whose outcome is the sign of x, and one target row at x = 0 with y = 1:
    at w = (0, 29) every row but the target is saturated (|η| ≥ 29, inside R's clamp of 30)."""
    rng = np.random.default_rng(0)
    sign = np.where(np.arange(rows) % 2 == 0, 1.0, -1.0)
    x = sign * (1 + 0.03 * rng.random(rows))
    y = (x > 0).astype(int)
    kept = np.flatnonzero(~held_out_mask(np.arange(rows), 0, 0.05))
    x[kept[0]], y[kept[0]] = 0.0, 1  # the target is a training row
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": x, "y": y}).to_csv(path, index=False)
    return path


def _at_round(round_no: int, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Task], Task]:
    def tamper(task: Task) -> Task:
        if task.round != round_no:
            return task
        return task.model_copy(update={"state": change(dict(task.state))})

    return tamper


def test_a_crafted_global_model_that_isolates_one_row_is_refused(tmp_path: Path) -> None:
    path = _one_row_target(tmp_path)
    with Federation({"h": {"t": path}}) as honest:
        assert honest.run("learning.fedavg", SMALL).result is not None, "the honest study runs"
    crafted = _at_round(2, lambda s: {**s, "weights": [0.0, 29.0]})
    with Federation({"h": {"t": path}}) as network:
        run = network.run("learning.fedavg", SMALL, tamper=crafted)
    assert run.result is None and len(run.releases["h"]) == 1, "round 1 released, round 2 refused"
    assert "carried by fewer than 5 rows" in run.refused["h"]


def test_a_global_model_beyond_the_logit_clamp_is_refused(shared_data: Path) -> None:
    params = {**PARAMS, "rounds": 3, "local_epochs": 1}
    crafted = _at_round(3, lambda s: {**s, "weights": [0.0, 40.0, *s["weights"][2:]]})
    run = run_federation("learning.fedavg", params, _tables(shared_data), tamper=crafted)
    assert run.result is None
    assert all("logit clamp" in why for why in run.refused.values()) and len(run.refused) == 3


def test_training_starts_only_from_the_declared_initial_model(tmp_path: Path) -> None:
    path = _one_row_target(tmp_path)
    start = _at_round(1, lambda s: {"phase": "train", "round": 1, "weights": [0.0, 29.0]})
    run = run_federation("learning.fedavg", SMALL, {"h": {"t": path}}, tamper=start)
    assert "declared initial model" in run.refused["h"]


@pytest.mark.parametrize("round_no", [3, 7])  # a training round; the (clear) evaluation round
def test_under_secure_aggregation_the_model_must_follow_from_the_last_sum(
    shared_data: Path, round_no: int
) -> None:
    params = {**PARAMS, "rounds": 5, "local_epochs": 1}
    crafted = _at_round(round_no, lambda s: {**s, "weights": [w * 1.01 for w in s["weights"]]})
    run = run_federation(
        "learning.fedavg", params, _tables(shared_data), secure_aggregation=True, tamper=crafted
    )
    assert run.result is None and len(run.refused) == 3
    assert all("follow" in why for why in run.refused.values()), run.refused


def test_a_node_with_fewer_rows_than_the_policy_minimum_is_refused(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(1)
    pd.DataFrame({"x": rng.normal(size=40), "y": np.arange(40) % 2}).to_csv(path, index=False)
    run = run_federation("learning.fedavg", SMALL, {"small": {"t": path}})  # 38 training rows < 50
    assert "fl_min_rows" in run.refused["small"]
    strict = everything_auto().model_copy(update={"fl_min_rows": 5000})
    run = run_federation("learning.fedavg", {**PARAMS, "rounds": 1}, _tables(shared_data), policy=strict)
    assert run.result is None and all("fl_min_rows" in why for why in run.refused.values())


def _update(n: int = 200, norm: float = 0.5, clip: float = 1.0, n_params: int = 2) -> UpdateAggregate:
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (rng.random(n) < 0.4).astype(float)
    delta = np.r_[norm, np.zeros(n_params - 1)]
    return UpdateAggregate(
        "update",
        Persons.of("tabular:t", np.arange(n)),
        n_params,
        clip,
        delta,
        DesignEvidence(x, ["Intercept", "x"], y),
        PointEvidence(np.zeros(n), np.full(n, 0.25)),
        np.abs(y - 0.5) * np.linalg.norm(x, axis=1),
    )


@pytest.mark.parametrize(
    ("aggregate", "reason"),
    [
        (_update(norm=1.5), "longer than its L2 clip"),
        (_update(norm=float("nan")), "finite"),
        (_update(n=30), "fl_min_rows"),
        (_update(n_params=80), "parameters"),  # 80 > 0.33 × 200 (DataSHIELD nfilter.glm)
    ],
)
def test_the_gate_checks_an_update_itself(
    make_hospital: Any, aggregate: UpdateAggregate, reason: str
) -> None:
    gate = make_hospital("h").gate
    assert gate.release(GateContext("s", "ok", "acme", "learning.fedavg"), [_update()]).payload["values"]
    with pytest.raises(DisclosureRefused, match=reason):
        gate.release(GateContext("s", "t", "acme", "learning.fedavg"), [aggregate])


def test_dp_fedavg_releases_only_noisy_sums_and_stops_at_the_budget(shared_data: Path) -> None:
    declared = {
        "standardise": "declared",
        "means": dict.fromkeys(PARAMS["features"]["numeric"], 0.0),
        "sds": dict.fromkeys(PARAMS["features"]["numeric"], 5.0),
    }
    params = {**PARAMS, "rounds": 4, "clip_norm": 1.0, "learning_rate": 1.0, "preprocessing": declared}
    with Federation(_tables(shared_data)) as network:
        run = network.run("learning.fedavg", params, dp={"epsilon": 4.0})
        assert run.result is not None, run.refused
        updates = [r["values"]["update"] for r in run.releases["site1"] if "update" in r["values"]]
        assert len(updates) == 4 and all("update" not in u["values"] for u in updates)
        assert all(u["values"]["dp"]["mechanism"] == "gaussian" and u["n_obs"]["dp"] for u in updates)
        spent = run.result["dp_budget"]["site1"][0]["spent_rho"]
        # Repeating the study cannot average the noise away: the same evidence gets the same noisy
        # values back, at no cost.
        repeat = network.run("learning.fedavg", params, dp={"epsilon": 4.0})
        assert repeat.result is not None
        assert repeat.result["model"]["weights"] == run.result["model"]["weights"]
        assert repeat.result["dp_budget"]["site1"][0]["spent_rho"] == spent
        other = {**params, "clip_norm": 0.9}  # new evidence: ρ(4) twice is more than the default ε = 5
        again = network.run("learning.fedavg", other, dp={"epsilon": 4.0})
    assert again.result is None and all("budget" in why for why in again.refused.values())


def test_a_second_evaluation_cannot_difference_the_held_out_risk_bins(shared_data: Path) -> None:
    """Two models put a few held-out rows in different risk bins: the exact bin counts of the second,
    set against the first's, would describe those rows. The overlap guard refuses; without bins
    (``eval_bins: []``) the exact per-hospital metrics and the acceptance still leave."""
    params = {**PARAMS, "rounds": 2, "local_epochs": 2}
    with Federation(_tables(shared_data)) as network:
        assert network.run("learning.fedavg", params).result is not None
        second = network.run("learning.fedavg", {**params, "learning_rate": 1.0})
        assert second.refused and all("fewer than the minimum" in why for why in second.refused.values())
        assert second.result is not None and second.result["model"]["weights"] is None
        bare = network.run("learning.fedavg", {**params, "learning_rate": 2.0, "eval_bins": []})
    assert bare.result is not None and not bare.refused and bare.result["model"]["weights"] is not None
    assert bare.result["metrics"]["pooled"]["auroc"] is None
