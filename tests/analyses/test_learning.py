"""``learning.fedavg`` / ``learning.fedprox``: models, metrics, parameters, and FedAvg on CNSIM against
scikit-learn's pooled fit (a reference nobody here wrote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from phds.analyses import get_analysis
from phds.analyses.learning_eval import auprc, auroc, binned_metrics, brier
from phds.analyses.learning_frame import held_out_mask
from phds.analyses.learning_models import initial_weights, mean_gradient, row_gradients, shapes
from phds.analyses.testing import run_federation
from phds.errors import InputError

NUMERIC = ["LAB_TSC", "LAB_TRIG", "LAB_HDL", "LAB_GLUC_ADJUSTED", "PM_BMI_CONTINUOUS"]
PARAMS: dict[str, Any] = {
    "table": {"dataset": "cnsim"},
    "outcome": "DIS_DIAB",
    "features": {"numeric": NUMERIC, "categorical": {"GENDER": ["0", "1"]}},
    "rounds": 40,
    "local_epochs": 25,
    "learning_rate": 4.0,
    "batch_size": 0,
    "clip_norm": 50.0,
}


def _tables(shared_data: Path) -> dict[str, dict[str, Path]]:
    folder = shared_data / "tabular" / "datashield" / "CNSIM"
    return {f"site{i}": {"cnsim": folder / f"CNSIM{i}.csv"} for i in (1, 2, 3)}


def _pooled_training_rows(shared_data: Path, fraction: float, seed: int = 0) -> pd.DataFrame:
    """The rows the nodes train on, rebuilt from the files: complete cases, minus the node-side split
    (the node's row id is the row's position in its file)."""
    parts = []
    for path in _tables(shared_data).values():
        df = pd.read_csv(path["cnsim"])
        df.columns = [c.strip() for c in df.columns]
        df["row"] = np.arange(len(df))
        df = df[[*NUMERIC, "GENDER", "DIS_DIAB", "row"]].dropna()
        parts.append(df[~held_out_mask(df["row"].to_numpy(), seed, fraction)])
    return pd.concat(parts)


@pytest.fixture(scope="module")
def cnsim_run(shared_data: Path) -> Any:
    run = run_federation("learning.fedavg", PARAMS, _tables(shared_data))
    assert run.result is not None, (run.error, run.refused)
    return run


def test_fedavg_on_cnsim_matches_the_pooled_scikit_learn_fit(cnsim_run: Any, shared_data: Path) -> None:
    rows = _pooled_training_rows(shared_data, 0.2)
    x = rows[[*NUMERIC, "GENDER"]].to_numpy(float)
    y = rows["DIS_DIAB"].to_numpy(float)
    ref = LogisticRegression(C=np.inf, max_iter=10_000, tol=1e-10).fit(x, y)  # unpenalised
    ref_coef = np.r_[ref.intercept_, ref.coef_[0]]
    result = cnsim_run.result
    fed = np.array(list(result["coefficients"].values()))
    ref_auc = roc_auc_score(y, ref.predict_proba(x)[:, 1])
    fed_auc = roc_auc_score(y, 1 / (1 + np.exp(-(x @ fed[1:] + fed[0]))))
    assert abs(fed_auc - ref_auc) < 0.01
    # Coefficients converge toward the pooled fit: the distance shrinks by an order of magnitude.
    sd = np.array(list(result["model"]["standardisation"]["sd"].values()))
    mean = np.array(list(result["model"]["standardisation"]["mean"].values()))

    def distance(weights: list[float]) -> float:
        w = np.asarray(weights)
        beta = w[1:].copy()
        beta[:5] /= sd
        return float(np.max(np.abs(np.r_[w[0] - np.sum(w[1:6] * mean / sd), beta] - ref_coef)))

    curve = [distance(e["weights"]) for e in result["curve"]]
    assert curve[0] > 1.0 and curve[10] < curve[0] / 5 and curve[-1] < 0.05
    assert np.max(np.abs(fed - ref_coef)) < 0.05


def test_the_result_has_gated_per_hospital_and_pooled_metrics(cnsim_run: Any) -> None:
    result = cnsim_run.result
    per = result["metrics"]["per_hospital"]
    assert sorted(per) == ["site1", "site2", "site3"]
    exact = {h for h, row in per.items() if not row["from_bins"]}
    assert "site3" in exact, "the largest site holds out enough cases and non-cases"
    for h, row in per.items():
        if h in exact:
            assert 0.6 < row["auroc"] < 0.95 and 0 < row["brier"] < 0.05
        else:  # CNSIM1 has 30 cases in 2,163 rows: its held-out fifth has fewer than k = 5
            assert row["brier"] is None and "withheld" in row["note"]
    pooled = result["metrics"]["pooled"]
    assert 0.6 < pooled["auroc"] < 0.95 and pooled["cases"] > 0
    assert result["model"]["weights"] is not None and not result["skipped"]
    # every gate released only what it was asked: one model update per training round
    releases = cnsim_run.releases["site3"]
    assert sum("update" in r["values"] for r in releases) == PARAMS["rounds"]
    assert {"calibration", "accept", "metrics"} <= set(releases[-1]["values"])


def test_secure_aggregation_gives_the_clear_model(shared_data: Path) -> None:
    params = {**PARAMS, "rounds": 5, "local_epochs": 5}
    clear = run_federation("learning.fedavg", params, _tables(shared_data))
    secure = run_federation("learning.fedavg", params, _tables(shared_data), secure_aggregation=True)
    assert clear.result is not None and secure.result is not None, secure.error
    assert np.allclose(clear.result["model"]["weights"], secure.result["model"]["weights"], atol=1e-5)
    assert sorted(secure.secure_layouts) == list(range(1, 7)), "moments and every training round summed"


def test_fedprox_differs_from_fedavg_only_by_its_proximal_term(shared_data: Path) -> None:
    params = {**PARAMS, "rounds": 3, "local_epochs": 5, "batch_size": 64, "learning_rate": 0.5}
    avg = run_federation("learning.fedavg", params, _tables(shared_data)).result
    prox = run_federation("learning.fedprox", {**params, "mu": 1.0}, _tables(shared_data)).result
    assert avg is not None and prox is not None
    w_avg, w_prox = np.asarray(avg["model"]["weights"]), np.asarray(prox["model"]["weights"])
    # The proximal term pulls each local model back toward the global one: smaller steps.
    assert np.linalg.norm(w_prox) < np.linalg.norm(w_avg)


def test_an_mlp_trains_and_evaluates(shared_data: Path) -> None:
    params = {
        **PARAMS,
        "model": {"kind": "mlp", "hidden": [6]},
        "rounds": 3,
        "local_epochs": 1,
        "batch_size": 64,
        "learning_rate": 0.2,
    }
    run = run_federation("learning.fedavg", params, _tables(shared_data))
    assert run.result is not None, run.refused
    assert run.result["coefficients"] is None and len(run.result["model"]["weights"]) == (6 + 1) * 6 + (6 + 1)
    assert run.result["metrics"]["pooled"]["auroc"] > 0.6


@pytest.mark.parametrize(("kind", "hidden"), [("logistic", []), ("mlp", [5]), ("mlp", [4, 3])])
def test_gradients_match_finite_differences(kind: str, hidden: list[int]) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)), (rng.random(30) < 0.4).astype(float)
    shape = shapes(kind, 4, hidden)
    w = initial_weights(kind, 4, hidden, seed=3) + rng.normal(scale=0.3, size=shape.n_params)

    def loss(v: np.ndarray) -> float:
        from phds.analyses.learning_models import log_loss

        return log_loss(shape, v, x, y)

    numeric = np.array([(loss(w + e) - loss(w - e)) / 2e-6 for e in np.eye(w.size) * 1e-6])
    assert np.allclose(mean_gradient(shape, w, x, y), numeric, atol=1e-6)
    assert np.allclose(row_gradients(shape, w, x, y).mean(axis=0), numeric, atol=1e-6)


def test_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.2).astype(float)
    p = np.round(np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(scale=0.2, size=500), 0.001, 0.999), 2)  # ties
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    # With one bin per distinct score, the binned metrics are the exact ones.
    scores = np.unique(p)
    cuts = list((scores[:-1] + scores[1:]) / 2)
    bins = np.searchsorted(cuts, p, side="right")
    neg = np.bincount(bins[y == 0], minlength=len(cuts) + 1).astype(float)
    pos = np.bincount(bins[y == 1], minlength=len(cuts) + 1).astype(float)
    binned = binned_metrics(neg, pos, cuts)
    assert binned["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert binned["auprc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_the_held_out_split_depends_on_each_row_alone() -> None:
    ids = np.arange(10_000)
    mask = held_out_mask(ids, 7, 0.25)
    assert 0.23 < mask.mean() < 0.27
    assert np.array_equal(held_out_mask(ids[5000:], 7, 0.25), mask[5000:]), "no dependence on other rows"
    assert not np.array_equal(held_out_mask(ids, 8, 0.25), mask), "the seed changes the split"


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("learning.fedavg", {"mu": 0.5}, "analysis.params.mu"),
        ("learning.fedprox", {}, "analysis.params.mu"),
        ("learning.fedavg", {"model": {"kind": "mlp"}}, "analysis.params.model"),
        ("learning.fedavg", {"eval_bins": [0.5, 0.2]}, "analysis.params.eval_bins"),
        ("learning.fedavg", {"features": {"categorical": {"GENDER": ["0"]}}}, "analysis.params.features"),
        ("learning.fedavg", {"preprocessing": {"standardise": "declared"}}, "analysis.params"),
        ("learning.fedavg", {"clip_norm": 0}, "analysis.params.clip_norm"),
        ("learning.fedavg", {"surprise": 1}, "analysis.params.surprise"),
    ],
)
def test_parameters_are_checked_with_requester_facing_errors(
    name: str, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InputError) as caught:
        get_analysis(name).parse_params({**PARAMS, **change})
    assert caught.value.field == field, caught.value.message


def test_the_base_install_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, phds.analyses.learning, phds.sdk; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("name", ["fl-cnsim.yaml", "fl-asthma.yaml", "fl-sepsis.yaml"])
def test_the_example_study_files_are_valid(name: str) -> None:
    from phds.sdk import load_study

    spec = load_study(Path(__file__).resolve().parents[2] / "docs" / "examples" / name)
    analysis = get_analysis(spec.analysis.name)
    analysis.check_at_hub(analysis.parse_params(spec.analysis.params))


@pytest.mark.parametrize("batch", [0, 16])
def test_the_torch_mlp_trains_as_the_numpy_mlp(batch: int) -> None:
    pytest.importorskip("torch", reason="the optional phds[torch] extra is not installed")
    from phds.analyses.learning_models import Training, local_train
    from phds.analyses.learning_torch import local_train_torch

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(80, 3)), (rng.random(80) < 0.3).astype(float)
    shape = shapes("mlp", 3, [5])
    w0 = initial_weights("mlp", 3, [5], seed=2)
    how = Training(epochs=3, learning_rate=0.3, batch_size=batch, mu=0.2, l2=0.01)
    ours = local_train(shape, w0, x, y, how, [1, 2])
    theirs = local_train_torch(shape, w0, x, y, how, [1, 2])
    assert np.allclose(ours, theirs, atol=1e-12) and not np.allclose(ours, w0)


def test_a_torch_mlp_study_runs(shared_data: Path) -> None:
    pytest.importorskip("torch", reason="the optional phds[torch] extra is not installed")
    params = {
        **PARAMS,
        "model": {"kind": "torch_mlp", "hidden": [4]},
        "rounds": 2,
        "local_epochs": 1,
        "batch_size": 0,
        "learning_rate": 0.5,
    }
    numpy_run = run_federation(
        "learning.fedavg", {**params, "model": {"kind": "mlp", "hidden": [4]}}, _tables(shared_data)
    )
    torch_run = run_federation("learning.fedavg", params, _tables(shared_data))
    assert torch_run.result is not None and numpy_run.result is not None, torch_run.refused
    assert np.allclose(torch_run.result["model"]["weights"], numpy_run.result["model"]["weights"], atol=1e-10)
