"""Evaluation of a federated model on each node's held-out rows, and pooled from binned counts.

At a node, on its held-out split (never trained on), from exact predicted probabilities:

* **AUROC** — the Mann–Whitney statistic with mid-ranks for ties, P(score of a case > score of a
  non-case) + ½ P(tie) (Hanley & McNeil 1982, *Radiology* 143:29);
* **AUPRC** — average precision, Σₙ (Rₙ − Rₙ₋₁) Pₙ over the distinct thresholds (as scikit-learn's
  ``average_precision_score``; Davis & Goadrich 2006 on why not to interpolate the PR curve linearly);
* **Brier score** — the mean of (p − y)² (Brier 1950, *Monthly Weather Review* 78:1).

Across hospitals, the pooled metrics come from the per-bin counts of cases and non-cases each gate
released on a fixed grid of predicted risks (the grid is declared, never fitted to data). Within a bin
every row has the same score, so the pooled AUROC and AUPRC are those of the binned scores (ties
counted half), which approaches the exact one as the grid gets finer; a bin cell a gate suppressed
counts as the midpoint of its released bounds and the result says how many there were. Calibration
is the observed rate of cases per bin beside the bin's range.

Repeated evaluations on the same held-out rows: each study's bin counts are exact person sets, and two
models put a few rows in different bins, so the node's overlap guard refuses a later evaluation whose
cells, set against an earlier one's, would describe fewer than k persons (a differencing attack on the
held-out rows). ``eval_bins: []`` asks for no bin counts (exact per-hospital metrics and the model's
acceptance only; no pooled AUROC); another ``seed`` holds out other rows; under DP the counts are noisy.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

DEFAULT_BINS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
"""Cut points of predicted risk (11 bins): finer at low risk, where rare outcomes put most rows."""


def auroc(y: NDArray[Any], p: NDArray[Any]) -> float:
    """The area under the ROC curve (Mann–Whitney with mid-ranks; module docstring)."""
    y = np.asarray(y, dtype=float)
    pos = int(y.sum())
    neg = int(y.size - pos)
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(p, dtype=float))
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def auprc(y: NDArray[Any], p: NDArray[Any]) -> float:
    """Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds, highest first."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    pos = float(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    last = np.r_[np.nonzero(np.diff(ps))[0], ys.size - 1]  # the end of each block of tied scores
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: NDArray[Any], p: NDArray[Any]) -> float:
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def bin_of(p: NDArray[Any], cuts: Sequence[float]) -> NDArray[np.int64]:
    """The bin index of each predicted risk: bin b holds cuts[b−1] ≤ p < cuts[b]."""
    return np.searchsorted(np.asarray(cuts, dtype=float), np.asarray(p, dtype=float), side="right")


def bin_levels(cuts: Sequence[float]) -> list[str]:
    """The breakdown's cells: ``"<bin>:<outcome>"`` for every bin and outcome 0/1 (a fixed grid)."""
    return [f"{b}:{y}" for b in range(len(cuts) + 1) for y in (0, 1)]


def bin_labels(y: NDArray[Any], p: NDArray[Any], cuts: Sequence[float]) -> NDArray[Any]:
    bins = bin_of(p, cuts)
    return np.array([f"{b}:{int(v)}" for b, v in zip(bins.tolist(), np.asarray(y).tolist(), strict=True)])


def bin_ranges(cuts: Sequence[float]) -> list[tuple[float, float]]:
    edges = [0.0, *[float(c) for c in cuts], 1.0]
    return list(itertools.pairwise(edges))


def counts_from_cells(
    cells: Mapping[str, Mapping[str, Any]], cuts: Sequence[float]
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Non-cases and cases per bin from a released breakdown's cells; suppressed cells count as the
    midpoint of their bounds (and are counted, third value)."""
    nb = len(cuts) + 1
    neg, pos = np.zeros(nb), np.zeros(nb)
    suppressed = 0
    for b in range(nb):
        for y, target in ((0, neg), (1, pos)):
            cell = cells.get(f"{b}:{y}")
            if cell is None:
                continue
            if cell.get("suppressed"):
                suppressed += 1
                target[b] = (float(cell["lower"]) + float(cell["upper"])) / 2
            else:
                target[b] = max(0.0, float(cell["value"]))
    return neg, pos, suppressed


def binned_metrics(
    neg: NDArray[np.float64], pos: NDArray[np.float64], cuts: Sequence[float]
) -> dict[str, Any]:
    """AUROC, AUPRC and calibration of binned scores (module docstring)."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    out: dict[str, Any] = {"n": n_pos + n_neg, "cases": n_pos, "auroc": None, "auprc": None}
    if n_pos > 0 and n_neg > 0:
        # Bins from the highest risk down: a case beats every non-case in lower bins, ties half.
        below_neg = np.cumsum(np.r_[0.0, neg[:-1]])
        out["auroc"] = float(np.sum(pos * (below_neg + 0.5 * neg)) / (n_pos * n_neg))
        tp = np.cumsum(pos[::-1])
        fp = np.cumsum(neg[::-1])
        keep = (tp + fp) > 0
        precision = np.where(keep, tp / np.where(keep, tp + fp, 1.0), 0.0)
        recall = tp / n_pos
        out["auprc"] = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    calibration = []
    for b, (lo, hi) in enumerate(bin_ranges(cuts)):
        total = float(pos[b] + neg[b])
        calibration.append(
            {
                "bin": b,
                "lower": lo,
                "upper": hi,
                "n": total,
                "observed": float(pos[b]) / total if total > 0 else None,
            }
        )
    out["calibration"] = calibration
    return out


def roc_points(neg: NDArray[np.float64], pos: NDArray[np.float64]) -> list[tuple[float, float]]:
    """(false-positive rate, true-positive rate) at each bin edge, from the highest risk down."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return []
    tpr = np.r_[0.0, np.cumsum(pos[::-1]) / n_pos]
    fpr = np.r_[0.0, np.cumsum(neg[::-1]) / n_neg]
    return [(float(a), float(b)) for a, b in zip(fpr, tpr, strict=True)]


__all__ = [
    "DEFAULT_BINS",
    "auprc",
    "auroc",
    "bin_labels",
    "bin_levels",
    "bin_of",
    "bin_ranges",
    "binned_metrics",
    "brier",
    "counts_from_cells",
    "roc_points",
]
