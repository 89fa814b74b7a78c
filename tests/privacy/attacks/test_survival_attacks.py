"""Family 5: survival grids and quantile bisection (shifted origins, colluding grids, threshold history)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
from attack_kit import ROSSI, attempt, exact, federation, load_csv

from phds.analyses.testing import Federation, FederationRun

TABLE = {"dataset": "cnsim"}
KM = {"table": TABLE, "duration": "week", "event": "arrest"}


def rossi_fed(tmp_path: Path) -> Federation:
    return federation(tmp_path, {"site1": ROSSI})


def cumulative_events(run: FederationRun) -> dict[float, int]:
    """Boundary b → events with duration < b, from a KM result's pooled bins."""
    out: dict[float, int] = {}
    total = 0
    for row in (run.result or {}).get("pooled", []):
        total += int(row["events"])
        if row["end"] is not None:
            out[float(row["end"])] = total
    return out


def small_differences(
    points: dict[float, int], durations: pd.Series, events: pd.Series
) -> list[tuple[Any, ...]]:
    """Intervals between consecutive known boundaries whose event count is exactly known and in 1..4."""
    edges = sorted(points)
    out = []
    for lo, hi in itertools.pairwise(edges):
        d = points[hi] - points[lo]
        truth = {int(((durations >= lo) & (durations < hi) & (events == 1)).sum()),
                 int(((durations > lo) & (durations <= hi) & (events == 1)).sum())}  # fmt: skip
        if 1 <= d <= 4 and d in truth:
            out.append((lo, hi, d))
    return out


def test_shifted_origin_same_requester(tmp_path: Path) -> None:
    """KM on width-2 bins at origin 0 then origin 1: the union of boundaries gives weekly event counts."""
    data = load_csv(ROSSI)
    with rossi_fed(tmp_path) as fed:
        a = attempt(fed, "survival.km", {**KM, "time_width": 2})
        b = attempt(fed, "survival.km", {**KM, "time_width": 2, "time_origin": 1})
    points = {**cumulative_events(a), **cumulative_events(b)}
    assert not small_differences(points, data["week"], data["arrest"])


def test_shifted_origin_colluding_requesters(tmp_path: Path) -> None:
    """The same shift by two organisations, each with its own fixed grid."""
    data = load_csv(ROSSI)
    with rossi_fed(tmp_path) as fed:
        a = attempt(fed, "survival.km", {**KM, "time_width": 2}, requester="a")
        b = attempt(fed, "survival.km", {**KM, "time_width": 2, "time_origin": 1}, requester="b")
    points = {**cumulative_events(a), **cumulative_events(b)}
    assert not small_differences(points, data["week"], data["arrest"])


def test_two_widths_colluding_requesters(tmp_path: Path) -> None:
    """Width 3 (organisation a) and width 2 (organisation b) from origin 0: boundaries interleave."""
    data = load_csv(ROSSI)
    with rossi_fed(tmp_path) as fed:
        a = attempt(fed, "survival.km", {**KM, "time_width": 3}, requester="a")
        b = attempt(fed, "survival.km", {**KM, "time_width": 2}, requester="b")
    points = {**cumulative_events(a), **cumulative_events(b)}
    assert not small_differences(points, data["week"], data["arrest"])


def test_rare_group_in_km(tmp_path: Path) -> None:
    """KM by a group with 3 members: their exact event count / at-risk must not leave."""
    data = load_csv(ROSSI)
    data["grp"] = 0
    data.loc[:2, "grp"] = 1
    path = tmp_path / "rossi_grp.csv"
    data.to_csv(path, index=False)
    with federation(tmp_path, {"site1": path}) as fed:
        run = attempt(fed, "survival.km", {**KM, "group": "grp"})
    small = []
    for m in _mappings(run):
        if m.get("type") == "count" and (v := exact(m)) is not None and 1 <= v <= 3:
            small.append(v)
    for curve in (
        (run.result or {}).get("groups", {}).values()
        if isinstance((run.result or {}).get("groups"), dict)
        else []
    ):
        for row in curve if isinstance(curve, list) else []:
            if 1 <= int(row.get("at_risk", 0)) <= 3:
                small.append(row["at_risk"])
    assert not small, small


def _mappings(run: FederationRun) -> list[dict[str, Any]]:
    from attack_kit import mappings

    return list(mappings([run.releases, run.result]))


def test_cox_unstratified_shifted_grids(tmp_path: Path) -> None:
    """Unstratified Cox on width-2 grids at origins 0 and 1 (two organisations): per-bin event counts."""
    data = load_csv(ROSSI)
    base = {**KM, "covariates": ["age"], "stratified_by_hospital": False, "time_width": 2}
    with rossi_fed(tmp_path) as fed:
        a = attempt(fed, "survival.cox", base, requester="a")
        b = attempt(fed, "survival.cox", {**base, "time_origin": 1}, requester="b")
    points: dict[float, int] = {}
    for run, origin in ((a, 0.0), (b, 1.0)):
        for m in _mappings(run):
            if m.get("type") == "breakdown":
                total = 0
                for key, cell in sorted(m["cells"].items(), key=lambda kv: _bin(kv[0])):
                    if ":event" in str(key) and exact(cell) is not None:
                        total += exact(cell) or 0
                        points[origin + 2 * (_bin(key) + 1)] = total
    assert not small_differences(points, data["week"], data["arrest"])


def _bin(key: Any) -> int:
    try:
        return int(str(key).split(":")[0])
    except ValueError:
        return 10**9


def summary_points(runs: list[FederationRun]) -> dict[float, int]:
    """Threshold t → #values ≤ t from every released quantile-bin breakdown (per hospital site1)."""
    out: dict[float, int] = {}
    for run in runs:
        for p in run.releases.get("site1", []):
            bins = p.get("values", {}).get("bins")
            if not bins or any(c.get("suppressed") for c in bins["cells"].values()):
                continue
            total = 0
            for edge, cell in sorted(bins["cells"].items(), key=lambda kv: float(kv[0])):
                total += int(cell["value"])
                if float(edge) != float("inf"):
                    out[float(edge)] = total
    return out


def small_bins(points: dict[float, int], values: pd.Series) -> list[tuple[float, float, int]]:
    edges = sorted(points)
    out = []
    for lo, hi in itertools.pairwise(edges):
        d = points[hi] - points[lo]
        if 1 <= d <= 4 and d == int(((values > lo) & (values <= hi)).sum()):
            out.append((lo, hi, d))
    return out


def test_quantile_threshold_history_one_study(tmp_path: Path) -> None:
    """stats.summary of rossi age (ties, few values): all thresholds released over the bisection rounds, taken
    together, must not bound 1..4 persons between two thresholds."""
    data = load_csv(ROSSI)
    with rossi_fed(tmp_path) as fed:
        run = attempt(
            fed, "stats.summary", {"table": TABLE, "variable": "prio", "quantiles": [0.05, 0.5, 0.95]}
        )
    assert not small_bins(summary_points([run]), data["prio"])


def test_quantile_thresholds_across_studies(tmp_path: Path) -> None:
    """Two studies with neighbouring quantiles (0.5 and 0.51; then 0.505): thresholds from different studies
    interleave and may bound a handful of persons."""
    data = load_csv(ROSSI)
    with rossi_fed(tmp_path) as fed:
        runs = [
            attempt(fed, "stats.summary", {"table": TABLE, "variable": "age", "quantiles": q}, requester=r)
            for q, r in (([0.5], "a"), ([0.51], "b"), ([0.505], "a"), ([0.495], "b"))
        ]
    assert not small_bins(summary_points(runs), data["age"])
