"""``stats.table`` equals pandas crosstab on the pooled CNSIM files; suppression gives bounds, no test."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from phds.analyses.contingency import ContingencyTable, table_frame
from phds.errors import InputError

from .conftest import run_rounds
from .test_summary import cnsim_paths, pooled_frame


def _hospitals(shared_data: Path, make_hospital: Any) -> list[Any]:
    return [
        make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(cnsim_paths(shared_data), 1)
    ]


def test_two_way_table_and_chi_square_equal_pandas_and_scipy(shared_data: Path, make_hospital: Any) -> None:
    params = {"table": {"dataset": "cnsim"}, "rows": "GENDER", "columns": "PM_BMI_CATEGORICAL"}
    result = run_rounds(ContingencyTable(), params, _hospitals(shared_data, make_hospital)).result
    pooled = pooled_frame(cnsim_paths(shared_data))
    expected = pd.crosstab(pooled["GENDER"], pooled["PM_BMI_CATEGORICAL"].fillna(-1))
    assert result["row_levels"] == ["0", "1"]
    assert result["column_levels"] == ["1", "2", "3", "NA"]
    for cell in result["cells"]:
        column = -1 if cell["column"] == "NA" else float(cell["column"])
        assert cell["exact"] and cell["lower"] == expected.loc[int(cell["row"]), column], cell
    assert result["total"]["lower"] == len(pooled)
    reference = stats.chi2_contingency(
        pd.crosstab(pooled["GENDER"], pooled["PM_BMI_CATEGORICAL"]), correction=False
    )
    test = result["chi_square"]
    assert test["df"] == reference.dof == 2
    assert math.isclose(test["statistic"], reference.statistic, rel_tol=1e-12)
    assert math.isclose(test["p_value"], reference.pvalue, rel_tol=1e-9)
    frame = table_frame(result)
    assert frame.loc["1", "3"] == str(expected.loc[1, 3.0])


def test_one_way_table_counts_levels(shared_data: Path, make_hospital: Any) -> None:
    params = {"table": {"dataset": "cnsim"}, "rows": "PM_BMI_CATEGORICAL"}
    result = run_rounds(ContingencyTable(), params, _hospitals(shared_data, make_hospital)).result
    counts = pooled_frame(cnsim_paths(shared_data))["PM_BMI_CATEGORICAL"].value_counts(dropna=False)
    got = {c["row"]: c["lower"] for c in result["cells"]}
    assert got == {
        "1": counts[1.0],
        "2": counts[2.0],
        "3": counts[3.0],
        "NA": int(counts[[math.nan]].iloc[0]),
    }
    assert result["chi_square"] is None


def test_suppressed_cells_give_bounds_and_refuse_the_test(shared_data: Path, make_hospital: Any) -> None:
    hospitals = _hospitals(shared_data, make_hospital)
    params = {"table": {"dataset": "cnsim"}, "rows": "DIS_CVA", "columns": "DIS_DIAB"}
    result = run_rounds(ContingencyTable(), params, hospitals).result
    pooled = pooled_frame(cnsim_paths(shared_data))
    truth = pd.crosstab(pooled["DIS_CVA"], pooled["DIS_DIAB"])
    cells = {(c["row"], c["column"]): c for c in result["cells"]}
    # A hospital merges an undeclared level held by fewer than k persons into "other"; the pooled cells
    # of the coded levels must still bound the truth (the hospital's "other" bounds what it merged).
    for (r, c), cell in cells.items():
        if "other" not in (r, c):
            assert cell["lower"] <= truth.loc[int(r), int(c)] <= cell["upper"]
    assert not cells[("1", "0")]["exact"]  # 14 strokes in 3 hospitals: some hospital has fewer than 5
    for h in hospitals:
        frame = pd.read_csv(cnsim_paths(shared_data)[int(h.name[-1]) - 1]).rename(columns=str.strip)
        true = pd.crosstab(frame["DIS_CVA"], frame["DIS_DIAB"])
        # the rows of this hospital's own grid (a cell outside it is bounded at the hub by "0–n")
        grid = {
            r for (r, _), cell in cells.items() if not cell["by_hospital"][h.name]["display"].startswith("0–")
        }
        for (r, c), cell in cells.items():
            released = cell["by_hospital"][h.name]
            if r == "other":  # the rows this hospital merged
                merged = [i for i in true.index if str(i) not in grid]
                value = int(true.loc[merged, int(c)].sum()) if int(c) in true.columns else 0
            elif r not in grid:  # merged into this hospital's "other": bounded by it
                assert released["suppressed"] and released["lower"] == 0
                continue
            else:
                value = (
                    int(true.loc[int(r), int(c)]) if int(c) in true.columns and int(r) in true.index else 0
                )
            if released["suppressed"]:
                assert released["value"] is None and released["lower"] <= value <= released["upper"]
                if value not in (released["lower"], released["upper"]):  # a bound may equal it
                    assert str(value) not in json.dumps(released)
            else:
                assert released["value"] == value and (value == 0 or value >= 5)
    assert "refused" in result["chi_square"]
    assert "–" in table_frame(result).loc["1", "0"]


def test_listed_levels_hide_unlisted_values(shared_data: Path, make_hospital: Any) -> None:
    params = {
        "table": {"dataset": "cnsim"},
        "rows": "PM_BMI_CATEGORICAL",
        "levels": {"PM_BMI_CATEGORICAL": ["1"]},
    }
    result = run_rounds(ContingencyTable(), params, _hospitals(shared_data, make_hospital)).result
    assert result["row_levels"] == ["1", "other", "NA"]
    counts = pooled_frame(cnsim_paths(shared_data))["PM_BMI_CATEGORICAL"].value_counts()
    assert {c["row"]: c["lower"] for c in result["cells"]}["other"] == counts[2.0] + counts[3.0]


def test_parameters_are_checked() -> None:
    with pytest.raises(InputError, match=r"analysis\.params"):
        ContingencyTable().parse_params({"table": {"dataset": "d"}, "rows": "a", "columns": "a"})
    with pytest.raises(InputError, match=r"analysis\.params"):
        ContingencyTable().parse_params({"table": {"dataset": "d"}, "rows": "a", "levels": {"b": ["1"]}})
