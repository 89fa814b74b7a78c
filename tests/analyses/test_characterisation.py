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

from .conftest import run_rounds
from .test_summary import cnsim_paths, pooled_frame

COHORTS = [
    {"label": "diabetes", "table": {"dataset": "cnsim"}, "where": {"DIS_DIAB": 1}},
    {"label": "no diabetes", "table": {"dataset": "cnsim"}, "where": {"DIS_DIAB": 0}},
]
PARAMS = {
    "cohorts": COHORTS,
    "numeric": ["LAB_TSC", "PM_BMI_CONTINUOUS"],
    "categorical": ["GENDER", "PM_BMI_CATEGORICAL"],
}


@pytest.fixture
def table1(shared_data: Path, make_hospital: Any) -> dict[str, Any]:
    hospitals = [
        make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(cnsim_paths(shared_data), 1)
    ]
    return run_rounds(Characterisation(), PARAMS, hospitals).result


def _groups(shared_data: Path) -> dict[str, pd.DataFrame]:
    pooled = pooled_frame(cnsim_paths(shared_data))
    return {"diabetes": pooled[pooled["DIS_DIAB"] == 1], "no diabetes": pooled[pooled["DIS_DIAB"] == 0]}


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
                assert inside <= (0.3 if label == "diabetes" else 0.01)  # k-bins of ~40 values a site
                low, high = q["cdf_at_lower"], q["cdf_at_upper"]
                assert low[0] <= np.mean(values <= q["lower"]) <= low[1] < q["q"] <= high[0]
        a, b = (groups[c][var].dropna() for c in ("diabetes", "no diabetes"))
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
    gender = categorical["GENDER"]
    p1 = (groups["diabetes"]["GENDER"] == 0).mean()
    p0 = (groups["no diabetes"]["GENDER"] == 0).mean()
    assert math.isclose(
        gender["smd"]["0"], (p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2), rel_tol=1e-9
    )
    assert gender["by_cohort"]["diabetes"]["pooled"]["0"]["exact"]
    assert not categorical["PM_BMI_CATEGORICAL"]["by_cohort"]["diabetes"]["pooled"]["NA"]["exact"]
    assert categorical["PM_BMI_CATEGORICAL"]["smd"]["NA"] is None  # bounds: no SMD


def test_markdown_has_the_shape_of_a_papers_table_one(table1: dict[str, Any]) -> None:
    markdown = to_markdown(table_one(table1)).splitlines()
    sites = ["site1", "site2", "site3", "Pooled"]
    header = ["Characteristic", *[f"{c}: {s}" for c in ("diabetes", "no diabetes") for s in sites], "SMD"]
    assert markdown[0] == "| " + " | ".join(header) + " |"
    assert markdown[1] == "| :-- |" + " --: |" * 9
    labels = [line.split(" | ")[0].removeprefix("| ") for line in markdown[2:]]
    assert labels == [
        "N",
        "LAB_TSC, mean (SD)",
        "LAB_TSC, median [IQR]",
        "PM_BMI_CONTINUOUS, mean (SD)",
        "PM_BMI_CONTINUOUS, median [IQR]",
        "GENDER, n (%)",
        "&nbsp;&nbsp;0",
        "&nbsp;&nbsp;1",
        "PM_BMI_CATEGORICAL, n (%)",
        "&nbsp;&nbsp;1",
        "&nbsp;&nbsp;2",
        "&nbsp;&nbsp;3",
        "&nbsp;&nbsp;NA",
    ]
    assert markdown[2] == "| N | 30 | 47 | 69 | 146 | 2133 | 3041 | 4059 | 9233 |  |"
    assert markdown[8].startswith("| &nbsp;&nbsp;0 | 21 (70.0) | 31 (66.0) | 45 (65.2) | 97 (66.4) |")
    assert all(line.count("|") == 11 for line in markdown)  # 10 columns on every line


def test_dataframe_csv_and_html_agree(table1: dict[str, Any]) -> None:
    frame = table_one(table1)
    assert frame.shape == (13, 9)
    assert frame.loc[("LAB_TSC", "mean (SD)"), ("diabetes", "Pooled")] == "5.90 (1.29)"
    assert frame.loc[("PM_BMI_CATEGORICAL", "= NA"), ("diabetes", "Pooled")] == "9–14"
    back = pd.read_csv(io.StringIO(to_csv(frame)), index_col=0, keep_default_na=False)
    assert back.shape == (13, 9) and back.loc["N", "no diabetes: Pooled"] == "9233"
    page = to_html(frame)
    assert "<caption>Table 1. Characteristics of the cohorts</caption>" in page
    assert page.count("<tr>") == 3 + 13 and "&lt;5" in page


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
