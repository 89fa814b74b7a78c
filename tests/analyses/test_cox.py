"""Federated Cox equals lifelines (Efron) and statsmodels (Breslow) on the pooled data.

Rossi (lifelines' recidivism data, 432 persons, 114 arrests over weeks 1–52) is split by row order into
three hospitals of 144. References: lifelines ``CoxPHFitter`` implements Efron ties only, so Breslow is
checked against statsmodels ``PHReg(ties="breslow")``: its log-likelihood, score and Hessian evaluated
at the federated estimate (statsmodels' own optimiser stops earlier than 1e-8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from statsmodels.duration.hazard_regression import PHReg

from phds.analyses.cox import CoxPH
from phds.analyses.cox_bins import bin_of, grid_index
from phds.errors import DisclosureRefused

from .conftest import Hospital, run_rounds, run_until_refused

# Rossi is split in three hospitals of 144. The node refuses a design whose cross-classification of two
# discrete columns (or of one with the event) has a non-empty cell under k rows: race and mar do at every
# hospital split (fin × race, fin × mar, race × arrest ...), so the models leave them out; see
# test_the_full_rossi_model_is_refused_for_its_small_cells. prio is left out too: one row's leverage at
# the third hospital passes the bound (test_a_covariate_whose_outlier_dominates_the_weights_is_refused).
FULL = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
COVARIATES = ["fin", "age", "wexp", "paro"]
UNSTRATIFIED = COVARIATES
PARTS = 3
TOL = 1e-8
# lifelines stops by default when the log-likelihood changes by < 1e-9 relative (R's rule), which can
# leave it ~1e-7 from the maximum (measured on the synthetic data below); its own fit_options tighten it.
TIGHT = {"precision": 1e-12, "r_precision": 1e-15}


@pytest.fixture
def rossi(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "survival" / "lifelines" / "rossi.csv")


def split(frame: pd.DataFrame, parts: int, tmp_path: Path, make_hospital: Any) -> list[Hospital]:
    """Hospitals holding consecutive row blocks of *frame* as dataset ``surv``."""
    hospitals = []
    for i, block in enumerate(np.array_split(np.arange(len(frame)), parts), 1):
        path = tmp_path / f"h{i}.csv"
        frame.iloc[block].to_csv(path, index=False)
        hospitals.append(make_hospital(f"h{i}", tabular={"surv": path}))
    return hospitals


def params(ties: str, stratified: bool, covariates: list[str] = COVARIATES, **extra: Any) -> dict[str, Any]:
    return {"table": {"dataset": "surv"}, "duration": "week", "event": "arrest", "covariates": covariates,
            "ties": ties, "stratified_by_hospital": stratified, **extra}  # fmt: skip


def coefs(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    rows = result["coefficients"]
    return np.array([r["coef"] for r in rows]), np.array([r["se"] for r in rows])


def check_breslow(
    frame: pd.DataFrame, result: dict[str, Any], duration: str, strata: Any = None, covariates: Any = None
) -> None:
    """statsmodels' Breslow log-likelihood, score and Hessian at the federated estimate."""
    cov = covariates or COVARIATES
    model = PHReg(frame[duration], frame[cov], status=frame["arrest"], ties="breslow", strata=strata)
    beta, se = coefs(result)
    assert abs(model.loglike(beta) - result["log_likelihood"]) < TOL
    assert np.max(np.abs(model.score(beta))) < 1e-6  # a maximum: the score vanishes
    reference_se = np.sqrt(np.diag(np.linalg.inv(-model.hessian(beta))))
    assert np.max(np.abs(reference_se - se)) < TOL
    fitted = model.fit()
    assert np.max(np.abs(fitted.params - beta)) < 1e-5  # statsmodels' own, looser convergence


def check_lifelines(frame: pd.DataFrame, result: dict[str, Any], duration: str, **fit: Any) -> float:
    """lifelines on *frame* (its columns other than duration, event and strata are the covariates)."""
    cph = CoxPHFitter().fit(frame, duration, "arrest", fit_options=TIGHT, **fit)
    names = [r["covariate"] for r in result["coefficients"]]
    beta, se = coefs(result)
    diff = max(
        float(np.max(np.abs(cph.params_[names].to_numpy() - beta))),
        float(np.max(np.abs(cph.standard_errors_[names].to_numpy() - se))),
        abs(cph.log_likelihood_ - result["log_likelihood"]),
    )
    assert diff < TOL
    hr = np.array([r["hazard_ratio"] for r in result["coefficients"]])
    assert np.allclose(hr, cph.hazard_ratios_[names].to_numpy(), rtol=1e-7)
    p = np.array([r["p"] for r in result["coefficients"]])
    assert np.allclose(p, cph.summary.loc[names, "p"].to_numpy(), rtol=1e-5, atol=1e-12)
    return diff


def test_stratified_efron_equals_lifelines_with_hospital_strata(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    hospitals = split(rossi, PARTS, tmp_path, make_hospital)
    result = run_rounds(CoxPH(), params("efron", True), hospitals).result
    pooled = rossi[["week", "arrest", *COVARIATES]].assign(hospital=np.repeat([1, 2, 3], 144))
    check_lifelines(pooled, result, "week", strata=["hospital"])
    assert result["n"] == 432 and result["events"] == 114
    assert result["mode"] == "stratified_by_hospital"


def test_stratified_breslow_equals_statsmodels(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    hospitals = split(rossi, PARTS, tmp_path, make_hospital)
    result = run_rounds(CoxPH(), params("breslow", True), hospitals).result
    check_breslow(rossi, result, "week", strata=np.repeat([1, 2, 3], 144))


def test_stratified_release_is_only_gradient_hessian_and_loglik(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    hospitals = split(rossi, PARTS, tmp_path, make_hospital)
    analysis = CoxPH()
    p = analysis.parse_params(params("efron", True))
    state = {"beta": [0.1] * 4, "levels": {}, "columns": COVARIATES}
    payload = hospitals[0].answer(analysis, p, 2, state)
    step = payload["values"]["cox_step"]
    assert set(payload["values"]) == {"cox_step"}
    assert set(step["values"]) == {"loglik", "gradient", "hessian"}
    assert np.asarray(step["values"]["hessian"]).shape == (4, 4)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_unstratified_equals_the_pooled_fit_on_the_agreed_time_bins(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any, ties: str
) -> None:
    hospitals = split(rossi, PARTS, tmp_path, make_hospital)
    final = run_rounds(CoxPH(), params(ties, False, UNSTRATIFIED), hospitals)
    result = final.result
    cuts = [int(b["start"]) for b in result["time_bins"][1:]]
    grouped = rossi.assign(bin=bin_of(grid_index(rossi["week"].to_numpy(float), 0.0, 1.0), cuts))
    if ties == "efron":
        check_lifelines(grouped[["bin", "arrest", *UNSTRATIFIED]], result, "bin")
    else:
        check_breslow(grouped, result, "bin", covariates=UNSTRATIFIED)
    assert sum(b["events"] for b in result["time_bins"]) == 114
    # Rossi is small: 3 × ~38 arrests over 49 weeks admit only a few common bins at k = 5.
    assert 1 <= len(result["time_bins"]) < 49
    assert final.notes and "grouped" in final.notes[0]


def test_every_count_released_in_unstratified_mode_is_zero_or_at_least_k(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    hospitals = split(rossi, PARTS, tmp_path, make_hospital)
    analysis = CoxPH()
    p = analysis.parse_params(params("efron", False, UNSTRATIFIED))
    for hospital in hospitals:
        state = {"k": 5, "levels": {}, "columns": UNSTRATIFIED, "beta": [0.0] * 4}
        cells = hospital.answer(analysis, p, 2, state)["values"]["bins"]["cells"]
        values = [c["value"] for c in cells.values()]
        assert all(v == 0 or v >= 5 for v in values) and len(values) >= 2


def synthetic(n: int, seed: int) -> pd.DataFrame:
    """Integer weeks 1..8 with many ties, survivors censored at week 8: every week keeps ≥ 5 events."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    hazard = 0.15 * np.exp(x @ np.array([0.5, -0.3, 0.2]))
    week = np.ceil(rng.exponential(1 / hazard))
    censor = np.full(n, 8)  # administrative censoring: every week keeps ≥ 5 events per band
    return pd.DataFrame({"week": np.minimum(week, censor), "arrest": (week <= censor).astype(int),
                         "fin": x[:, 0], "age": x[:, 1], "race": x[:, 2],
                         "band": rng.choice(["x", "y", "z"], size=n)})  # fmt: skip


def test_unstratified_equals_lifelines_on_exact_times_when_every_week_is_admissible(
    tmp_path: Path, make_hospital: Any
) -> None:
    frame = synthetic(6000, 7)
    hospitals = split(frame, 3, tmp_path, make_hospital)
    # band's levels are text: level names leave a hospital only when the requester declares them
    raw = params("efron", False, ["fin", "band", "age", "race"], categorical=["band"],
                 levels={"band": ["x", "y", "z"]})  # fmt: skip
    result = run_rounds(CoxPH(), raw, hospitals).result
    assert len(result["time_bins"]) == frame["week"].nunique()  # no week merged: exact times
    names = ["fin", "band[T.y]", "band[T.z]", "age", "race"]
    pooled = frame.assign(
        **{"band[T.y]": (frame["band"] == "y") * 1.0, "band[T.z]": (frame["band"] == "z") * 1.0}
    )
    cph = CoxPHFitter().fit(pooled[["week", "arrest", *names]], "week", "arrest", fit_options=TIGHT)
    beta, se = coefs(result)
    assert [r["covariate"] for r in result["coefficients"]] == names
    assert np.max(np.abs(cph.params_[names].to_numpy() - beta)) < TOL
    assert np.max(np.abs(cph.standard_errors_[names].to_numpy() - se)) < TOL
    assert abs(cph.log_likelihood_ - result["log_likelihood"]) < TOL


def test_a_node_refuses_bins_it_does_not_admit(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    hospital = split(rossi, PARTS, tmp_path, make_hospital)[0]
    analysis = CoxPH()
    p = analysis.parse_params(params("efron", False, UNSTRATIFIED))
    state = {"k": 5, "cuts": [1, 2, 3], "beta": [0.0] * 4, "center": [0.0] * 4, "levels": {},
             "columns": UNSTRATIFIED}  # fmt: skip
    with pytest.raises(DisclosureRefused):
        hospital.answer(analysis, p, 3, state)


def test_the_full_rossi_model_is_refused_for_its_small_cells(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    """In three hospitals of 144, fin × race, fin × mar and race × wexp each have a cell of 1 to 4 persons
    at one of them: the design would release those counts through XᵀX, so every hospital refuses."""
    hospitals = split(rossi, 3, tmp_path, make_hospital)
    run = run_until_refused(CoxPH(), params("efron", True, FULL), hospitals)
    assert run.result is None and set(run.refused) == {"h1", "h2", "h3"}
    assert all(
        "cross-classification of" in r and "fewer rows than the minimum" in r for r in run.refused.values()
    )


def test_a_covariate_whose_outlier_dominates_the_weights_is_refused(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    """prio (prior convictions, up to 18) gives one row of the third hospital a leverage above 1/(k − ½):
    that hospital refuses, naming the column, and the others go on."""
    hospitals = split(rossi, PARTS, tmp_path, make_hospital)
    run = run_until_refused(CoxPH(), params("efron", True, [*COVARIATES, "prio"]), hospitals)
    assert set(run.refused) == {"h3"}
    assert "leverage is above the bound" in run.refused["h3"] and "'prio'" in run.refused["h3"]


@pytest.mark.parametrize("stratified", [False, True])
def test_a_binary_covariate_with_few_events_in_a_level_is_refused(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any, stratified: bool
) -> None:
    """race × arrest has a cell of 1 to 4 persons in a hospital: refused in both modes (stratified, the
    design's cross-classification with the event; unstratified, also the per-bin event counts)."""
    hospitals = split(rossi, 3, tmp_path, make_hospital)
    run = run_until_refused(CoxPH(), params("efron", stratified, ["age", "race"]), hospitals)
    assert (run.refused and run.result is None) or run.result["n"] < 432
    assert any("'race'" in r or "1 to 4 events" in r for r in run.refused.values())


def test_a_categorical_covariate_is_dummy_coded_on_levels_agreed_over_hospitals(
    rossi: pd.DataFrame, tmp_path: Path, make_hospital: Any
) -> None:
    stratified = True  # unstratified, the age bands' arrest counts are too small per hospital (refused)
    names = ["a17-19", "b20-22", "c23-26", "d27+"]
    bands = pd.cut(rossi["age"], [0, 19, 22, 26, 100], labels=names)
    frame = rossi.assign(ageband=bands.astype(str))
    # two hospitals of 216: in three, the oldest band has 1 to 4 arrests at the third (refused); prio is
    # left out for its leverage (see above)
    hospitals = split(frame, 2, tmp_path, make_hospital)
    covariates = ["ageband", "age"]
    raw = params("efron", stratified, covariates, categorical=["ageband"], levels={"ageband": names})
    result = run_rounds(CoxPH(), raw, hospitals).result
    names = [r["covariate"] for r in result["coefficients"]]
    assert names == ["ageband[T.b20-22]", "ageband[T.c23-26]", "ageband[T.d27+]", "age"]
    dummies = pd.get_dummies(frame["ageband"], dtype=float).iloc[:, 1:]
    dummies.columns = names[0:3]
    pooled = pd.concat([frame[["week", "arrest"]], dummies, frame[["age"]]], axis=1)
    pooled["hospital"] = np.repeat([1, 2], 216)
    cph = CoxPHFitter().fit(pooled, "week", "arrest", fit_options=TIGHT, strata=["hospital"])
    beta, se = coefs(result)
    reference = cph.params_[names].to_numpy()
    assert np.max(np.abs(reference - beta)) < TOL
    assert np.max(np.abs(cph.standard_errors_[names].to_numpy() - se)) < TOL
