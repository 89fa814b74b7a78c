"""The statistics' typed results from the real analyses on real data: numbers, frames, printed summaries."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from lifelines import CoxPHFitter
from scipy import stats

from phds.errors import InputError
from phds.sdk.results import GenericResult, StudyResult
from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
from phds.sdk.results_stats import CoxResult, GlmResult, KmResult
from phds.sdk.stats_methods import StatsMethods, table_spec

from .stats_support import GLM_FORMULA, finished_view, pooled_cnsim, results, rossi, sites

__all__ = ["results", "sites"]  # fixtures


@pytest.mark.parametrize(
    ("key", "cls"),
    [
        ("stats.glm", GlmResult),
        ("survival.cox", CoxResult),
        ("survival.km", KmResult),
        ("stats.summary", SummaryResult),
        ("stats.table", TableResult),
        ("stats.characterisation", CharacterisationResult),
    ],
)
def test_result_for_picks_the_typed_result_by_analysis(
    results: dict[str, StudyResult], key: str, cls: type
) -> None:
    assert type(results[key]) is cls
    assert results[key].attribution.answered == ("site1", "site2", "site3")


def test_an_unknown_analysis_is_still_a_generic_result() -> None:
    view = finished_view("stats.not_yet", {}, {"x": 1}, [])
    from phds.sdk.result_registry import result_for

    assert type(result_for(view)) is GenericResult


def test_glm_equals_statsmodels_and_prints_like_r(shared_data: Path, results: dict[str, StudyResult]) -> None:
    fit = results["stats.glm"]
    assert isinstance(fit, GlmResult)
    data = pooled_cnsim(shared_data)[["DIS_DIAB", "GENDER", "PM_BMI_CONTINUOUS", "LAB_HDL"]].dropna()
    ref = smf.glm(GLM_FORMULA, data, family=sm.families.Binomial()).fit()
    frame = fit.to_frame()
    assert list(frame.index) == [
        "Intercept",
        "GENDER",
        "PM_BMI_CONTINUOUS",
        "LAB_HDL",
        "GENDER:PM_BMI_CONTINUOUS",
    ]
    for term in frame.index:
        assert math.isclose(frame.loc[term, "estimate"], ref.params[term], rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(frame.loc[term, "std_error"], ref.bse[term], rel_tol=1e-6)
        assert math.isclose(frame.loc[term, "p_value"], ref.pvalues[term], rel_tol=1e-5)
        low, high = ref.conf_int().loc[term]
        assert math.isclose(frame.loc[term, "ci_lower"], low, rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(frame.loc[term, "ci_upper"], high, rel_tol=1e-6, abs_tol=1e-9)
    assert fit.params["LAB_HDL"] == frame.loc["LAB_HDL", "estimate"]
    text = fit.summary()
    assert "Estimate Std. Error    z value  Pr(>|z|)" in text
    hdl = next(line for line in text.splitlines() if line.startswith("LAB_HDL ")).split()
    assert hdl[1:4] == [
        f"{ref.params['LAB_HDL']:.5g}",
        f"{ref.bse['LAB_HDL']:.5g}",
        f"{ref.tvalues['LAB_HDL']:.5g}",
    ]
    assert hdl[4] == f"{ref.pvalues['LAB_HDL']:.3g}" and hdl[-1] == "***"
    assert f"Null deviance: {ref.null_deviance:.6g}  on {len(data) - 1} degrees of freedom" in text
    assert f"Residual deviance: {ref.deviance:.6g}  on {len(data) - 5} degrees of freedom" in text
    assert f"AIC: {ref.aic:.6g}" in text
    assert f"Number of Fisher Scoring iterations: {fit.raw['iterations']}" in text
    assert "(Dispersion parameter for binomial family taken to be 1)" in text
    assert text.splitlines()[-1].startswith("Number of Fisher")  # converged: no warning after it
    intercept_line = next(line for line in text.splitlines() if line.startswith("Intercept"))
    assert intercept_line.rstrip().endswith("***")  # p = 4e-14


def test_cox_equals_lifelines_stratified_by_hospital(
    shared_data: Path, results: dict[str, StudyResult]
) -> None:
    fit = results["survival.cox"]
    assert isinstance(fit, CoxResult)
    data = rossi(shared_data)[["week", "arrest", "fin", "age", "wexp"]].assign(
        site=lambda d: np.arange(len(d)) % 3
    )
    ref = CoxPHFitter().fit(data, "week", "arrest", strata=["site"])
    frame = fit.to_frame()
    assert list(frame.index) == ["fin", "age", "wexp"]
    for name in frame.index:
        assert math.isclose(frame.loc[name, "coef"], ref.params_[name], rel_tol=1e-6)
        assert math.isclose(frame.loc[name, "exp_coef"], math.exp(ref.params_[name]), rel_tol=1e-6)
        assert math.isclose(frame.loc[name, "se"], ref.standard_errors_[name], rel_tol=1e-5)
    assert fit.hazard_ratios["wexp"] == frame.loc["wexp", "exp_coef"]
    text = fit.summary()
    assert "n= 432, number of events= 114" in text
    assert "coef exp(coef)  se(coef)        z Pr(>|z|) lower .95 upper .95" in text  # R-like widths
    assert f"Log-likelihood: {ref.log_likelihood_:.6g}" in text
    assert f"Likelihood ratio test= {fit.lr_test['statistic']:.4g}  on 3 df" in text


def test_km_life_tables_at_risk_and_log_rank(shared_data: Path, results: dict[str, StudyResult]) -> None:
    km, by_fin = results["survival.km"], results["survival.km:group"]
    assert isinstance(km, KmResult) and isinstance(by_fin, KmResult)
    data = rossi(shared_data)
    assert list(km.curves) == ["all"]
    frame = km.to_frame()
    assert frame["events"].sum() == data["arrest"].sum()
    assert frame["censored"].sum() == (data["arrest"] == 0).sum()
    first = float(frame["start"].iloc[0])
    assert km.at_risk([first]).loc["all", first] == len(data)
    for start, at_risk in zip(frame["start"], frame["at_risk"], strict=True):
        assert km.at_risk([start]).loc["all", start] == at_risk
    assert set(km.by_hospital) == {"site1", "site2", "site3"}
    assert sum(int(km.to_frame("site2")["events"].sum()) for _ in [0]) == int(data.iloc[1::3]["arrest"].sum())
    assert sorted(by_fin.curves) == ["0", "1"]
    for level in ("0", "1"):
        assert by_fin.at_risk([first]).loc[level, first] == int((data["fin"] == int(level)).sum())
    text = by_fin.summary()
    assert "fin = 0:" in text and "fin = 1:" in text
    assert (
        f"Log-rank test between fin: chi-squared = {by_fin.raw['logrank']['statistic']:.4g} on 1 df" in text
    )


def test_summary_frame_quantiles_and_text(shared_data: Path, results: dict[str, StudyResult]) -> None:
    summary = results["stats.summary"]
    assert isinstance(summary, SummaryResult)
    column = pooled_cnsim(shared_data)["LAB_HDL"]
    frame = summary.to_frame()
    assert list(frame["hospital"]) == ["site1", "site2", "site3", "network total"]
    total = frame.iloc[-1]
    assert total["n"] == column.notna().sum() and total["missing"] == str(column.isna().sum())
    assert math.isclose(total["sd"], float(column.std()), rel_tol=1e-9)
    quantiles = summary.quantiles()
    for row in quantiles.itertuples():
        exact = float(np.quantile(column.dropna(), row.q, method="inverted_cdf"))
        assert row.lower < exact <= row.upper
    assert f"mean = {column.mean():.6g}, SD = {column.std():.6g}" in summary.summary()


def test_table_equals_the_pooled_crosstab_and_scipy_chi_square(
    shared_data: Path, results: dict[str, StudyResult]
) -> None:
    table = results["stats.table"]
    assert isinstance(table, TableResult)
    data = pooled_cnsim(shared_data)
    expected = pd.crosstab(data["PM_BMI_CATEGORICAL"].fillna(-1).astype(int), data["GENDER"])
    counts = table.counts()
    for level in ("1", "2", "3"):
        for sex in ("0", "1"):
            assert counts.loc[level, sex] == expected.loc[int(level), int(sex)]
            assert table.to_frame().loc[level, sex] == str(expected.loc[int(level), int(sex)])
    assert counts.loc["NA", "1"] == int(data.loc[data["GENDER"] == 1, "PM_BMI_CATEGORICAL"].isna().sum())
    chi2, p, df, _ = stats.chi2_contingency(expected.loc[[1, 2, 3]].to_numpy(), correction=False)
    text = table.summary()
    assert f"Pearson's chi-squared = {chi2:.6g}, df = {df}" in text
    assert table.chi_square is not None and math.isclose(table.chi_square["p_value"], p, rel_tol=1e-9)
    site1 = table.counts("site1")
    assert site1.loc["2", "0"] == int(
        ((data.index < 2163) & (data["PM_BMI_CATEGORICAL"] == 2) & (data["GENDER"] == 0)).sum()
    )
    with pytest.raises(ValueError, match="lower"):
        table.counts(bound="middle")


def test_characterisation_table_one_renders_as_markdown_csv_html(
    shared_data: Path, results: dict[str, StudyResult], tmp_path: Path
) -> None:
    char = results["stats.characterisation"]
    assert isinstance(char, CharacterisationResult)
    data = pooled_cnsim(shared_data)
    girls, boys = int((data["GENDER"] == 1).sum()), int((data["GENDER"] == 0).sum())
    frame = char.to_frame()
    assert frame.loc[("N", ""), ("girls", "Pooled")] == str(girls)
    assert frame.loc[("N", ""), ("boys", "Pooled")] == str(boys)
    assert ("girls", "site1") in frame.columns and ("", "SMD") in frame.columns
    diabetic_girls = int(((data["GENDER"] == 1) & (data["DIS_DIAB"] == 1)).sum())
    assert (
        frame.loc[("DIS_DIAB", "= 1"), ("girls", "Pooled")]
        == f"{diabetic_girls} ({100 * diabetic_girls / girls:.1f})"
    )
    markdown = char.to_markdown()
    assert markdown.splitlines()[0].startswith("| Characteristic | girls: site1 |")
    assert len(markdown.strip().splitlines()) == 2 + len(frame)
    csv = char.to_csv(tmp_path / "table1.csv")
    assert (tmp_path / "table1.csv").read_text(encoding="utf-8") == csv
    back = pd.read_csv(io.StringIO(csv), index_col=0, dtype=str)
    assert back.loc["N", "boys: Pooled"] == str(boys)
    assert "<table" in char.to_html() and "<caption>" in char.to_html()
    assert "SMD" in char.summary() and "site1" not in char.summary().split("\n", 3)[-1]


def test_stats_methods_check_their_table_and_keywords() -> None:
    assert table_spec("cnsim", None) == {"dataset": "cnsim"}
    assert table_spec(None, {"cohort": "x", "covariates": []}) == {"cohort": "x", "covariates": []}
    for dataset, table in ((None, None), ("cnsim", {"cohort": "x"})):
        with pytest.raises(InputError, match="either dataset"):
            table_spec(dataset, table)
    with pytest.raises(InputError, match="unknown keyword"):
        StatsMethods().summary("LAB_HDL", dataset="cnsim", hospital=["a"])  # a typo of hospitals
