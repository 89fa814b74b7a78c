"""The synthetic report's measures against references nobody here wrote, on DataSHIELD's CNSIM.

* sdmetrics' quality score rebuilt from two-way tables equals sdmetrics' own ``QualityReport`` on the
  real rows, when the tables are exact;
* the cell-based pMSE equals the pMSE of scikit-learn's unpenalised logistic propensity model on the
  pair's cells;
* anonymeter's risks, from the per-row hits the node releases, catch a generator that copies its
  training rows and stay near 0 for one that does not.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from phds.analyses.synthetic_evaluation import RealRows, pair_tables
from phds.analyses.synthetic_quality import pair_counts, pmse, quality
from phds.analyses.synthetic_risks import attack_aggregates, risk_of
from phds.privacy.aggregates import BreakdownAggregate, Persons

pytest.importorskip("sdmetrics")

COLUMNS: list[dict[str, Any]] = [
    {"name": "GENDER", "labels": ["0", "1"]},
    {"name": "DIS_DIAB", "labels": ["0", "1"]},
    {"name": "PM_BMI_CATEGORICAL", "labels": ["1", "2", "3", "NA"]},
    {"name": "LAB_HDL", "labels": ["≤1", "≤1.5", "≤2", ">2", "NA"], "cuts": [1.0, 1.5, 2.0]},
]


def _codes(shared_data: Path, i: int) -> np.ndarray:
    from phds.privacy.synthetic_dp import discretise

    frame = pd.read_csv(shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv")
    frame.columns = [str(c).strip() for c in frame.columns]
    return discretise(frame, COLUMNS)


def _exact(aggregates: list[Any]) -> dict[str, Any]:
    """What a gate without noise would release: each breakdown's exact cells."""
    out: dict[str, Any] = {}
    for agg in aggregates:
        assert isinstance(agg, BreakdownAggregate)
        out[agg.name] = {"cells": {lv: {"value": v} for lv, v in agg.cells().items()}}
    return out


def _rows(codes: np.ndarray, control_share: float = 0.0, seed: int = 0) -> RealRows:
    control = np.random.default_rng(seed).random(codes.shape[0]) < control_share
    return RealRows(codes, Persons("tabular:cnsim", np.arange(codes.shape[0])), control)


def test_the_quality_score_from_exact_tables_is_sdmetrics_quality_report(shared_data: Path) -> None:
    from sdmetrics.reports import QualityReport

    real = _codes(shared_data, 1)
    synth = _codes(shared_data, 2)  # another hospital's rows: similar, not equal
    released = _exact(pair_tables(_rows(real), COLUMNS))
    ours = quality(COLUMNS, released, synth)
    names = [c["name"] for c in COLUMNS]
    as_frame = {n: real[:, j].astype(str) for j, n in enumerate(names)}
    metadata = {"tables": {"cnsim": {"columns": {n: {"sdtype": "categorical"} for n in names}}}}
    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(
            {"cnsim": pd.DataFrame(as_frame)},
            {"cnsim": pd.DataFrame({n: synth[:, j].astype(str) for j, n in enumerate(names)})},
            metadata,
            verbose=False,
        )
    properties = report.get_properties().set_index("Property")["Score"]
    assert ours["column_shapes"] == pytest.approx(properties["Column Shapes"], abs=1e-12)
    trends = properties["Column Pair Trends"]
    if np.isnan(trends):
        assert ours["column_pair_trends"] is None
    else:
        assert ours["column_pair_trends"] == pytest.approx(trends, abs=1e-12)
    assert ours["score"] == pytest.approx(report.get_score(), abs=1e-12)
    assert 0.8 < ours["score"] <= 1.0 and len(ours["pairs"]) == 6


def test_the_cell_pmse_is_the_pmse_of_a_logistic_propensity_model_on_the_cells(shared_data: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    real, synth = _codes(shared_data, 1), _codes(shared_data, 3)[:1500]
    a, b = 2, 3
    sa, sb = len(COLUMNS[a]["labels"]), len(COLUMNS[b]["labels"])
    cells = _exact(pair_tables(_rows(real), COLUMNS))[f"pair:{COLUMNS[a]['name']}|{COLUMNS[b]['name']}"]
    real_table = pair_counts(cells["cells"], sa, sb)
    synth_table = np.zeros((sa, sb))
    np.add.at(synth_table, (synth[:, a], synth[:, b]), 1.0)
    ours = pmse(real_table, synth_table)
    cell = np.r_[real[:, a] * sb + real[:, b], synth[:, a] * sb + synth[:, b]]
    is_synth = np.r_[np.zeros(real.shape[0]), np.ones(synth.shape[0])]
    x = (cell[:, None] == np.unique(cell)[None, :]).astype(float)
    p = (
        LogisticRegression(C=np.inf, fit_intercept=False, max_iter=20000, tol=1e-12)
        .fit(x, is_synth)
        .predict_proba(x)[:, 1]
    )
    reference = float(np.mean((p - synth.shape[0] / cell.size) ** 2))
    assert ours["pmse"] == pytest.approx(reference, rel=1e-4)
    same = pmse(real_table, real_table * 0.5)  # the same distribution: nothing to tell apart
    assert same["pmse"] == pytest.approx(0.0, abs=1e-15)


FINE = ["LAB_TSC", "LAB_TRIG", "LAB_HDL", "LAB_GLUC_ADJUSTED", "PM_BMI_CONTINUOUS"]
"""Measurements cut at CNSIM1's deciles: with them most rows are unique, so a copy can be linked."""


def _fine(shared_data: Path) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    from phds.privacy.synthetic_dp import discretise

    frames = []
    for i in (1, 2, 3):
        frame = pd.read_csv(shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{i}.csv")
        frame.columns = [str(c).strip() for c in frame.columns]
        frames.append(frame)
    columns: list[dict[str, Any]] = [{"name": "GENDER", "labels": ["0", "1", "NA"]}]
    for name in FINE:
        cuts = sorted(set(np.nanquantile(frames[0][name], np.linspace(0.1, 0.9, 9)).round(4).tolist()))
        columns.append({"name": name, "labels": [str(k) for k in range(len(cuts) + 2)], "cuts": cuts})
    return columns, [discretise(f, columns) for f in frames]


def _risks(columns: list[dict[str, Any]], real: np.ndarray, synth: np.ndarray) -> dict[str, Any]:
    rows = _rows(real, control_share=0.3, seed=1)
    released = _exact(attack_aggregates(rows, synth, [c["name"] for c in columns], 0, seed=5))
    assert {n.split(":")[1] for n in released} == {"main", "baseline", "control"}
    return {attack: risk_of(released, attack) for attack in ("inference", "linkability")}


def test_anonymeter_catches_a_generator_that_copies_its_training_rows(shared_data: Path) -> None:
    pytest.importorskip("anonymeter")
    columns, (h1, h2, h3) = _fine(shared_data)
    real = np.vstack([h1, h2])
    copied, _ = _rows(real, control_share=0.3, seed=1).train
    leaky = _risks(columns, real, copied)
    honest = _risks(columns, real, h3)  # rows of another hospital: independent of these
    for attack in ("linkability", "inference"):
        assert leaky[attack]["risk"] > 0.3, (attack, leaky)
        assert honest[attack]["risk"] < 0.1, (attack, honest)
