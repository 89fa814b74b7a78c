"""Federated Kaplan–Meier and log-rank equal lifelines on the pooled durations grouped to the same bins.

Rossi is split by row order into three hospitals (as in test_cox). The reference is lifelines'
``KaplanMeierFitter`` / ``multivariate_logrank_test`` on the pooled file with each duration replaced by
the start of its released bin, read at the bin starts (see :mod:`phds.analyses.km`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from phds.analyses.cox_bins import bin_of, grid_index
from phds.analyses.km import KaplanMeier

from .conftest import run_rounds
from .test_cox import rossi, split, synthetic  # noqa: F401  (rossi is a fixture)

TOL = 1e-12


def grouped(frame: pd.DataFrame, result: dict[str, Any]) -> np.ndarray:
    """Each duration replaced by the start of its released bin."""
    starts = np.array([b["start"] for b in result["time_bins"]])
    cuts = [int(s) for s in starts[1:]]
    return starts[bin_of(grid_index(frame["week"].to_numpy(float), 0.0, 1.0), cuts)]


def assert_curve(table: list[dict[str, Any]], durations: np.ndarray, events: np.ndarray) -> None:
    kmf = KaplanMeierFitter().fit(durations, events)
    starts = np.array([row["start"] for row in table])
    expected = kmf.survival_function_at_times(starts).to_numpy()
    assert np.max(np.abs(expected - [row["survival"] for row in table])) < TOL
    at_risk = kmf.event_table["at_risk"].reindex(starts).to_numpy()
    seen = ~np.isnan(at_risk)
    assert np.array_equal(at_risk[seen], np.array([row["at_risk"] for row in table])[seen])
    ci = kmf.confidence_interval_survival_function_.reindex(starts)
    lower = np.array([np.nan if r["ci_lower_95"] is None else r["ci_lower_95"] for r in table])
    ok = ~np.isnan(lower) & seen
    assert ok.any()
    assert np.max(np.abs(ci.iloc[:, 0].to_numpy()[ok] - lower[ok])) < 1e-10
    upper = np.array([np.nan if r["ci_upper_95"] is None else r["ci_upper_95"] for r in table])
    assert np.max(np.abs(ci.iloc[:, 1].to_numpy()[ok] - upper[ok])) < 1e-10


def test_pooled_and_per_hospital_curves_and_logrank_equal_lifelines(
    rossi: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
    make_hospital: Any,
) -> None:
    hospitals = split(rossi, 3, tmp_path, make_hospital)
    params = {"table": {"dataset": "surv"}, "duration": "week", "event": "arrest"}
    result = run_rounds(KaplanMeier(), params, hospitals).result
    durations, events = grouped(rossi, result), rossi["arrest"].to_numpy()
    assert_curve(result["pooled"], durations, events)
    site = np.repeat(["h1", "h2", "h3"], 144)
    reference = multivariate_logrank_test(durations, site, events)
    assert abs(reference.test_statistic - result["logrank"]["statistic"]) < 1e-10
    assert abs(reference.p_value - result["logrank"]["p"]) < 1e-10
    for name, table in result["by_hospital"].items():
        part = rossi[site == name]
        own = np.array([row["start"] for row in table])
        mapped = own[bin_of(grid_index(part["week"].to_numpy(float), 0.0, 1.0), [int(s) for s in own[1:]])]
        assert_curve(table, mapped, part["arrest"].to_numpy())
    for table in [result["pooled"], *result["by_hospital"].values()]:
        counts = [v for row in table for v in (row["events"], row["censored"])]
        assert all(v == 0 or v >= 5 for v in counts)


def test_logrank_by_a_group_variable_equals_lifelines(
    rossi: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
    make_hospital: Any,
) -> None:
    hospitals = split(rossi, 3, tmp_path, make_hospital)
    params = {"table": {"dataset": "surv"}, "duration": "week", "event": "arrest", "group": "fin"}
    result = run_rounds(KaplanMeier(), params, hospitals).result
    durations, events = grouped(rossi, result), rossi["arrest"].to_numpy()
    reference = multivariate_logrank_test(durations, rossi["fin"].astype(str), events)
    assert abs(reference.test_statistic - result["logrank"]["statistic"]) < 1e-10
    for label, table in result["by_group"].items():
        rows = (rossi["fin"].astype(str) == label).to_numpy()
        assert_curve(table, durations[rows], events[rows])


def test_km_equals_lifelines_on_raw_times_when_every_week_is_admissible(
    tmp_path: Path, make_hospital: Any
) -> None:
    frame = synthetic(6000, 7)
    hospitals = split(frame, 3, tmp_path, make_hospital)
    params = {"table": {"dataset": "surv"}, "duration": "week", "event": "arrest"}
    result = run_rounds(KaplanMeier(), params, hospitals).result
    assert len(result["time_bins"]) == frame["week"].nunique()
    kmf = KaplanMeierFitter().fit(frame["week"], frame["arrest"])
    weeks = np.array(
        [b["end"] - 1 if b["end"] is not None else frame["week"].max() for b in result["time_bins"]]
    )
    expected = kmf.survival_function_at_times(weeks).to_numpy()
    assert np.max(np.abs(expected - [row["survival"] for row in result["pooled"]])) < TOL


def test_a_group_too_small_for_any_bin_is_refused(
    rossi: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
    make_hospital: Any,
) -> None:
    from phds.errors import DisclosureRefused

    tiny = rossi.iloc[:40]
    hospital = split(tiny, 1, tmp_path, make_hospital)[0]
    analysis = KaplanMeier()
    params = analysis.parse_params({"table": {"dataset": "surv"}, "duration": "week", "event": "arrest",
                                    "group": "race", "min_count": 11})  # fmt: skip
    with pytest.raises(DisclosureRefused):
        hospital.answer(analysis, params, 2, {"k": 11})


def test_a_stricter_hospital_policy_raises_k_for_every_hospital(
    rossi: pd.DataFrame,  # noqa: F811
    tmp_path: Path,
    make_hospital: Any,
) -> None:
    hospitals = []
    for i, block in enumerate(np.array_split(np.arange(len(rossi)), 2), 1):
        path = tmp_path / f"k{i}.csv"
        rossi.iloc[block].to_csv(path, index=False)
        hospitals.append(make_hospital(f"k{i}", tabular={"surv": path}, min_cell_count=5 + 6 * (i == 2)))
    params = {"table": {"dataset": "surv"}, "duration": "week", "event": "arrest"}
    result = run_rounds(KaplanMeier(), params, hospitals).result
    assert result["min_count"] == 11
    for table in [result["pooled"], *result["by_hospital"].values()]:
        assert all(v == 0 or v >= 11 for row in table for v in (row["events"], row["censored"]))
    assert_curve(result["pooled"], grouped(rossi, result), rossi["arrest"].to_numpy())
