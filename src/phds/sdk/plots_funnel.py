"""Funnel plots of a benchmarking result (Spiegelhalter 2005, *Stat Med* 24:1185–1202).

Two panels, drawn with matplotlib's object API on the Agg canvas:

* **Risk-adjusted:** O/E against the expected count E, with the control limits ``1 ± z √(φ/E)`` at 95%
  (dashed) and 99.8% (solid) around the target 1;
* **Crude:** the rate (a proportion, or a mean for a continuous indicator) against n, with Spiegelhalter's
  exact binomial limits around the network rate (normal limits ``m ± z s/√n`` for a mean).

The limits are those of :mod:`phds.analyses.benchmarking_stats`, the same functions that set each
hospital's flag at the hub. The requester's own hospital is drawn in a second colour; a hospital whose
observed value the gate suppressed has no point, and the caption says so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from phds.analyses.benchmarking_stats import LIMITS, proportion_limits, ratio_limits, z_of
from phds.errors import InputError
from phds.sdk.plots import _figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from phds.sdk.results_benchmark import BenchmarkResult

STYLES = {"95%": "--", "99.8%": "-"}
POINT, OWN = "#1f4e79", "#c0392b"


def _grid(values: list[float]) -> np.ndarray:
    low, high = max(min(values) * 0.5, 1e-9), max(values) * 1.3
    return np.geomspace(low, high, 200) if high / low > 20 else np.linspace(low, high, 200)


def _points(ax: Axes, rows: list[dict[str, Any]], x_key: str, y_key: str) -> None:
    for i, row in enumerate(sorted(rows, key=lambda r: float(r.get(x_key) or 0))):
        x, y = row.get(x_key), row.get(y_key)
        if x is None or y is None:
            continue
        colour = OWN if row.get("own") else POINT
        ax.scatter([float(x)], [float(y)], s=36, color=colour, zorder=3)
        ax.annotate(
            str(row["hospital"]),
            (float(x), float(y)),
            textcoords="offset points",
            xytext=(5, 4 if i % 2 == 0 else -11),  # alternate sides: neighbours do not overlap
            fontsize=8,
            color=colour,
        )


def funnel_plot(result: BenchmarkResult) -> Figure:
    """The two funnel panels of *result* (module docstring)."""
    rows = result.rows
    expected = [float(r["expected"]) for r in rows if r.get("expected") and r.get("ratio") is not None]
    if not expected:
        raise InputError("no hospital has an observed and expected value to plot", field="plot")
    fig = _figure(11.0, 4.8)
    left, right = fig.subplots(1, 2)
    grid = _grid(expected)
    for name, cov in LIMITS.items():
        bounds = np.array([ratio_limits(float(e), cov, result.dispersion) for e in grid])
        left.plot(grid, bounds[:, 0], STYLES[name], color="0.4", lw=1, label=f"{name} limits")
        left.plot(grid, bounds[:, 1], STYLES[name], color="0.4", lw=1)
    left.axhline(1.0, color="0.2", lw=0.8)
    _points(left, rows, "expected", "ratio")
    left.set_xlabel("Expected (E, from the federated risk model)")
    left.set_ylabel("Observed / expected")
    left.set_title("Risk-adjusted: O/E")
    left.legend(loc="best", fontsize=8, frameon=False)

    sizes = [float(r["n"]) for r in rows if r.get("crude") is not None]
    n_grid = np.unique(np.round(_grid(sizes)).astype(int).clip(min=1))
    binary = result.outcome_type == "binary"
    for name, cov in LIMITS.items():
        if binary:
            bounds = np.array([proportion_limits(result.target, int(n), cov) for n in n_grid])
        else:
            half = z_of(cov) * result.target_sd / np.sqrt(n_grid)
            bounds = np.column_stack([result.target - half, result.target + half])
        right.plot(n_grid, bounds[:, 0], STYLES[name], color="0.4", lw=1, label=f"{name} limits")
        right.plot(n_grid, bounds[:, 1], STYLES[name], color="0.4", lw=1)
    right.axhline(result.target, color="0.2", lw=0.8)
    _points(right, rows, "n", "crude")
    right.set_xlabel("Patients in the cohort (n)")
    right.set_ylabel("Crude proportion" if binary else f"Crude mean {result.outcome}")
    right.set_title("Crude: " + ("proportion" if binary else "mean") + " (network target line)")
    missing = [str(r["hospital"]) for r in rows if r.get("ratio") is None]
    caption = f"{result.indicator} — funnel limits after Spiegelhalter (2005)"
    if missing:
        caption += f"; not plotted (observed value suppressed): {', '.join(missing)}"
    if not math.isclose(result.dispersion, 1.0):
        caption += f"; limits inflated by the dispersion φ = {result.dispersion:.3g}"
    fig.suptitle(caption, fontsize=10)
    return fig


__all__ = ["funnel_plot"]
