"""``benchmarking.indicators`` against references nobody here wrote: statsmodels' pooled GLM for the expected
values, statsmodels' exact Poisson and Clopper–Pearson intervals, scipy's normal quantiles for the funnel.

The hospitals are the simulator's five case mixes (real node runtimes, real gates); every hospital's policy
allows names here, so each row can be matched to its hospital (naming is tested in
test_benchmarking_naming.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from phds.analyses.benchmarking_stats import proportion_limits, ratio_limits
from phds.analyses.testing import Federation, everything_auto
from phds.node.policy import BenchmarkingSettings

from .benchmark_support import ADMISSION_RISKS, BINARY, LOS, admissions_csv, pooled_rows, simulate

NAMED = everything_auto().model_copy(update={"benchmarking": BenchmarkingSettings(allow_names=True)})


@pytest.fixture(scope="module")
def cdms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return simulate(tmp_path_factory.mktemp("bench-sim"))


def _run(make_hospital: Any, nodes: dict[str, dict[str, Any]], params: dict[str, Any]) -> tuple[Any, Any]:
    hospitals = [make_hospital(name, policy=NAMED, **where) for name, where in nodes.items()]
    run = Federation(runtimes={h.name: h.runtime for h in hospitals}).run("benchmarking.indicators", params)
    assert run.result is not None, (run.error, run.refused)
    return run, {h.name: h.data for h in hospitals}


def test_binary_indicator_equals_a_pooled_statsmodels_glm(cdms: dict[str, Path], make_hospital: Any) -> None:
    nodes = {slug: {"omop": {"cdm": f"duckdb:///{path}"}} for slug, path in cdms.items()}
    run, data = _run(make_hospital, nodes, BINARY)
    result = run.result
    assert result["names_disclosed"] is True
    rows = {r["hospital"]: r for r in result["rows"]}
    assert len(rows) >= 4, run.refused  # a hospital may be refused by a small cell; then it has no row
    pooled = pooled_rows({h: data[h] for h in rows}, BINARY["table"], ["admitted", *ADMISSION_RISKS])
    fit = smf.glm("admitted ~ " + " + ".join(ADMISSION_RISKS), pooled, family=sm.families.Binomial()).fit()
    pooled["mu"] = fit.fittedvalues
    for hospital, part in pooled.groupby("hospital"):
        row = rows[str(hospital)]
        observed = int(part["admitted"].sum())
        assert row["n"] == len(part) and row["observed"] == observed
        assert row["expected"] == pytest.approx(float(part["mu"].sum()), rel=1e-9)
        assert row["ratio"] == pytest.approx(observed / row["expected"], rel=1e-12)
        low, high = confint_poisson(observed, row["expected"], method="exact-c")
        assert row["ratio_ci"] == pytest.approx([float(low), float(high)], rel=1e-9)
        assert row["crude_ci"] == pytest.approx(list(proportion_confint(observed, len(part), 0.05, "beta")))
    coefficients = [c["estimate"] for c in result["model"]["coefficients"]]
    assert coefficients == pytest.approx(list(fit.params), rel=1e-7)
    # With an intercept, the logit score equation makes the network's O and E equal.
    assert result["expected_total"] == pytest.approx(result["observed_total"], rel=1e-8)
    # The generator plants no hospital effect: no hospital is an outlier at 99.8%.
    assert not [r for r in result["rows"] if "99.8%" in r["flag"]]


def test_length_of_stay_equals_a_pooled_quasi_poisson_glm(
    cdms: dict[str, Path], make_hospital: Any, tmp_path: Path
) -> None:
    csvs = {slug: admissions_csv(path, tmp_path / f"{slug}-admissions.csv") for slug, path in cdms.items()}
    nodes = {slug: {"tabular": {"admissions": csv}} for slug, csv in csvs.items()}
    run, data = _run(make_hospital, nodes, LOS)
    result = run.result
    rows = {r["hospital"]: r for r in result["rows"]}
    pooled = pooled_rows({h: data[h] for h in rows}, LOS["table"], ["los_days", *LOS["risk_factors"]])
    fit = smf.glm("los_days ~ age_years + male + infant", pooled, family=sm.families.Poisson()).fit()
    phi = float(fit.pearson_chi2 / fit.df_resid)
    assert phi > 1  # lengths of stay are overdispersed: the quasi-Poisson limits widen
    assert result["dispersion"] == pytest.approx(phi, rel=1e-8)
    pooled["mu"] = fit.fittedvalues
    for hospital, part in pooled.groupby("hospital"):
        row = rows[str(hospital)]
        observed = float(part["los_days"].sum())
        assert row["observed"] == pytest.approx(observed) and row["n"] == len(part)
        assert row["expected"] == pytest.approx(float(part["mu"].sum()), rel=1e-9)
        low, high = confint_poisson(observed / phi, row["expected"] / phi, method="exact-c")
        assert row["ratio_ci"] == pytest.approx([float(low), float(high)], rel=1e-9)
        mean, sem = part["los_days"].mean(), stats.sem(part["los_days"])
        t = stats.t.ppf(0.975, len(part) - 1)
        assert row["crude_ci"] == pytest.approx([mean - t * sem, mean + t * sem], rel=1e-9)


@pytest.mark.parametrize("expected", [2.0, 25.0, 400.0])
def test_ratio_limits_are_spiegelhalters_normal_limits(expected: float) -> None:
    for coverage, p in ((0.95, 0.975), (0.998, 0.999)):
        z = stats.norm.ppf(p)  # 1.96 and 3.09
        low, high = ratio_limits(expected, coverage)
        assert high == pytest.approx(1 + z / math.sqrt(expected))
        assert low == pytest.approx(max(0.0, 1 - z / math.sqrt(expected)))


def test_exact_binomial_funnel_limits_narrow_and_approach_the_normal_ones() -> None:
    p0 = 0.09
    sizes = [20, 50, 200, 1000, 20_000]
    limits = [proportion_limits(p0, n, 0.998) for n in sizes]
    widths = [high - low for low, high in limits]
    assert widths == sorted(widths, reverse=True)
    for n, (low, high) in zip(sizes, limits, strict=True):
        # the interpolated limit holds the tail probability: P(X ≤ ⌊n·low⌋ − 1) < 0.001 ≤ P(X ≤ ⌈n·low⌉)
        assert stats.binom.cdf(math.ceil(n * low), n, p0) >= 0.001 - 1e-12
        assert stats.binom.cdf(math.floor(n * high) - 1, n, p0) <= 0.999 + 1e-12
    z, n = stats.norm.ppf(0.999), sizes[-1]
    normal = p0 + np.array([-z, z]) * math.sqrt(p0 * (1 - p0) / n)
    assert list(limits[-1]) == pytest.approx(list(normal), abs=2 / n)
