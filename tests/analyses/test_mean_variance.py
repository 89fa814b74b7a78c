"""The two-pass federated mean and variance equals numpy on DataSHIELD's CNSIM files pooled."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses import get_analysis
from phds.errors import InputError

from .conftest import run_rounds


def _cnsim(shared_data: Path) -> list[Path]:
    return [shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv" for i in (1, 2, 3)]


def _pooled(paths: list[Path], variable: str) -> np.ndarray:
    frames = [pd.read_csv(p).rename(columns=str.strip) for p in paths]
    values = pd.concat(frames)[variable].to_numpy(dtype=float)
    return values[~np.isnan(values)]


@pytest.mark.parametrize("variable", ["LAB_TSC", "LAB_HDL", "LAB_GLUC_ADJUSTED", "PM_BMI_CONTINUOUS"])
def test_federated_mean_and_variance_equal_numpy_on_the_pooled_files(
    shared_data: Path, make_hospital: Any, variable: str
) -> None:
    paths = _cnsim(shared_data)
    hospitals = [make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(paths, 1)]
    final = run_rounds(
        get_analysis("stats.mean_variance"), {"dataset": "cnsim", "variable": variable}, hospitals
    )
    pooled = _pooled(paths, variable)
    result = final.result
    assert result["n"] == pooled.size
    assert math.isclose(result["mean"], float(np.mean(pooled)), rel_tol=1e-12)
    assert math.isclose(result["variance"], float(np.var(pooled, ddof=1)), rel_tol=1e-12)
    assert math.isclose(result["sd"], float(np.std(pooled, ddof=1)), rel_tol=1e-12)
    missing = sum(int(pd.read_csv(p).rename(columns=str.strip)[variable].isna().sum()) for p in paths)
    assert sum(v["value"] for v in result["missing_by_hospital"].values()) == missing


def test_a_hospital_dropping_out_of_round_two_is_re_centred_exactly(
    shared_data: Path, make_hospital: Any
) -> None:
    analysis = get_analysis("stats.mean_variance")
    paths = _cnsim(shared_data)
    hospitals = [make_hospital(f"site{i}", tabular={"cnsim": p}) for i, p in enumerate(paths, 1)]
    params = analysis.parse_params({"dataset": "cnsim", "variable": "LAB_TSC"})
    released = {h.name: h.answer(analysis, params, 1, {}) for h in hospitals}
    next_round = analysis.combine(params, 1, {}, released)
    state = next_round.state  # type: ignore[union-attr]
    released2 = {h.name: h.answer(analysis, params, 2, state) for h in hospitals[:2]}
    final = analysis.combine(params, 2, state, released2)
    pooled = _pooled(paths[:2], "LAB_TSC")
    assert final.result["hospitals"] == ["site1", "site2"]  # type: ignore[union-attr]
    assert math.isclose(final.result["mean"], float(np.mean(pooled)), rel_tol=1e-12)  # type: ignore[union-attr]
    assert math.isclose(final.result["variance"], float(np.var(pooled, ddof=1)), rel_tol=1e-10)  # type: ignore[union-attr]


def test_statistics_of_fewer_than_five_persons_never_leave(tmp_path: Path, make_hospital: Any) -> None:
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("x\n1.0\n2.0\n3.0\n4.0\n", encoding="utf-8")
    hospital = make_hospital("small", tabular={"d": tiny})
    analysis = get_analysis("stats.mean_variance")
    params = analysis.parse_params({"dataset": "d", "variable": "x"})
    payload = hospital.answer(analysis, params, 1, {})
    moments = payload["values"]["moments"]
    assert moments["values"] is None
    assert moments["n"]["value"] is None and moments["n"]["display"] == "<5"
    assert "10.0" not in str(payload)  # the sum 1+2+3+4 must not appear anywhere
    with pytest.raises(InputError, match="no hospital released statistics"):
        analysis.combine(params, 1, {}, {"small": payload})


def test_parameters_are_checked_and_errors_name_the_field() -> None:
    analysis = get_analysis("stats.mean_variance")
    with pytest.raises(InputError, match=r"field analysis\.params\.variable"):
        analysis.parse_params({"dataset": "cnsim", "variable": "x; DROP TABLE person"})
    with pytest.raises(InputError, match=r"field analysis\.params\.extra"):
        analysis.parse_params({"dataset": "cnsim", "variable": "x", "extra": 1})
    with pytest.raises(InputError, match=r"field analysis\.name.*available"):
        get_analysis("stats.nope")
