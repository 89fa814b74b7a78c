"""The SDK's FitResult from a real federated training (in-process hospitals, real gates) on CNSIM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from phds.analyses.testing import run_federation
from phds.errors import InputError
from phds.sdk.result_registry import result_for
from phds.sdk.results_learning import FitResult

from .stats_support import cnsim_paths, finished_view, pooled_cnsim

NUMERIC = ["LAB_TSC", "LAB_HDL", "LAB_GLUC_ADJUSTED", "PM_BMI_CONTINUOUS"]


def _fit(shared_data: Path, **change: Any) -> FitResult:
    params: dict[str, Any] = {
        "table": {"dataset": "cnsim"},
        "outcome": "DIS_DIAB",
        "features": {"numeric": NUMERIC, "categorical": {"GENDER": ["0", "1"]}},
        "rounds": 8,
        "local_epochs": 10,
        "learning_rate": 3.0,
        "batch_size": 0,
        "clip_norm": 50.0,
        **change,
    }
    tables = {f"site{i}": {"cnsim": p} for i, p in enumerate(cnsim_paths(shared_data), start=1)}
    run = run_federation("learning.fedavg", params, tables)
    assert run.result is not None, run.refused
    result = result_for(finished_view("learning.fedavg", params, run.result, run.notes))
    assert isinstance(result, FitResult)
    return result


@pytest.fixture(scope="module")
def fit(shared_data: Path) -> FitResult:
    return _fit(shared_data)


def test_the_frame_metrics_and_curve(fit: FitResult) -> None:
    frame = fit.to_frame()
    assert list(frame.index) == ["(Intercept)", *NUMERIC, "GENDER[1]"]
    assert fit.metrics.loc["pooled", "auroc"] > 0.6 and set(fit.metrics.index) >= {"site3", "pooled"}
    assert list(fit.curve["round"]) == list(range(1, 9))
    assert fit.curve["loss"].is_monotonic_decreasing
    assert fit.weights_by_round().shape == (8, 1 + len(NUMERIC) + 1)


def test_predict_proba_applies_the_released_coefficients(fit: FitResult, shared_data: Path) -> None:
    rows = pooled_cnsim(shared_data)[[*NUMERIC, "GENDER"]].dropna().head(200)
    coef = fit.to_frame()["estimate"]
    eta = coef["(Intercept)"] + rows[NUMERIC].to_numpy() @ coef[NUMERIC].to_numpy()
    eta = eta + coef["GENDER[1]"] * (rows["GENDER"].to_numpy() == 1)
    assert np.allclose(fit.predict_proba(rows), 1 / (1 + np.exp(-eta)), rtol=1e-9)
    with pytest.raises(InputError, match="no column"):
        fit.predict_proba(rows.drop(columns=["LAB_HDL"]))


@pytest.mark.parametrize("kind", ["roc", "calibration", "convergence"])
def test_plots_are_written(fit: FitResult, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.png"
    fit.plot(path, kind=kind)  # type: ignore[arg-type]
    with Image.open(path) as image:
        assert image.size[0] > 400


def test_an_mlp_result_summarises_its_layers(shared_data: Path) -> None:
    mlp = _fit(
        shared_data,
        model={"kind": "mlp", "hidden": [4]},
        rounds=2,
        local_epochs=1,
        batch_size=64,
        learning_rate=0.2,
    )
    frame = mlp.to_frame()
    assert list(frame["n_params"]) == [(5 + 1) * 4, (4 + 1) * 1] and mlp.coefficients is None
    assert mlp.predict_proba(pooled_cnsim(shared_data)[[*NUMERIC, "GENDER"]].dropna().head(5)).shape == (5,)
