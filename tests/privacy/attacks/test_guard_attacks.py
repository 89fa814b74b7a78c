"""Family 3: breadth of the differencing guard (collusion, partitions, id-free files, refusals as oracle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attack_kit import (
    GENDER_MISSING,
    GLUC_MISSING,
    TARGET_TSC,
    attempt,
    exact,
    federation,
    make_site,
    planted_frame,
    recovers,
)

from phds.analyses.testing import Federation, FederationRun

TABLE = {"dataset": "cnsim"}


def char(
    fed: Federation, cohorts: list[dict[str, Any]], numeric: list[str] | None = None, **kw: Any
) -> FederationRun:
    params = {
        "cohorts": [{"table": TABLE, **c} for c in cohorts],
        "numeric": numeric or ["LAB_TRIG"],
        "quantiles": False,
    }
    return attempt(fed, "stats.characterisation", params, **kw)


def cohort_n(run: FederationRun, label: str) -> int | None:
    if run.result is None:
        return None
    pooled = run.result["n"].get(label, {}).get("pooled", {})
    return int(pooled["lower"]) if pooled.get("exact") else None


def cohort_sum(run: FederationRun, label: str, variable: str) -> float | None:
    if run.result is None:
        return None
    for var in run.result["variables"]:
        if var["variable"] == variable:
            pooled = var["by_cohort"].get(label, {}).get("pooled", {})
            if pooled.get("n") is not None and pooled.get("mean") is not None:
                return float(pooled["n"]) * float(pooled["mean"])
    return None


def differ(a: FederationRun, la: str, b: FederationRun, lb: str, var: str = "LAB_TSC") -> tuple[Any, Any]:
    na, nb = cohort_n(a, la), cohort_n(b, lb)
    sa, sb = cohort_sum(a, la, var), cohort_sum(b, lb, var)
    dn = na - nb if na is not None and nb is not None else None
    ds = sa - sb if sa is not None and sb is not None else None
    return dn, ds


def test_two_colluding_organisations(fed_one: Federation) -> None:
    """Organisation a asks for 'all', b for 'DIS_AMI = 0': Δn = 1 and Δsum = target's TSC."""
    a = char(fed_one, [{"label": "x"}], ["LAB_TSC"], requester="a")
    b = char(fed_one, [{"label": "x", "where": {"DIS_AMI": 0}}], ["LAB_TSC"], requester="b")
    dn, ds = differ(a, "x", b, "x")
    assert not (dn == 1 and recovers(ds, TARGET_TSC)), (dn, ds)
    assert dn != 1, dn


def test_colluding_organisations_of_other_categories(fed_one: Federation) -> None:
    """Same tracker by an academic and an industry organisation through different analyses (mean_variance vs
    a Table 1 cohort)."""
    a = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_TSC"}, requester="uni")
    b = char(
        fed_one,
        [{"label": "x", "where": {"DIS_AMI": 0}}],
        ["LAB_TSC"],
        requester="pharma",
        category="industry",
    )
    na = a.result["n"] if a.result else None
    nb_sum = cohort_sum(b, "x", "LAB_TSC")
    var_n = None
    if b.result:
        for var in b.result["variables"]:
            if var["variable"] == "LAB_TSC":
                var_n = var["by_cohort"]["x"]["pooled"].get("n")
    dn = na - var_n if na is not None and var_n is not None else None
    ds = a.result["n"] * a.result["mean"] - nb_sum if a.result and nb_sum is not None else None
    assert not (dn == 1 and recovers(ds, TARGET_TSC)), (dn, ds)


def test_cohort_and_its_partition(fed_one: Federation) -> None:
    """Cohorts GENDER = 0 and GENDER = 1 in one study, 'all' in another: all − (g0 + g1) = the 2 patients with
    GENDER missing."""
    parts = char(fed_one, [{"label": "g0", "where": {"GENDER": 0}}, {"label": "g1", "where": {"GENDER": 1}}])
    total = char(fed_one, [{"label": "all"}])
    n0, n1, na = cohort_n(parts, "g0"), cohort_n(parts, "g1"), cohort_n(total, "all")
    estimate = na - n0 - n1 if None not in (n0, n1, na) else None  # type: ignore[operator]
    assert estimate != GENDER_MISSING, (n0, n1, na)


def test_partition_spread_over_three_studies_and_two_organisations(fed_one: Federation) -> None:
    """The partition tracker in three studies by two organisations (no single study holds two of the sets)."""
    g0 = char(fed_one, [{"label": "c", "where": {"GENDER": 0}}], requester="a")
    g1 = char(fed_one, [{"label": "c", "where": {"GENDER": 1}}], requester="b")
    al = char(fed_one, [{"label": "c"}], requester="a")
    n0, n1, na = cohort_n(g0, "c"), cohort_n(g1, "c"), cohort_n(al, "c")
    estimate = na - n0 - n1 if None not in (n0, n1, na) else None  # type: ignore[operator]
    assert estimate != GENDER_MISSING, (n0, n1, na)


def test_tabular_file_without_ids(tmp_path: Path) -> None:
    """A CSV with no id column at all: the node's row identity must still catch the 'all' vs 'DIS_AMI = 0'
    tracker."""
    site = make_site(tmp_path, planted_frame(), "noids.csv", index_column=False)
    with federation(tmp_path, {"site1": site}) as fed:
        a = char(fed, [{"label": "x"}], ["LAB_TSC"])
        b = char(fed, [{"label": "x", "where": {"DIS_AMI": 0}}], ["LAB_TSC"])
    dn, ds = differ(a, "x", b, "x")
    assert not (dn == 1 and recovers(ds, TARGET_TSC)), (dn, ds)
    assert dn != 1, dn


def test_cross_analysis_table_total_vs_cohort(fed_one: Federation) -> None:
    """A one-way table's exact total minus a Table 1 cohort 'DIS_AMI = 0': 1 (the target)."""
    t = attempt(fed_one, "stats.table", {"table": TABLE, "rows": "DIS_DIAB"})
    c = char(fed_one, [{"label": "x", "where": {"DIS_AMI": 0}}])
    total = exact(t.result["totals_by_hospital"]["site1"]) if t.result else None
    n = cohort_n(c, "x")
    estimate = total - n if total is not None and n is not None else None
    assert estimate != 1, (total, n)


def test_glm_complete_cases_vs_mean(fed_one: Federation) -> None:
    """mean_variance(LAB_TSC) by one organisation, GLM LAB_TSC ~ LAB_GLUC_ADJUSTED by another: n's differ by
    the 3 patients missing GLUC, and sum_y differs by their total TSC."""
    a = attempt(fed_one, "stats.mean_variance", {"dataset": "cnsim", "variable": "LAB_TSC"}, requester="a")
    b = attempt(
        fed_one, "stats.glm", {"table": TABLE, "formula": "LAB_TSC ~ LAB_GLUC_ADJUSTED"}, requester="b"
    )
    n_b = None
    for p in b.releases.get("site1", []):
        agg = p.get("values", {}).get("glm")
        if agg:
            n_b = exact(agg["n_obs"])
    dn = a.result["n"] - n_b if a.result and n_b is not None else None
    assert dn != GLUC_MISSING, dn


def test_direct_small_cohort(fed_one: Federation) -> None:
    """A cohort that is the target alone (PM_BMI_CATEGORICAL = 4): its mean is the target's TSC."""
    run = char(fed_one, [{"label": "x", "where": {"PM_BMI_CATEGORICAL": 4}}], ["LAB_TSC"])
    estimate = cohort_sum(run, "x", "LAB_TSC")
    assert not recovers(estimate, TARGET_TSC), estimate


def _ami_site(tmp_path: Path, cases: int, name: str) -> Any:
    frame = planted_frame()
    frame["DIS_AMI"] = 0
    frame.loc[0 : cases - 1, "DIS_AMI"] = 1
    return make_site(tmp_path, frame, name)


def test_refusal_is_not_an_oracle_for_small_differences(tmp_path: Path) -> None:
    """Refusals as an oracle: 'all' then 'DIS_AMI = 0'. A release with Δn in 1..4 is a leak; and the guard's
    secret band in [k, 2k) must also refuse some differences ≥ k, or a refusal itself says "1 to 4 differ".
    Δ = 5 over several fresh nodes: P(all released | band uniform) = 5⁻⁶."""
    for cases in (1, 3):
        site = _ami_site(tmp_path, cases, f"ami{cases}.csv")
        with federation(tmp_path / f"f{cases}", {"site1": site}) as fed:
            a, b = char(fed, [{"label": "x"}]), char(fed, [{"label": "x", "where": {"DIS_AMI": 0}}])
        na, nb = cohort_n(a, "x"), cohort_n(b, "x")
        assert na is None or nb is None or na - nb != cases, (cases, na, nb)
    refused = []
    for trial in range(6):
        site = _ami_site(tmp_path, 5, f"ami5-{trial}.csv")
        with federation(tmp_path / f"g{trial}", {"site1": site}) as fed:
            char(fed, [{"label": "x"}])
            b = char(fed, [{"label": "x", "where": {"DIS_AMI": 0}}])
        refused.append(cohort_n(b, "x") is None)
    assert any(refused), "every Δ = 5 was released: a refusal would certify a difference of 1 to 4"
