"""Designs that isolate fewer than k rows are refused; the CNSIM utility models pass at every site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.analyses.glm_design import two_levels
from phds.errors import ConfigError, DisclosureRefused
from phds.privacy.design_checks import (
    DesignLimits,
    check_design,
    check_irls_point,
    check_risk_sets,
    check_separation,
    effective_sample_size,
    hat_values,
)
from phds.privacy.disclosure import check_glm_saturation

SITES = (1, 2, 3)
UTILITY = [
    ("DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL", "binomial"),
    ("LAB_HDL ~ LAB_TSC + GENDER + PM_BMI_CATEGORICAL", "gaussian"),
    ("LAB_HDL ~ LAB_TSC + GENDER + C(PM_BMI_CATEGORICAL)", "gaussian"),
    ("LAB_TRIG ~ GENDER + PM_BMI_CONTINUOUS", "gaussian"),
]
VARIABLES = [
    "LAB_TSC",
    "LAB_TRIG",
    "LAB_HDL",
    "PM_BMI_CONTINUOUS",
    "PM_BMI_CATEGORICAL",
    "GENDER",
    "DIS_DIAB",
]


def cnsim(shared_data: Path, site: int, variables: list[str]) -> pd.DataFrame:
    """One CNSIM site's complete cases on *variables* (headers carry trailing spaces)."""
    df = pd.read_csv(shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{site}.csv", index_col=0)
    return df.rename(columns=lambda c: c.strip())[variables].dropna().reset_index(drop=True)


def design(df: pd.DataFrame, formula: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    mm = model_matrix(formula, df)
    return (
        mm.rhs.to_numpy(dtype=float),
        [str(c) for c in mm.rhs.columns],
        mm.lhs.to_numpy(dtype=float).ravel(),
    )


def unique_value(values: pd.Series) -> float:
    """A value held by exactly one patient: what a requester who knows that patient would target."""
    return float(values.value_counts().loc[lambda c: c == 1].index[0])


def irls_points(x: np.ndarray, y: np.ndarray, steps: int = 25) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(η, working weights) at each β of a logistic IRLS from statsmodels' start, as the hub proposes them."""
    mu = (y + 0.5) / 2
    eta = np.log(mu / (1 - mu))
    for _ in range(steps):
        w = mu * (1 - mu)
        z = eta + (y - mu) / w
        beta = np.linalg.lstsq(np.sqrt(w)[:, None] * x, np.sqrt(w) * z, rcond=None)[0]
        eta = x @ beta
        mu = np.clip(1 / (1 + np.exp(-eta)), 1e-300, 1 - 1e-16)
        yield eta, mu * (1 - mu)


# -- utility: legitimate models pass everywhere -----------------------------------------------------


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize(("formula", "family"), UTILITY)
def test_cnsim_utility_models_pass_at_every_site(
    shared_data: Path, site: int, formula: str, family: str
) -> None:
    x, columns, y = design(cnsim(shared_data, site, VARIABLES), formula)
    limits = DesignLimits()
    check_design(x, columns, y, None, limits, outcome=formula.split("~")[0].strip())
    assert hat_values(x).max() < 0.05 < limits.leverage_limit  # measured: 0.007–0.022
    if family == "binomial":
        for eta, ww in irls_points(x, y):
            check_irls_point(eta, ww, x, limits, columns=columns)
        check_separation(1 / (1 + np.exp(-eta)))
        assert hat_values(np.sqrt(ww)[:, None] * x).max() < 0.15  # measured at the MLE: 0.08–0.12
    else:
        check_irls_point(None, np.ones(len(y)), x, limits, columns=columns)


def test_hat_values_match_the_explicit_hat_matrix_and_ignore_aliased_columns() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(40), rng.normal(size=40), rng.normal(size=40)])
    h = np.diag(x @ np.linalg.solve(x.T @ x, x.T))
    np.testing.assert_allclose(hat_values(x), h, atol=1e-12)
    np.testing.assert_allclose(hat_values(np.column_stack([x, 2 * x[:, 1]])), h, atol=1e-10)


def test_limits_validate_and_derive_from_k() -> None:
    assert DesignLimits().leverage_limit == pytest.approx(1 / 4.5)
    assert DesignLimits(k=11).leverage_limit == pytest.approx(1 / 10.5)
    assert DesignLimits(k=11).ess_limit == 11
    for bad in ({"k": 3}, {"max_leverage": 0.3}, {"min_ess": 2.0}, {"eta_bound": 40.0}, {"max_levels": 1}):
        with pytest.raises(ConfigError):
            DesignLimits(**bad)  # type: ignore[arg-type]


# -- attacks: GLM arithmetic that singles out a row --------------------------------------------------


@pytest.mark.parametrize("site", SITES)
def test_attack_bump_covariate_is_refused(shared_data: Path, site: int) -> None:
    """Attack: I(exp(-1e6*(x-v)**2)) around one patient's known LAB_HDL: its coefficient is that row's."""
    df = cnsim(shared_data, site, VARIABLES)
    v = unique_value(df["LAB_HDL"])
    x, columns, y = design(df, f"LAB_TRIG ~ GENDER + LAB_HDL + I(np.exp(-1e6*(LAB_HDL-{v})**2))")
    n = len(y)
    check_glm_saturation(len(columns), n)  # passes nfilter.glm, nfilter.tab and N ≥ k
    with pytest.raises(DisclosureRefused) as info:
        check_design(x, columns, y, None, outcome="LAB_TRIG")
    assert columns[-1] in info.value.message
    assert str(n) not in info.value.message


@pytest.mark.parametrize("site", SITES)
def test_attack_three_valued_bump_passes_nfilter_tab_but_is_refused(shared_data: Path, site: int) -> None:
    """Attack: (x > v) + (x >= v) has three values, so DataSHIELD's binary-level check never sees it."""
    df = cnsim(shared_data, site, VARIABLES)
    v = unique_value(df["LAB_HDL"])
    x, columns, y = design(df, f"LAB_TRIG ~ GENDER + {{(LAB_HDL > {v})*1 + (LAB_HDL >= {v})*1}}")
    assert two_levels(x[:, -1]) is None  # not two-valued: the gate's nfilter.tab check never sees it
    with pytest.raises(DisclosureRefused, match="treated as a count") as info:
        check_design(x, columns, y, None, outcome="LAB_TRIG")
    assert columns[-1] in info.value.message


@pytest.mark.parametrize("site", SITES)
def test_attack_weight_concentrated_on_one_row_is_refused(shared_data: Path, site: int) -> None:
    """Attack: weights 1 + 1e6·I(LAB_HDL == v) make XᵀWX and XᵀWy that patient's values."""
    df = cnsim(shared_data, site, VARIABLES)
    v = unique_value(df["LAB_HDL"])
    x, columns, y = design(df, "LAB_TRIG ~ GENDER + PM_BMI_CONTINUOUS")
    weights = 1 + 1e6 * (df["LAB_HDL"].to_numpy() == v)
    with pytest.raises(DisclosureRefused, match="prior weights"):
        check_design(x, columns, y, weights, outcome="LAB_TRIG")
    with pytest.raises(DisclosureRefused, match="prior weights"):  # zero elsewhere: one row left
        check_design(x, columns, y, (df["LAB_HDL"].to_numpy() == v) * 1.0, outcome="LAB_TRIG")


@pytest.mark.parametrize("site", SITES)
def test_attack_outcome_zero_but_for_one_row_is_refused(shared_data: Path, site: int) -> None:
    """Attack: outcome LAB_TRIG·I(LAB_HDL == v): Σy is that patient's triglycerides."""
    df = cnsim(shared_data, site, VARIABLES)
    v = unique_value(df["LAB_HDL"])
    x, columns, _ = design(df, "LAB_TRIG ~ GENDER + PM_BMI_CONTINUOUS")
    y = df["LAB_TRIG"].to_numpy() * (df["LAB_HDL"].to_numpy() == v)
    with pytest.raises(DisclosureRefused, match="'I\\(LAB_TRIG\\)'"):
        check_design(x, columns, y, None, outcome="I(LAB_TRIG)")


@pytest.mark.parametrize("site", SITES)
def test_attack_exp_100x_approximating_a_maximum_is_refused(shared_data: Path, site: int) -> None:
    """Attack: exp(100·LAB_HDL) is ≈ 0 but for the maximum, so its sums are the maximum's row."""
    df = cnsim(shared_data, site, VARIABLES)
    x, columns, y = design(df, "LAB_TRIG ~ GENDER + I(np.exp(100*LAB_HDL))")
    with pytest.raises(DisclosureRefused) as info:
        check_design(x, columns, y, None, outcome="LAB_TRIG")
    assert columns[-1] in info.value.message


@pytest.mark.parametrize("site", SITES)
def test_attack_perfect_separation_is_refused_during_irls(shared_data: Path, site: int) -> None:
    """Attack: I(LAB_HDL > median) ~ LAB_HDL is separated; β diverges and each step sharpens the cut."""
    df = cnsim(shared_data, site, VARIABLES)
    x, columns, _ = design(df, "LAB_TRIG ~ LAB_HDL")
    y = (df["LAB_HDL"].to_numpy() > df["LAB_HDL"].median()) * 1.0
    check_design(x, columns, y, None, outcome="separated")  # the design itself is fine

    def fit() -> None:
        for eta, ww in irls_points(x, y):
            check_irls_point(eta, ww, x, columns=columns)
            check_separation(1 / (1 + np.exp(-eta)), outcome="separated")

    with pytest.raises(DisclosureRefused, match="separat"):
        fit()


# -- attacks: a malicious hub's β ---------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES)
def test_attack_hub_beta_concentrating_logistic_weights_is_refused(shared_data: Path, site: int) -> None:
    """Attack: β with η = M(x − v) puts μ(1 − μ) on the rows at v: the step's sums are theirs."""
    df = cnsim(shared_data, site, VARIABLES)
    x, columns, _ = design(df, "DIS_DIAB ~ LAB_HDL")
    v = unique_value(df["LAB_HDL"])
    eta = x @ np.array([-1e4 * v, 1e4])
    mu = 1 / (1 + np.exp(-np.clip(eta, -700, 700)))
    with pytest.raises(DisclosureRefused, match="logit clamp"):
        check_irls_point(eta, mu * (1 - mu), x, columns=columns)
    # the sharpest such β within |η| ≤ 30 still spreads the weights over dozens of rows
    m = 29.9 / np.abs(df["LAB_HDL"].to_numpy() - v).max()
    eta = x @ np.array([-m * v, m])
    mu = 1 / (1 + np.exp(-eta))
    check_irls_point(eta, mu * (1 - mu), x, columns=columns)
    assert effective_sample_size(mu * (1 - mu)) > 50


@pytest.mark.parametrize("site", SITES)
def test_attack_hub_beta_extracting_the_maximum_through_poisson_weights_is_refused(
    shared_data: Path, site: int
) -> None:
    """Attack: Poisson weights exp(η) with η = c·(x − max) within |η| ≤ 30 sit on the largest rows."""
    df = cnsim(shared_data, site, VARIABLES)
    x, columns, _ = design(df, "DIS_DIAB ~ LAB_HDL")
    hdl = df["LAB_HDL"].to_numpy()
    c = 29.9 / (hdl.max() - hdl.min())
    eta = x @ np.array([-c * hdl.max(), c])
    assert np.abs(eta).max() <= 30
    with pytest.raises(DisclosureRefused, match="proposed coefficients"):
        check_irls_point(eta, np.exp(eta), x, columns=columns)


def test_cox_risk_sets_pass_at_the_mle_and_are_refused_at_a_steering_beta(shared_data: Path) -> None:
    """Attack: a Cox β scaled up makes exp(xβ) of one member dominate each risk set (its maximum)."""
    from lifelines import CoxPHFitter

    covs = ["age", "tsize", "pnodes", "progrec", "estrec"]
    df = pd.read_csv(shared_data / "survival" / "lifelines" / "gbsg2.csv")
    beta = CoxPHFitter().fit(df[["time", "cens", *covs]], "time", "cens").params_.to_numpy()
    x, t, e = df[covs].to_numpy(float), df["time"].to_numpy(), df["cens"].to_numpy() == 1

    def risk_sets(b: np.ndarray) -> list[np.ndarray]:
        lp = x @ b
        w = np.exp(lp - lp.max())  # ESS is scale-free; the node may scale to avoid overflow
        return [w[t >= tau] for tau in np.unique(t[e])]

    check_risk_sets(risk_sets(beta))
    with pytest.raises(DisclosureRefused, match="risk set"):
        check_risk_sets(risk_sets(20 * beta))


# -- properties ---------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(20, 80),
    isolated=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_a_dummy_isolating_fewer_than_k_rows_is_refused_without_naming_a_count(
    n: int, isolated: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    dummy = np.zeros(n)
    dummy[rng.choice(n, isolated, replace=False)] = 1.0
    x = np.column_stack([np.ones(n), rng.normal(size=n), dummy])
    y = rng.normal(size=n)
    with pytest.raises(DisclosureRefused) as info:
        check_design(x, ["Intercept", "z", "bump"], y, None)
    assert not re.search(r"\d", info.value.message)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=50))
def test_ess_lies_between_one_and_n(weights: list[float]) -> None:
    ess = effective_sample_size(np.array(weights))
    assert ess == 0 or 1 - 1e-9 <= ess <= len(weights) + 1e-9
