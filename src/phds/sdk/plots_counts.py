"""Plots of counts: population pyramids (sex × ICH E11 age group, or two cohorts), grouped bars, and
feasibility breakdowns. Drawn as :mod:`phds.sdk.plots` draws (the Agg canvas, no pyplot); chosen by
:func:`phds.sdk.plots.plot_result`.

Counts are drawn as released: a suppressed cell at its lower bound, with a hatched bar up to its upper
bound, and labelled with the released text (``<5``, ``20–26``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from phds.errors import InputError
from phds.sdk.plots import _figure
from phds.sdk.results import FeasibilityResult

SEX_WORDS = ("sex", "gender")


def _two_levels(levels: Sequence[str]) -> list[str]:
    return [lv for lv in levels if lv not in ("NA", "other")]


def table_plot(result: Any) -> Figure:
    """A pyramid when one variable has two levels (e.g. sex × age group), grouped bars otherwise."""
    counts = result.counts()
    rows, cols = _two_levels(result.row_levels), _two_levels(result.column_levels)
    if result.columns and (len(cols) == 2 or len(rows) == 2):
        sides_are_columns = len(cols) == 2 and (len(rows) != 2 or _is_sex(result.columns))
        parts = [grid.loc[rows, cols] for grid in (counts, result.counts(bound="upper"), result.to_frame())]
        low, high, shown = (p if sides_are_columns else p.T for p in parts)
        return pyramid_plot(low.astype(float), result.study.spec.title, high.astype(float), shown)
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    frame = counts.loc[rows, cols or counts.columns].astype(float)
    n_series = len(frame.columns)
    for k, column in enumerate(frame.columns):
        xs = [i + (k - (n_series - 1) / 2) * 0.8 / n_series for i in range(len(frame.index))]
        ax.bar(
            xs,
            frame[column].fillna(0).tolist(),
            width=0.8 / n_series,
            label=f"{result.columns or ''} {column}",
        )
    ax.set_xticks(range(len(frame.index)), list(frame.index))
    ax.set_xlabel(result.rows)
    ax.set_ylabel("persons (lower bound where suppressed)")
    ax.set_title(result.study.spec.title, fontsize=10)
    if result.columns:
        ax.legend(fontsize=8)
    return fig


def _is_sex(name: str | None) -> bool:
    return bool(name) and any(w in str(name).lower() for w in SEX_WORDS)


def pyramid_plot(frame: Any, title: str, upper: Any = None, labels: Any = None) -> Figure:
    """A population pyramid: *frame*'s rows are age groups (ICH E11 groups are put youngest at the
    bottom), its two columns the sides. Bars are the counts (a suppressed cell's lower bound); where
    *upper* is larger, a hatched bar reaches the upper bound. *labels* are the released displays."""
    frame = _youngest_first(frame)
    upper = frame if upper is None else upper.loc[frame.index, frame.columns]
    labels = frame.map(lambda v: f"{v:g}") if labels is None else labels.loc[frame.index, frame.columns]
    left, right = list(frame.columns)[:2]
    fig = _figure(7.5, 1.7 + 0.4 * len(frame.index))
    ax = fig.add_subplot()
    ys = list(range(len(frame.index)))
    tops = []
    for side, sign, colour in ((left, -1, "#4c72b0"), (right, 1, "#dd8452")):
        low = [float(v) if v == v else 0.0 for v in frame[side]]
        high = [max(float(v) if v == v else 0.0, lo) for v, lo in zip(upper[side], low, strict=True)]
        ax.barh(ys, [sign * v for v in low], color=colour, label=str(side))
        if any(h > lo for h, lo in zip(high, low, strict=True)):
            extra = [sign * (h - lo) for h, lo in zip(high, low, strict=True)]
            ax.barh(ys, extra, left=[sign * v for v in low], color=colour, alpha=0.35, hatch="///")
        tops += high
    pad = 0.015 * max([*tops, 1.0])
    for side, sign in ((left, -1), (right, 1)):
        for y, h, text in zip(ys, upper[side], labels[side], strict=True):
            ax.text(sign * ((float(h) if h == h else 0.0) + pad), y, str(text), va="center", fontsize=7,
                    ha="right" if sign < 0 else "left")  # fmt: skip
    top = max([*tops, 1.0])
    ax.set_xlim(-top * 1.25, top * 1.25)
    ticks = [t for t in ax.get_xticks() if abs(t) <= top * 1.25]
    ax.set_xticks(ticks, [f"{abs(t):g}" for t in ticks])
    ax.set_yticks(ys, [str(i) for i in frame.index])
    ax.set_ylabel(str(frame.index.name or ""))
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"persons ({frame.columns.name or 'sides'}: {left} left, {right} right)")
    hatched = "\nhatched: the range of a pooled count that includes a suppressed cell"
    ax.set_title(title + (hatched if (upper > frame).any().any() else ""), fontsize=10)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return fig


def _youngest_first(frame: Any) -> Any:
    """ICH E11 age groups in age order (youngest at the bottom of a pyramid); other levels as given."""
    from phds.paediatrics.ich_e11 import AgeGroup

    order = [g.value for g in AgeGroup.ordered()]
    if all(str(level) in order for level in frame.index):
        return frame.loc[sorted(frame.index, key=lambda level: order.index(str(level)))]
    return frame


def _drawn(cell: dict[str, Any]) -> float:
    """A released count as drawn: a noisy (DP) count at its value, a suppressed one at its lower bound."""
    return float((cell.get("value") if cell.get("dp") else cell.get("lower")) or 0)


def feasibility_plot(result: FeasibilityResult) -> Figure:
    """Persons per breakdown cell, one panel per breakdown, stacked by hospital (lower bounds)."""
    dims = list(result.breakdowns) or ["persons"]
    fig = _figure(4 + 3 * len(dims), 4.5)
    colours = matplotlib.colormaps["tab10"]
    for d, dim in enumerate(dims):
        ax = fig.add_subplot(1, len(dims), d + 1)
        cells = list(result.breakdowns.get(dim, {})) if dim in result.breakdowns else ["all"]
        base = [0.0] * len(cells)
        for k, hospital in enumerate(result.study.spec.hospitals):
            entry = result.hospitals.get(hospital) or {}
            table = (entry.get("breakdowns") or {}).get(dim) or {}
            if dim not in result.breakdowns:
                table = {"all": entry.get("persons") or {}}
            values = [_drawn(table.get(c) or {}) for c in cells]
            ax.bar(cells, values, bottom=base, color=colours(k), label=hospital)
            base = [b + v for b, v in zip(base, values, strict=True)]
        totals = [result.breakdowns[dim][c] for c in cells] if dim in result.breakdowns else [result.total]
        if any(t.estimate is not None for t in totals):  # differential privacy: the 95% interval
            estimates = [float(t.estimate or 0) for t in totals]
            below = [float(t.estimate or 0) - t.lower for t in totals]  # the interval stops at 0
            above = [t.upper - float(t.estimate or 0) for t in totals]
            ax.errorbar(cells, estimates, yerr=[below, above], fmt="none", ecolor="black", capsize=4,
                        label="network, 95% interval (DP)")  # fmt: skip
        ax.set_title(dim.replace("_", " "), fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        noisy = any(t.estimate is not None for t in totals)
        ax.set_ylabel("persons (noisy counts, DP)" if noisy else "persons (lower bound where suppressed)")
    fig.axes[0].legend(fontsize=8)
    fig.suptitle(result.study.spec.title, fontsize=10)
    return fig


def characterisation_plot(result: Any, variable: str | None = None) -> Figure:
    """A pyramid of a categorical *variable* (default: the first named like ``age``, else the first)
    with two cohorts as the sides, from the pooled counts (lower bounds where suppressed)."""
    categorical = [v for v in result.variables if v.get("kind") == "categorical"]
    if len(result.cohorts) != 2 or not categorical:
        raise InputError("a characterisation plot needs two cohorts and a categorical variable", field="plot")
    if variable is None:
        chosen = next((v for v in categorical if "age" in str(v["variable"]).lower()), categorical[0])
    else:
        chosen = next((v for v in categorical if v["variable"] == variable), None)
        if chosen is None:
            raise InputError(f"no categorical variable {variable!r} in this result", field="plot")
    import pandas as pd

    levels = [str(lv) for lv in chosen.get("levels") or [] if str(lv) not in ("NA", "other")]

    def grid(key: str) -> Any:
        cells = {
            c: [(chosen["by_cohort"][c]["pooled"].get(lv) or {}).get(key) for lv in levels]
            for c in result.cohorts
        }
        frame = pd.DataFrame(cells, index=pd.Index(levels, name=str(chosen["variable"])))
        frame.columns.name = "cohort"
        return frame

    low, high = grid("lower").astype(float), grid("upper").astype(float)
    return pyramid_plot(low, result.study.spec.title, high, grid("display"))
