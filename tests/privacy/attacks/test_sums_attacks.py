"""Family 2: sums and summaries by differencing (n, sum, sum of squares; missing counts)."""

from __future__ import annotations

import math
from typing import Any

from attack_kit import (
    CVA_CASES,
    GLUC_MISSING,
    TARGET_HDL,
    TARGET_TSC,
    attempt,
    exact,
    recovers,
)

from phds.analyses.testing import Federation, FederationRun

TABLE = {"dataset": "cnsim"}


def moments(run: FederationRun, key: str) -> list[tuple[int, dict[str, Any]]]:
    """(n, sums) of every exactly released moments aggregate named *key* (e.g. 'moments')."""
    out = []
    for payloads in run.releases.values():
        for p in payloads:
            agg = p.get("values", {}).get(key)
            if agg and agg.get("values") is not None and exact(agg["n"]) is not None:
                out.append((exact(agg["n"]), dict(agg["values"])))
    return out


def cohort_stats(run: FederationRun, label: str, variable: str) -> tuple[int, float, float] | None:
    """(n, mean, sd) of *variable* in cohort *label* from a characterisation result."""
    if run.result is None:
        return None
    for var in run.result["variables"]:
        if var["variable"] == variable:
            pooled = var["by_cohort"].get(label, {}).get("pooled", {})
            if pooled.get("n") is not None and pooled.get("mean") is not None:
                return int(pooled["n"]), float(pooled["mean"]), float(pooled.get("sd") or 0.0)
    return None


def char(fed: Federation, cohorts: list[dict[str, Any]], **kw: Any) -> FederationRun:
    params = {"cohorts": [{"table": TABLE, **c} for c in cohorts], "quantiles": False, **kw}
    return attempt(fed, "stats.characterisation", params)


def test_mean_of_binary_column_is_a_count(fed_one: Federation) -> None:
    """mean_variance of a 0/1 column: its sum (or n × mean) is the count of cases (3)."""
    run = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "DIS_CVA"})
    sums = [v["sum"] for _, v in moments(run, "moments") if "sum" in v]
    if run.result is not None and run.result.get("mean") is not None:
        sums.append(run.result["mean"] * run.result["n"])
    assert not any(recovers(s, CVA_CASES) for s in sums), sums


def test_summary_of_binary_column_is_a_count(fed_one: Federation) -> None:
    """stats.summary of a 0/1 column: sum and quantile bins count the 3 cases."""
    run = attempt(fed_one, "stats.summary", {"table": TABLE, "variable": "DIS_CVA", "quantiles": [0.5]})
    sums = [v["sum"] for _, v in moments(run, "moments") if "sum" in v]
    if run.result is not None and run.result.get("mean") is not None:
        sums.append(run.result["mean"] * run.result["n"])
    assert not any(recovers(s, CVA_CASES) for s in sums), sums


def test_characterisation_numeric_binary_column(fed_one: Federation) -> None:
    """A Table 1 'numeric' row for a 0/1 column: n × mean = number of cases."""
    run = char(fed_one, [{"label": "all"}], numeric=["DIS_CVA"])
    stats = cohort_stats(run, "all", "DIS_CVA")
    estimate = stats[0] * stats[1] if stats else None
    assert not recovers(estimate, CVA_CASES), estimate


def test_two_cohorts_differing_by_target(fed_one: Federation) -> None:
    """Cohorts 'all' and 'DIS_AMI = 0' differ by the target alone: Δn = 1, Δsum = the target's TSC."""
    run = char(fed_one, [{"label": "all"}, {"label": "noami", "where": {"DIS_AMI": 0}}], numeric=["LAB_TSC"])
    a, b = cohort_stats(run, "all", "LAB_TSC"), cohort_stats(run, "noami", "LAB_TSC")
    estimate = a[0] * a[1] - b[0] * b[1] if a and b and a[0] - b[0] == 1 else None
    assert not recovers(estimate, TARGET_TSC), (a, b)


def test_two_studies_differing_by_target(fed_one: Federation) -> None:
    """The same difference over two studies: the guard must remember the first study's cohort."""
    first = char(fed_one, [{"label": "all"}], numeric=["LAB_TSC"])
    second = char(fed_one, [{"label": "noami", "where": {"DIS_AMI": 0}}], numeric=["LAB_TSC"])
    a, b = cohort_stats(first, "all", "LAB_TSC"), cohort_stats(second, "noami", "LAB_TSC")
    estimate = a[0] * a[1] - b[0] * b[1] if a and b and a[0] - b[0] == 1 else None
    assert not recovers(estimate, TARGET_TSC), (a, b)


def test_sum_of_squares_from_mean_and_sd(fed_one: Federation) -> None:
    """Cohort GENDER = 1 vs GENDER = 1 & DIS_AMI = 0: from (n, mean, sd) each, Σx² = (n−1)sd² + n·mean²;
    √(ΔΣx²) is the target's HDL (9.87)."""
    run = char(
        fed_one,
        [{"label": "g1", "where": {"GENDER": 1}}, {"label": "g1b", "where": {"GENDER": 1, "DIS_AMI": 0}}],
        numeric=["LAB_HDL"],
    )
    a, b = cohort_stats(run, "g1", "LAB_HDL"), cohort_stats(run, "g1b", "LAB_HDL")
    estimate = None
    if a and b and a[0] - b[0] == 1:
        sq = [(n - 1) * sd * sd + n * m * m for n, m, sd in (a, b)]
        estimate = math.sqrt(max(sq[0] - sq[1], 0.0))
    assert not recovers(estimate, TARGET_HDL, 1e-6), (a, b)


def test_suppressed_missing_from_row_total(fed_one: Federation) -> None:
    """A missing count of 3 is suppressed, but rows (a table total) − n(LAB_GLUC) recovers it."""
    table = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "DIS_DIAB"})
    mv = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_GLUC_ADJUSTED"})
    total = exact(table.result["totals_by_hospital"]["site1"]) if table.result else None
    n = mv.result["n"] if mv.result else None
    estimate = total - n if total is not None and n is not None else None
    assert estimate != GLUC_MISSING, (total, n)


def test_suppressed_missing_from_other_variable(fed_one: Federation) -> None:
    """n(LAB_TSC) − n(LAB_GLUC) on a file where only GLUC has missing values: the missing count exactly."""
    a = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_TSC"})
    b = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_GLUC_ADJUSTED"})
    estimate = a.result["n"] - b.result["n"] if a.result and b.result else None
    assert estimate != GLUC_MISSING, estimate


def test_missing_within_table_one(fed_one: Federation) -> None:
    """Table 1: cohort n − n of a numeric row = the suppressed missing count of that row."""
    run = char(fed_one, [{"label": "all"}], numeric=["LAB_GLUC_ADJUSTED"])
    stats = cohort_stats(run, "all", "LAB_GLUC_ADJUSTED")
    n_all = run.result["n"]["all"]["pooled"] if run.result else None
    estimate = None
    if stats and n_all and n_all.get("exact"):
        estimate = int(n_all["lower"]) - stats[0]
    assert estimate != GLUC_MISSING, estimate


def test_complete_cases_of_a_glm(fed_one: Federation) -> None:
    """GLM complete cases: n(LAB_TSC) − n_obs(LAB_TSC ~ LAB_GLUC_ADJUSTED) = 3, and the sums differ by those 3
    patients' TSC."""
    a = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_TSC"})
    b = attempt(fed_one, "stats.glm", {"table": TABLE, "formula": "LAB_TSC ~ LAB_GLUC_ADJUSTED"})
    n_b = None
    for p in b.releases.get("site1", []):
        agg = p.get("values", {}).get("glm")
        if agg:
            n_b = exact(agg["n_obs"])
            break
    estimate = a.result["n"] - n_b if a.result and n_b is not None else None
    assert estimate != GLUC_MISSING, estimate


def test_extreme_quantile_approximates_maximum(fed_one: Federation) -> None:
    """stats.summary at q = 0.999 bisects towards the largest value: it must not pin the target's 9.87."""
    run = attempt(
        fed_one, "stats.summary", {"table": TABLE, "variable": "LAB_HDL", "quantiles": [0.99, 0.999]}
    )
    estimates = [q.get("value") for q in (run.result or {}).get("quantiles", [])]
    assert not any(recovers(e, TARGET_HDL, 1e-3) for e in estimates), estimates
