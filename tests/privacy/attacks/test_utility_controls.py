"""Utility controls: exact answers under the default policy (each in a fresh federation). These must PASS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from attack_kit import ROSSI, cnsim_path, federation, load_csv

CNSIM = {f"site{i}": cnsim_path(i) for i in (1, 2, 3)}
TABLE = {"dataset": "cnsim"}


def pooled() -> pd.DataFrame:
    return pd.concat([load_csv(cnsim_path(i)) for i in (1, 2, 3)], ignore_index=True)


def _compare_glm(tmp_path: Path, formula: str, family: str, sm_family: sm.families.Family) -> None:
    with federation(tmp_path, CNSIM) as fed:
        run = fed.run("stats.glm", {"table": TABLE, "formula": formula, "family": family})
    assert run.result is not None, (run.error, run.refused)
    fit = smf.glm(formula, data=pooled(), family=sm_family).fit()
    ours = {c["term"]: c["estimate"] for c in run.result["coefficients"]}
    for term, value in fit.params.items():
        term = term.replace(".0]", "]")
        key = term.replace("[T.", "[")
        match = ours.get(term, ours.get(key))
        if match is None:
            match = next(v for t, v in ours.items() if t.replace(" ", "") == term.replace(" ", ""))
        assert abs(match - value) <= 1e-8 * max(1.0, abs(value)), (term, match, value)


def test_glm_binomial_interaction_matches_statsmodels(tmp_path: Path) -> None:
    """Control: DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL (binomial) over 3 CNSIM sites = pooled fit."""
    _compare_glm(
        tmp_path, "DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL", "binomial", sm.families.Binomial()
    )


def test_glm_gaussian_factor_matches_statsmodels(tmp_path: Path) -> None:
    """Control: LAB_HDL ~ LAB_TSC + GENDER + C(PM_BMI_CATEGORICAL) (gaussian) = pooled statsmodels fit."""
    _compare_glm(
        tmp_path, "LAB_HDL ~ LAB_TSC + GENDER + C(PM_BMI_CATEGORICAL)", "gaussian", sm.families.Gaussian()
    )


def test_mean_variance_matches_pandas(tmp_path: Path) -> None:
    """Control: stats.mean_variance of LAB_TSC = pandas mean / sample variance on the pooled files."""
    with federation(tmp_path, CNSIM) as fed:
        run = fed.run("stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_TSC"})
    x = pooled()["LAB_TSC"].dropna()
    assert run.result is not None, run.refused
    assert run.result["n"] == len(x)
    assert abs(run.result["mean"] - x.mean()) < 1e-12
    assert abs(run.result["variance"] - x.var()) < 1e-10


def test_one_way_tables_match_pandas(tmp_path: Path) -> None:
    """Control: one-way tables of GENDER and PM_BMI_CATEGORICAL = pandas value counts (exact cells)."""
    data = pooled()
    for var in ("GENDER", "PM_BMI_CATEGORICAL"):
        with federation(tmp_path / var, CNSIM) as fed:
            run = fed.run("stats.table", {"table": TABLE, "rows": var})
        assert run.result is not None, run.refused
        truth = data[var].dropna().astype(int).value_counts()
        got = {
            str(int(float(c["row"]))): c["lower"]
            for c in run.result["cells"]
            if c["exact"] and c["row"] != "NA"
        }
        assert got == {str(k): int(v) for k, v in truth.items()}, (got, truth.to_dict())


def test_km_weekly_matches_lifelines(tmp_path: Path) -> None:
    """Control: KM requested on weekly bins (rossi split into 2 sites, time_width = 1) = lifelines' KM on the
    same grouping (durations mapped to the released admissible bins), to 1e-10; at least 3 bins released."""
    from lifelines import KaplanMeierFitter

    data = load_csv(ROSSI)
    sites = {}
    for i, lo in enumerate(range(0, len(data), 216)):
        path = tmp_path / f"rossi{i}.csv"
        data.iloc[lo : lo + 216].to_csv(path, index=False)
        sites[f"site{i}"] = path
    with federation(tmp_path, sites) as fed:
        run = fed.run("survival.km", {"table": TABLE, "duration": "week", "event": "arrest", "time_width": 1})
    assert run.result is not None, (run.error, run.refused)
    bins = run.result["pooled"]
    assert len(bins) >= 3, bins
    starts = np.asarray([b["start"] for b in bins])
    grouped = np.searchsorted(starts, data["week"].to_numpy(), side="right")  # bin number 1..B
    kmf = KaplanMeierFitter().fit(grouped, data["arrest"])
    for number, row in enumerate(bins, start=1):
        want = float(kmf.survival_function_at_times(number).iloc[0])
        assert abs(row["survival"] - want) < 1e-10, (row, want)
