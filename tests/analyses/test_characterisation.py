"""``stats.characterisation`` (Table 1) equals pandas on the pooled CNSIM files; fixed Markdown shape."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses.characterisation import Characterisation, smd_binary, smd_continuous
from phds.analyses.characterisation_render import table_one, to_csv, to_html, to_markdown
from phds.errors import InputError
from phds.privacy.overlap import REASON

from .conftest import run_rounds, run_until_refused
from .test_summary import cnsim_paths, pooled_frame

# Cohorts by GENDER, not by DIS_DIAB: the diabetes cohorts hold 30-69 persons a site, of whom 1 to 4
# miss LAB_TSC or PM_BMI_CONTINUOUS at some sites, so a site's cohort size and the n of the variable's
# mean would give that small missing count by subtraction; the overlap guard refuses such a site
# (test_a_cohort_with_few_missing_values_is_refused). PM_BMI_CATEGORICAL is not described beside the
# quantiles of PM_BMI_CONTINUOUS (its cut-offs and a quantile bin can differ by a few persons), and one
# numeric variable is quantiled (see test_two_quantiled_variables_in_one_cohort). DIS_CVA has small
# cells: its levels are declared, so a rare level keeps its name rather than merging into "other".
COHORTS = [
    {"label": "GENDER 0", "table": {"dataset": "cnsim"}, "where": {"GENDER": 0}},
    {"label": "GENDER 1", "table": {"dataset": "cnsim"}, "where": {"GENDER": 1}},
]
PARAMS = {
    "cohorts": COHORTS,
    "numeric": ["LAB_TSC"],
    "categorical": ["DIS_DIAB", "DIS_CVA"],
    "levels": {"DIS_CVA": ["0", "1"]},
}
LABELS = ("GENDER 0", "GENDER 1")


@pytest.fixture
def table1(shared_data: Path, make_hospital: Any) -> dict[str, Any]:
    hospitals = [
        make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(cnsim_paths(shared_data), 1)
    ]
    return run_rounds(Characterisation(), PARAMS, hospitals).result


def _groups(shared_data: Path) -> dict[str, pd.DataFrame]:
    pooled = pooled_frame(cnsim_paths(shared_data))
    return {label: pooled[pooled["GENDER"] == g] for g, label in enumerate(LABELS)}


def test_numbers_equal_pandas_on_the_pooled_data(shared_data: Path, table1: dict[str, Any]) -> None:
    groups = _groups(shared_data)
    for label, frame in groups.items():
        assert table1["n"][label]["pooled"]["lower"] == len(frame) and table1["n"][label]["pooled"]["exact"]
    numeric = {v["variable"]: v for v in table1["variables"] if v["kind"] == "numeric"}
    for var, entry in numeric.items():
        for label, frame in groups.items():
            values = frame[var].dropna().to_numpy(dtype=float)
            cell = entry["by_cohort"][label]["pooled"]
            assert cell["n"] == values.size
            assert cell["missing"]["lower"] <= int(frame[var].isna().sum()) <= cell["missing"]["upper"]
            assert math.isclose(cell["mean"], float(values.mean()), rel_tol=1e-12)
            assert math.isclose(cell["sd"], float(values.std(ddof=1)), rel_tol=1e-12)
            for q in cell["quantiles"]:
                exact = float(np.quantile(values, q["q"], method="inverted_cdf"))
                assert q["lower"] < exact <= q["upper"]
                inside = float(np.mean((values > q["lower"]) & (values <= q["upper"])))
                assert inside <= 0.01  # k-bins of ~1,000 values a site
                low, high = q["cdf_at_lower"], q["cdf_at_upper"]
                assert low[0] <= np.mean(values <= q["lower"]) <= low[1] < q["q"] <= high[0]
        a, b = (groups[c][var].dropna() for c in LABELS)
        expected = (a.mean() - b.mean()) / math.sqrt((a.var() + b.var()) / 2)  # Austin (2009)
        assert math.isclose(entry["smd"], float(expected), rel_tol=1e-9)
    categorical = {v["variable"]: v for v in table1["variables"] if v["kind"] == "categorical"}
    for var, entry in categorical.items():
        for label, frame in groups.items():
            counts = frame[var].map(lambda x: "NA" if pd.isna(x) else str(int(x))).value_counts()
            for level in entry["levels"]:
                cell = entry["by_cohort"][label]["pooled"][level]
                truth = int(counts.get(level, 0))
                assert cell["lower"] <= truth <= cell["upper"]
                if cell["exact"]:
                    assert cell["lower"] == truth
                    assert math.isclose(cell["percent"], 100 * truth / len(frame), rel_tol=1e-12)
    diabetes = categorical["DIS_DIAB"]
    p1, p0 = ((groups[c]["DIS_DIAB"] == 1).mean() for c in LABELS)
    assert math.isclose(
        diabetes["smd"]["1"], (p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2), rel_tol=1e-9
    )
    assert diabetes["by_cohort"]["GENDER 0"]["pooled"]["1"]["exact"]
    assert not categorical["DIS_CVA"]["by_cohort"]["GENDER 0"]["pooled"]["1"]["exact"]
    assert categorical["DIS_CVA"]["smd"]["1"] is None  # bounds: no SMD


def test_markdown_has_the_shape_of_a_papers_table_one(table1: dict[str, Any]) -> None:
    markdown = to_markdown(table_one(table1)).splitlines()
    sites = ["site1", "site2", "site3", "Pooled"]
    header = ["Characteristic", *[f"{c}: {s}" for c in LABELS for s in sites], "SMD"]
    assert markdown[0] == "| " + " | ".join(header) + " |"
    assert markdown[1] == "| :-- |" + " --: |" * 9
    labels = [line.split(" | ")[0].removeprefix("| ") for line in markdown[2:]]
    assert labels == [
        "N",
        "LAB_TSC, mean (SD)",
        "LAB_TSC, median [IQR]",
        "DIS_DIAB, n (%)",
        "&nbsp;&nbsp;0",
        "&nbsp;&nbsp;1",
        "DIS_CVA, n (%)",
        "&nbsp;&nbsp;0",
        "&nbsp;&nbsp;1",
        "&nbsp;&nbsp;other",
        "&nbsp;&nbsp;NA",
    ]
    assert markdown[2] == "| N | 1092 | 1585 | 2091 | 4768 | 1071 | 1503 | 2037 | 4611 |  |"
    assert markdown[6].startswith("| &nbsp;&nbsp;0 | 1071 (98.1) | 1554 (98.0) | 2046 (97.8) | 4671 (98.0) |")
    assert all(line.count("|") == 11 for line in markdown)  # 10 columns on every line


def test_dataframe_csv_and_html_agree(table1: dict[str, Any]) -> None:
    frame = table_one(table1)
    assert frame.shape == (11, 9)
    assert frame.loc[("LAB_TSC", "mean (SD)"), ("GENDER 0", "Pooled")] == "5.92 (1.11)"
    # DIS_CVA = 1 in GENDER 0: 7 at site3, "<5" at site2 (2) and an exact 0 at site1
    assert frame.loc[("DIS_CVA", "= 1"), ("GENDER 0", "Pooled")] == "7–11"
    back = pd.read_csv(io.StringIO(to_csv(frame)), index_col=0, keep_default_na=False)
    assert back.shape == (11, 9) and back.loc["N", "GENDER 1: Pooled"] == "4611"
    page = to_html(frame)
    assert "<caption>Table 1. Characteristics of the cohorts</caption>" in page
    assert page.count("<tr>") == 3 + 11 and "&lt;5" in page


def test_a_cohort_with_few_missing_values_is_refused(shared_data: Path, make_hospital: Any) -> None:
    """The diabetes cohort at site1 misses LAB_TSC for 4 persons and at site2 PM_BMI_CONTINUOUS for 3:
    the cohort's size and the n of the variable's moments would give those few persons by subtraction,
    though the missing count itself leaves as "<5". The overlap guard refuses those sites."""
    hospitals = [
        make_hospital(f"diab{i}", tabular={"cnsim": p}) for i, p in enumerate(cnsim_paths(shared_data), 1)
    ]
    params = {
        "cohorts": [{"label": "diabetes", "table": {"dataset": "cnsim"}, "where": {"DIS_DIAB": 1}}],
        "numeric": ["LAB_TSC", "PM_BMI_CONTINUOUS"],
        "categorical": ["GENDER"],
        "quantiles": False,
    }
    run = run_until_refused(Characterisation(), params, hospitals)
    assert set(run.refused) == {"diab1", "diab2"}
    assert all(reason == f"refused: {REASON}" for reason in run.refused.values())
    assert run.result is not None and run.result["hospitals"] == ["diab3"]


@pytest.mark.xfail(
    reason="the overlap guard's enumeration cap (20,000 unions, fail safe) is passed by the bins of two "
    "quantiled variables of one cohort after a few bisection rounds; reported to the lead",
    strict=False,
)
def test_two_quantiled_variables_in_one_cohort(shared_data: Path, make_hospital: Any) -> None:
    hospitals = [
        make_hospital(f"two{i}", tabular={"cnsim": p}) for i, p in enumerate(cnsim_paths(shared_data), 1)
    ]
    params = {
        "cohorts": COHORTS[:1],
        "numeric": ["LAB_TSC", "PM_BMI_CONTINUOUS"],
        "categorical": ["DIS_DIAB"],
    }
    run = run_until_refused(Characterisation(), params, hospitals)
    assert run.refused == {} and run.result is not None


def test_one_cohort_without_filter_has_no_smd(shared_data: Path, make_hospital: Any) -> None:
    hospitals = [
        make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(cnsim_paths(shared_data), 1)
    ]
    params = {"cohorts": [{"label": "all", "table": {"dataset": "cnsim"}}], "numeric": ["LAB_HDL"],
              "categorical": ["DIS_CVA"], "quantiles": False}  # fmt: skip
    result = run_rounds(Characterisation(), params, hospitals).result
    assert result["compare"] is None and all(v["smd"] is None for v in result["variables"])
    frame = table_one(result, hospitals=False)
    assert list(frame.columns) == [("all", "Pooled")]
    assert ("LAB_HDL", "median [IQR]") not in frame.index
    assert frame.loc[("N", ""), ("all", "Pooled")] == str(len(pooled_frame(cnsim_paths(shared_data))))


def test_austin_formulas() -> None:
    assert smd_continuous(1.0, 1.0, 0.0, 1.0) == 1.0
    assert math.isclose(smd_binary(0.5, 0.25) or 0.0, 0.25 / math.sqrt((0.25 + 0.1875) / 2))
    assert smd_binary(0.0, 0.0) is None


def test_parameters_are_checked() -> None:
    with pytest.raises(InputError, match="unique"):
        Characterisation().parse_params({"cohorts": [COHORTS[0], COHORTS[0]], "numeric": ["x"]})
    with pytest.raises(InputError, match="compare"):
        Characterisation().parse_params({"cohorts": COHORTS, "numeric": ["x"], "compare": ["a", "b"]})
    with pytest.raises(InputError, match="once"):
        Characterisation().parse_params({"cohorts": COHORTS, "numeric": ["x"], "categorical": ["x"]})
    bad = {"label": "x", "table": {"dataset": "d"}, "where": {"a; DROP": 1}}
    with pytest.raises(InputError, match="variable names"):
        Characterisation().parse_params({"cohorts": [bad], "numeric": ["x"]})
