"""The hub's quality measures of a synthetic dataset, from the real two-way tables the nodes released.

Each node released, under DP, the two-way table of its real rows for every pair of declared columns
(:mod:`phds.analyses.synthetic_evaluation`). Everything here is post-processing of those noisy tables
(negative counts clamped at 0, then rounded) and of the hospital's synthetic sample:

* **sdmetrics' quality score.** sdmetrics' single-table ``QualityReport`` averages two properties:
  *Column Shapes* (``TVComplement`` per column) and *Column Pair Trends* (``ContingencySimilarity``
  per pair of categorical columns, counted only where the real Cramér's V exceeds sdmetrics' default
  ``real_association_threshold``, 0.3 in sdmetrics 0.32). The report needs one real table, which
  never leaves a node; the same metric classes are called here on real columns rebuilt from the noisy
  counts (a column's counts are the mean of its margins over the pairs it is in), and combined as
  the report combines them. On exact counts this equals ``QualityReport.get_score()`` on the real
  rows (tests/analyses/test_synthetic_quality.py).
* **pMSE** (Snoke, Raab, Nowok, Dibben & Slavković 2018, "General and specific utility measures for
  synthetic data", JRSS A 181(3)): the mean squared error of propensity scores that tell real from
  synthetic rows. Per pair the propensity model is the saturated one on the pair's cells (as synthpop's
  ``utility.tab``), so p̂ = synthetic / (real + synthetic) in each cell; its null expectation for m
  non-empty cells is (m − 1)(1 − c)²c / N with c the synthetic share and N all rows, and the ratio to
  it (S_pMSE) near 1 means the two are indistinguishable on that pair.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from phds.analyses.synthetic_evaluation import pair_names


def pair_counts(cells: Mapping[str, Mapping[str, Any]], sa: int, sb: int) -> NDArray[np.float64]:
    """A released ``pair:`` breakdown as an sa × sb matrix of counts (clamped at 0)."""
    out = np.zeros((sa, sb))
    for i in range(sa):
        for j in range(sb):
            cell = cells.get(f"{i}:{j}") or {}
            out[i, j] = max(0.0, float(cell.get("value") or 0.0))
    return out


def _rows(counts: NDArray[np.float64]) -> NDArray[np.int64]:
    """Cell indices repeated by their rounded counts (a rebuilt real column)."""
    return np.repeat(np.arange(counts.size), np.rint(counts.ravel()).astype(np.int64))


def pmse(real: NDArray[np.float64], synth: NDArray[np.float64]) -> dict[str, float | None]:
    """pMSE and its ratio to the null expectation for one table (module docstring)."""
    r, s = real.ravel(), synth.ravel()
    both = r + s
    n = float(both.sum())
    if n <= 0 or s.sum() <= 0:
        return {"pmse": None, "ratio": None}
    c = float(s.sum()) / n
    seen = both > 0
    p = np.where(seen, s / np.where(seen, both, 1.0), c)
    value = float(np.sum(both * (p - c) ** 2) / n)
    expected = (int(seen.sum()) - 1) * (1 - c) ** 2 * c / n
    return {"pmse": value, "ratio": value / expected if expected > 0 else None}


def quality(
    columns: Sequence[Mapping[str, Any]],
    released: Mapping[str, Any],
    synth_codes: NDArray[np.int64],
) -> dict[str, Any]:
    """sdmetrics' quality score and the pMSE of one hospital's sample against its released tables."""
    from sdmetrics.column_pairs import ContingencySimilarity
    from sdmetrics.reports.utils import DEFAULT_REAL_ASSOCIATION_THRESHOLD
    from sdmetrics.single_column import TVComplement

    names = [c["name"] for c in columns]
    sizes = [len(c["labels"]) for c in columns]
    margins: list[list[NDArray[np.float64]]] = [[] for _ in columns]
    pairs: list[dict[str, Any]] = []
    for a, b in pair_names(columns):
        key = f"pair:{names[a]}|{names[b]}"
        if key not in released:
            continue
        real = pair_counts(released[key]["cells"], sizes[a], sizes[b])
        margins[a].append(real.sum(axis=1))
        margins[b].append(real.sum(axis=0))
        synth = np.zeros((sizes[a], sizes[b]))
        np.add.at(synth, (synth_codes[:, a], synth_codes[:, b]), 1.0)
        cells = _rows(real)
        real_frame = pd.DataFrame({"a": (cells // sizes[b]).astype(str), "b": (cells % sizes[b]).astype(str)})
        synth_frame = pd.DataFrame({"a": synth_codes[:, a].astype(str), "b": synth_codes[:, b].astype(str)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trend = ContingencySimilarity.compute_breakdown(
                real_frame, synth_frame, real_association_threshold=DEFAULT_REAL_ASSOCIATION_THRESHOLD
            )
        score, association = float(trend["score"]), float(trend["real_association"])
        pairs.append(
            {
                "columns": [names[a], names[b]],
                "contingency_similarity": None if np.isnan(score) else score,
                "real_association": None if np.isnan(association) else association,
                **pmse(real, synth),
            }
        )
    shapes = []
    for j, found in enumerate(margins):
        if not found:
            continue
        real_column = pd.Series(_rows(np.mean(found, axis=0)).astype(str))
        shapes.append(
            {
                "column": names[j],
                "tv_complement": float(
                    TVComplement.compute(real_column, pd.Series(synth_codes[:, j].astype(str)))
                ),
            }
        )
    shape_score = float(np.mean([s["tv_complement"] for s in shapes])) if shapes else float("nan")
    trends = [p["contingency_similarity"] for p in pairs if p["contingency_similarity"] is not None]
    trend_score = float(np.mean(trends)) if trends else float("nan")
    overall = float(np.nanmean([shape_score, trend_score])) if shapes else float("nan")
    ratios = [p["ratio"] for p in pairs if p["ratio"] is not None]
    return {
        "score": _finite(overall),
        "column_shapes": _finite(shape_score),
        "column_pair_trends": _finite(trend_score),
        "shapes": shapes,
        "pairs": pairs,
        "pmse_mean": _finite(
            float(np.mean([p["pmse"] for p in pairs if p["pmse"] is not None])) if pairs else float("nan")
        ),
        "pmse_ratio_mean": _finite(float(np.mean(ratios)) if ratios else float("nan")),
        "association_threshold": float(DEFAULT_REAL_ASSOCIATION_THRESHOLD),
    }


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else value


__all__ = ["pair_counts", "pmse", "quality"]
