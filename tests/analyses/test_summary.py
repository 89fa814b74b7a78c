"""``stats.summary`` equals numpy on DataSHIELD's CNSIM files pooled; quantiles bracket numpy's exactly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses.summary import Summary, accept_thresholds
from phds.errors import InputError

from .conftest import run_rounds


def cnsim_paths(shared_data: Path) -> list[Path]:
    return [shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv" for i in (1, 2, 3)]


def pooled_frame(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p).rename(columns=str.strip) for p in paths], ignore_index=True)


@pytest.mark.parametrize("variable", ["LAB_TSC", "LAB_HDL", "PM_BMI_CONTINUOUS"])
def test_summary_equals_numpy_on_the_pooled_files(
    shared_data: Path, make_hospital: Any, variable: str
) -> None:
    paths = cnsim_paths(shared_data)
    hospitals = [make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(paths, 1)]
    params = {"table": {"dataset": "cnsim"}, "variable": variable, "quantiles": [0.1, 0.25, 0.5, 0.75, 0.9]}
    result = run_rounds(Summary(), params, hospitals).result
    column = pooled_frame(paths)[variable]
    pooled = column.dropna().to_numpy(dtype=float)
    assert result["n"] == pooled.size
    assert sum(m["value"] for m in result["missing_by_hospital"].values()) == int(column.isna().sum())
    assert math.isclose(result["mean"], float(np.mean(pooled)), rel_tol=1e-12)
    assert math.isclose(result["variance"], float(np.var(pooled, ddof=1)), rel_tol=1e-12)
    assert math.isclose(result["sd"], float(np.std(pooled, ddof=1)), rel_tol=1e-12)
    for h, path in zip(["site1", "site2", "site3"], paths, strict=True):
        local = pd.read_csv(path).rename(columns=str.strip)[variable].dropna().to_numpy(dtype=float)
        assert math.isclose(result["by_hospital"][h]["sd"], float(np.std(local, ddof=1)), rel_tol=1e-9)
    sd = result["sd"]
    for entry in result["quantiles"]:
        exact = float(np.quantile(pooled, entry["q"], method="inverted_cdf"))
        assert entry["lower"] < exact <= entry["upper"], entry  # guaranteed by the released counts
        assert abs(entry["value"] - exact) <= entry["max_error"]
        assert entry["upper"] - entry["lower"] <= 0.05 * sd  # measured ≤ 0.03 SD on CNSIM (docs)
        linear = float(np.quantile(pooled, entry["q"]))  # numpy's default, for the record
        assert abs(entry["value"] - linear) <= 0.05 * sd


def test_a_hospital_with_too_few_values_releases_nothing_disclosive(
    shared_data: Path, tmp_path: Path, make_hospital: Any
) -> None:
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("LAB_TSC\n4.5\n5.25\n6.125\n7.0625\n\n", encoding="utf-8")
    big = make_hospital("big", tabular={"cnsim": cnsim_paths(shared_data)[0]})
    small = make_hospital("small", tabular={"cnsim": tiny})
    result = run_rounds(
        Summary(), {"table": {"dataset": "cnsim"}, "variable": "LAB_TSC"}, [big, small]
    ).result
    assert result["hospitals"] == ["big"]
    released = [e.payload for e in small.audit.entries() if e.kind == "value_released"]
    assert len(released) == result["rounds"] + 1  # it answered every round ...
    text = str(released)
    for secret in ("4.5", "5.25", "6.125", "7.0625", "22.9375"):  # ... with no value nor their sum
        assert secret not in text
    for payload in released:
        for agg in payload["values"].values():
            if agg["type"] == "sums":
                assert agg["values"] is None and agg["n"]["display"] == "<5"
            if agg["type"] == "breakdown":
                assert all(c["value"] is None for c in agg["cells"].values())


def test_every_released_bin_holds_at_least_k_patients(shared_data: Path, make_hospital: Any) -> None:
    path = cnsim_paths(shared_data)[0]
    hospital = make_hospital("site1", tabular={"cnsim": path})
    run_rounds(Summary(), {"table": {"dataset": "cnsim"}, "variable": "LAB_HDL"}, [hospital])
    bins = [
        e.payload["values"]["bins"]
        for e in hospital.audit.entries()
        if e.kind == "value_released" and "bins" in e.payload["values"]
    ]
    assert len(bins) > 5
    for breakdown in bins:
        assert all(c["value"] >= 5 for c in breakdown["cells"].values())


def test_accepted_thresholds_keep_k_on_each_side() -> None:
    values = np.arange(20, dtype=float)  # 0..19
    history = [[9.5], [4.5, 14.5], [2.0, 7.0, 16.0], [5.5]]
    for k, expected in ((5, [4.5, 9.5, 14.5]), (2, [2.0, 4.5, 7.0, 9.5, 14.5, 16.0])):
        accepted: list[float] = []
        for proposals in history:
            accepted = accept_thresholds(values, accepted, proposals, k)
        assert accepted == expected


def test_parameters_refuse_extreme_quantiles_and_bad_names() -> None:
    with pytest.raises(InputError, match=r"field analysis\.params\.quantiles"):
        Summary().parse_params({"table": {"dataset": "d"}, "variable": "x", "quantiles": [0.0]})
    with pytest.raises(InputError, match=r"field analysis\.params\.variable"):
        Summary().parse_params({"table": {"dataset": "d"}, "variable": "x; DROP TABLE t"})
    with pytest.raises(InputError, match=r"field analysis\.params\.table"):
        Summary().parse_params({"table": {}, "variable": "x"})


def test_a_stricter_hospital_policy_applies_to_every_hospitals_bins(
    shared_data: Path, make_hospital: Any
) -> None:
    paths = cnsim_paths(shared_data)
    strict = make_hospital("strict", tabular={"cnsim": paths[0]}, min_cell_count=11)
    usual = make_hospital("usual", tabular={"cnsim": paths[1]})
    params = {"table": {"dataset": "cnsim"}, "variable": "LAB_TRIG", "quantiles": [0.5]}
    result = run_rounds(Summary(), params, [strict, usual]).result
    pooled = pooled_frame(paths[:2])["LAB_TRIG"].dropna().to_numpy(dtype=float)
    entry = result["quantiles"][0]
    assert entry["lower"] < float(np.quantile(pooled, 0.5, method="inverted_cdf")) <= entry["upper"]
    for hospital in (strict, usual):
        cells = [
            c["value"]
            for e in hospital.audit.entries()
            if e.kind == "value_released" and "bins" in e.payload["values"]
            for c in e.payload["values"]["bins"]["cells"].values()
        ]
        assert cells and min(cells) >= 11
