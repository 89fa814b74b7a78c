"""Plots of a federated model (:class:`~phds.sdk.results_learning.FitResult`): ROC, calibration,
convergence; matplotlib's Agg canvas, as the other SDK plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from phds.errors import InputError
from phds.sdk.plots import _figure, save

if TYPE_CHECKING:
    from phds.sdk.results_learning import FitResult


def plot_fit(result: FitResult, kind: str, path: str | Path | None = None) -> Figure:
    draw = {"roc": _roc, "calibration": _calibration, "convergence": _convergence}.get(kind)
    if draw is None:
        raise InputError("kind is one of roc, calibration, convergence", field="kind")
    fig = draw(result)
    if path is not None:
        save(fig, path)
    return fig


def _roc(result: FitResult) -> Figure:
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    if result.roc:
        fpr, tpr = zip(*result.roc, strict=True)
        auc = float(result.metrics["auroc"].astype(float)["pooled"])
        ax.plot(fpr, tpr, marker="o", label=f"pooled, binned (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"{result.algorithm}: held-out ROC over {len(result.hospitals)} hospitals")
    ax.legend(loc="lower right")
    return fig


def _calibration(result: FitResult) -> Figure:
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    cal = result.calibration
    if not cal.empty:
        used = cal[cal["observed"].notna()]
        mid = (used["lower"] + used["upper"]) / 2
        ax.scatter(mid, used["observed"], s=20 + used["n"].astype(float) ** 0.5 * 4, label="observed rate")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    ax.set_xlabel("predicted risk (bin midpoint)")
    ax.set_ylabel("observed rate")
    ax.set_title("calibration on the held-out rows (pooled bins)")
    ax.legend(loc="upper left")
    return fig


def _convergence(result: FitResult) -> Figure:
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    curve = result.curve.dropna(subset=["loss"])
    ax.plot(curve["round"], curve["loss"], marker=".", label=f"{result.algorithm} network log-loss")
    ax.set_xlabel("round")
    ax.set_ylabel("mean log-loss at the global model")
    ax.legend()
    return fig


__all__ = ["plot_fit"]
