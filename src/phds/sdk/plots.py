"""Plots of study results, drawn with matplotlib's object API on the Agg canvas (no display, no pyplot).

:func:`plot_result` picks the plot by the result's analysis and writes PNG or SVG by the file's suffix:

* ``survival.km`` → :func:`km_plot`: pooled step curves with 95% bands (per group, or per hospital
  dashed), the numbers at risk at the bin starts in a table under the axes, the log-rank test in the title;
* ``stats.glm``, ``survival.cox`` → :func:`forest_plot`: estimates with 95% intervals (odds ratios for a
  binomial GLM, rate ratios for a Poisson one, hazard ratios for Cox, on a log axis). These analyses
  release only pooled estimates, so per-hospital rows appear only when a result carries ``by_hospital``;
* ``stats.table`` with a two-level variable (sex) → :func:`~phds.sdk.plots_counts.pyramid_plot` of the other;
  other tables → grouped bars;
* ``stats.summary`` → means with 95% intervals per hospital and pooled (:func:`forest_plot` layout);
* ``stats.characterisation`` of two cohorts (girls, boys) → :func:`~phds.sdk.plots_counts.pyramid_plot` of a
  categorical variable (one named like ``age`` first) with the cohorts as the two sides;
* ``benchmarking.indicators`` → :func:`~phds.sdk.plots_funnel.funnel_plot` (O/E and crude rate funnels);
* ``feasibility.count`` → persons per breakdown cell, stacked by hospital (sex and age group are released
  separately, so a feasibility result cannot give a pyramid; use ``stats.table`` of sex × age group).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # never a display, even if pyplot is imported later in this process

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from phds.errors import InputError
from phds.sdk.results import FeasibilityResult, StudyResult

FORMATS = {".png": "png", ".svg": "svg"}
POOLED = "pooled"
LINEAR_SUBS = tuple(float(i) for i in range(1, 10))


def _figure(width: float, height: float, layout: Literal["constrained"] | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def plot_format(path: str | Path) -> str:
    """``png`` or ``svg`` by the suffix of *path*; anything else is refused (check before the work)."""
    file = Path(path)
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise InputError(
            f"a plot is written as .png or .svg, not {file.suffix or 'no suffix'!r}", field="plot"
        )
    return fmt


def save(fig: Figure, path: str | Path) -> Path:
    """Write *fig* as PNG or SVG, chosen by the suffix of *path*."""
    fmt, file = plot_format(path), Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, format=fmt, dpi=150, metadata={"Software": "PHDS"} if fmt == "png" else None)
    return file


def plot_result(result: StudyResult, path: str | Path | None = None) -> Figure:
    """The plot for *result*'s analysis; written to *path* (.png or .svg) when given."""
    from phds.sdk.plots_counts import characterisation_plot, feasibility_plot, table_plot
    from phds.sdk.results_benchmark import BenchmarkResult
    from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
    from phds.sdk.results_learning import FitResult
    from phds.sdk.results_stats import CoxResult, GlmResult, KmResult

    if isinstance(result, KmResult):
        fig = km_plot(result)
    elif isinstance(result, GlmResult | CoxResult):
        fig = forest_plot(result)
    elif isinstance(result, TableResult):
        fig = table_plot(result)
    elif isinstance(result, SummaryResult):
        fig = summary_plot(result)
    elif isinstance(result, FeasibilityResult):
        fig = feasibility_plot(result)
    elif isinstance(result, CharacterisationResult):
        fig = characterisation_plot(result)
    elif isinstance(result, BenchmarkResult):
        from phds.sdk.plots_funnel import funnel_plot

        fig = funnel_plot(result)
    elif isinstance(result, FitResult):
        from phds.sdk.plots_learning import plot_fit

        fig = plot_fit(result, "roc")
    else:
        raise InputError(f"no plot for analysis {result.study.spec.analysis.name}", field="plot")
    if path is not None:
        save(fig, path)
    return fig


# -- forest plots -----------------------------------------------------------------------------------


def _rows_glm(result: Any) -> tuple[list[tuple[str, float, float, float]], str, bool]:
    family = result.family
    exp = family in ("binomial", "poisson")
    label = {"binomial": "odds ratio", "poisson": "rate ratio"}.get(family, "coefficient")
    rows: list[tuple[str, float, float, float]] = []
    scale = math.exp if exp else float
    for c in result.coefficients:
        if str(c["term"]) in ("Intercept", "(Intercept)"):
            continue
        est, lo, hi = (scale(float(c[k])) for k in ("estimate", "ci_lower", "ci_upper"))
        rows.append((str(c["term"]), est, lo, hi))
    return rows, f"{label} (95% CI)", exp


def _rows_cox(result: Any) -> list[tuple[str, float, float, float]]:
    return [
        (str(c["covariate"]), float(c["hazard_ratio"]), float(c["hr_lower_95"]), float(c["hr_upper_95"]))
        for c in result.coefficients
    ]


def forest_plot(result: Any) -> Figure:
    """Estimates with 95% intervals, one row per term; pooled (and per hospital when released)."""
    from phds.sdk.results_stats import CoxResult

    if isinstance(result, CoxResult):
        rows, xlabel, log = _rows_cox(result), "hazard ratio (95% CI)", True
        hospitals = {h: _rows_cox(_Coefs(c)) for h, c in result.by_hospital.items()}
    else:
        rows, xlabel, log = _rows_glm(result)
        hospitals = {h: _rows_glm(_Coefs(c, result.family))[0] for h, c in result.by_hospital.items()}
    series = {**hospitals, POOLED: rows}
    note = "" if hospitals else "pooled estimates only: the analysis releases no per-hospital estimates"
    return _forest(series, xlabel, log, result.study.spec.title, note, reference=1.0 if log else 0.0)


class _Coefs:
    """A per-hospital ``by_hospital`` entry read like a result (its ``coefficients``)."""

    def __init__(self, data: Any, family: str = "gaussian") -> None:
        self.coefficients = data.get("coefficients", data) if isinstance(data, dict) else data
        self.family = family


def _forest(
    series: dict[str, list[tuple[str, float, float, float]]],
    xlabel: str,
    log: bool,
    title: str,
    note: str,
    reference: float | None,
    dodge: bool = True,
) -> Figure:
    terms = list(dict.fromkeys(t for rows in series.values() for t, *_ in rows))
    if not terms:
        raise InputError("the result has no estimates to plot", field="plot")
    fig = _figure(8, 1.4 + 0.45 * len(terms) * (max(1, len(series) / 2) if dodge else 1))
    ax = fig.add_subplot()
    width = 0.7 / len(series) if dodge else 0.0
    colours = matplotlib.colormaps["tab10"]
    for k, (name, rows) in enumerate(series.items()):
        pooled = name == POOLED
        offset = (len(series) - 1) / 2 * width - k * width
        ys = [terms.index(t) + offset for t, *_ in rows]
        est = [r[1] for r in rows]
        err = [[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]]
        ax.errorbar(
            est, ys, xerr=err, fmt="D" if pooled else "o", color="black" if pooled else colours(k),
            markersize=7 if pooled else 5, capsize=3, label=name, linewidth=2 if pooled else 1,
        )  # fmt: skip
    if reference is not None:
        ax.axvline(reference, color="grey", linestyle=":", linewidth=1)
    if log:
        ax.set_xscale("log")
        low, high = ax.get_xlim()
        decades = math.log10(high / low)
        subs = (1.0, 2.0, 5.0) if decades > 1.5 else (1.0, 2.0, 3.0, 5.0) if decades > 0.6 else LINEAR_SUBS
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    shown = [r for rows in series.values() for r in rows] if not dodge else series[POOLED]
    for t, mid, low_ci, high_ci in shown:  # the numbers, printed at the right edge
        ax.annotate(f"{mid:.4g} ({low_ci:.4g} to {high_ci:.4g})", (1.01, terms.index(t)),
                    xycoords=("axes fraction", "data"), va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(range(len(terms)), terms)
    ax.set_ylim(len(terms) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="best")
    return fig


def summary_plot(result: Any) -> Figure:
    """Mean with its 95% interval (mean ± 1.96·SD/√n) per hospital and pooled."""
    rows: list[tuple[str, float, float, float]] = []
    entries = [*result.by_hospital.items(), (POOLED, {"n": result.n, "mean": result.mean, "sd": result.sd})]
    for name, s in entries:
        n, mean, sd = int(s["n"]), float(s["mean"]), float(s.get("sd") or 0.0)
        half = 1.96 * sd / math.sqrt(n) if n else 0.0
        rows.append((name, mean, mean - half, mean + half))
    series = {"hospitals": rows[:-1], POOLED: rows[-1:]}
    title = f"{result.study.spec.title}\nmean ± 1.96·SD/√n"
    return _forest(series, f"mean of {result.variable} (95% CI)", False, title, "", None, dodge=False)


# -- Kaplan–Meier ------------------------------------------------------------------------------------


Steps = tuple[list[float], list[float], list[float], list[float]]


def _km_steps(points: Sequence[dict[str, Any]], right: float, value: Any = None) -> Steps:
    """Step coordinates on the agreed bins: 1 until the first bin ends, then each closed bin's value from
    its end (x, y); the open last bin's value, whose end is not released, from its start (open x, y)."""
    get = value or (lambda p: float(p["survival"]))
    closed = [p for p in points if p.get("end") is not None]
    xs = [float(points[0]["start"]), *(float(p["end"]) for p in closed)]
    ys = [1.0, *(get(p) for p in closed)]
    if len(closed) == len(points):
        return [*xs, right], [*ys, ys[-1]], [], []
    start = float(points[-1]["start"])
    return xs, ys, [start, start, right], [ys[-1], get(points[-1]), get(points[-1])]


def km_plot(result: Any, at_risk_times: Sequence[float] | None = None) -> Figure:
    """Pooled survival curves with their 95% bands (per-hospital curves dashed when there are no groups)
    and the numbers at risk at the bin starts in a table under the axes.

    Times are the analysis's agreed bins, and only bin totals are released: the survival after a bin's
    events is drawn from the bin's end. The last bin is open (its end would be a maximum), so its step
    is drawn dotted from its start, one typical bin width long."""
    curves: dict[str, list[dict[str, Any]]] = {g: c for g, c in result.curves.items() if c}
    if not curves:
        raise InputError("the result has no survival curves", field="plot")
    starts = sorted({float(p["start"]) for c in curves.values() for p in c})
    ends = sorted({float(p["end"]) for c in curves.values() for p in c if p.get("end") is not None})
    widths = [e - s for s, e in zip(starts, ends, strict=False) if e > s]
    right = (ends[-1] if ends else starts[-1]) + (sorted(widths)[len(widths) // 2] if widths else 1.0)
    n_rows = len(curves) + (0 if result.by_group else len(result.by_hospital))
    height = 5.0 + 0.22 * n_rows
    fig = _figure(8, height, layout=None)  # fixed margins: the at-risk numbers line up with the time axis
    grid = fig.add_gridspec(
        2, 1, height_ratios=[4, 0.3 + 0.22 * n_rows], left=0.14, right=0.97,
        top=1 - 0.7 / height, bottom=0.1 / height, hspace=0.9 / height * 2,
    )  # fmt: skip
    ax = fig.add_subplot(grid[0])
    table = fig.add_subplot(grid[1], sharex=ax)
    colours = matplotlib.colormaps["tab10"]
    group = result.group
    for k, (name, points) in enumerate(curves.items()):
        label = "pooled" if name == "all" else f"{group} = {name}"
        xs, ys, open_x, open_y = _km_steps(points, right)
        ax.step(xs, ys, where="post", color=colours(k), linewidth=2, label=label)
        ax.step(open_x, open_y, where="post", color=colours(k), linewidth=2, linestyle=":")
        if all(p.get("ci_lower_95") is not None and p.get("ci_upper_95") is not None for p in points):
            low, high = _km_steps(points, right, _bound(min)), _km_steps(points, right, _bound(max))
            ax.fill_between(low[0], low[1], high[1], step="post", color=colours(k), alpha=0.15, lw=0)
            if low[2]:  # the open last bin's band, fainter
                ax.fill_between(
                    low[2][1:], low[3][1:], high[3][1:], step="post", color=colours(k), alpha=0.08, lw=0
                )
    if not result.by_group:
        for j, (hospital, points) in enumerate(result.by_hospital.items()):
            if points:
                hx, hy, hox, hoy = _km_steps(points, right)
                style: dict[str, Any] = {"color": colours(j + 1), "linewidth": 1}
                ax.step(hx, hy, where="post", linestyle="--", label=hospital, **style)
                ax.step(hox, hoy, where="post", linestyle=":", **style)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(starts[0] - 0.03 * (right - starts[0]), right)
    ax.set_ylabel("survival probability")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    title = result.study.spec.title
    lr = result.log_rank
    if lr and lr.get("p") is not None:
        statistic, p = float(lr["statistic"]), float(lr["p"])
        title += f"\nlog-rank ({lr.get('groups', 'groups')}): χ² = {statistic:.3g}, p = {p:.3g}"
    if len(starts) < 3:
        title += f"\nonly {len(starts)} time bin(s) that every hospital admits (counts 0 or ≥ k in each)"
    ax.set_title(title, fontsize=10)
    ticks = (
        list(at_risk_times) if at_risk_times is not None else starts[:: max(1, math.ceil(len(starts) / 10))]
    )
    rows = {("pooled" if n == "all" else f"{group} = {n}"): _risk_row(c, ticks) for n, c in curves.items()}
    if not result.by_group:
        rows.update({h: _risk_row(c, ticks) for h, c in result.by_hospital.items() if c})
    table.set_ylim(len(rows) - 0.5, -0.5)
    table.set_yticks(range(len(rows)), list(rows))
    for row, values in enumerate(rows.values()):
        for t, value in zip(ticks, values, strict=True):
            table.text(t, row, "" if value is None else str(value), ha="center", va="center", fontsize=8)
    table.set_title("number at risk", fontsize=8, loc="left")
    table.tick_params(axis="both", length=0, labelbottom=False)
    for spine in table.spines.values():
        spine.set_visible(False)
    ax.set_xticks(ticks)
    ax.set_xlabel("time (bin starts)")
    return fig


def _bound(pick: Any) -> Any:
    """The lower (``min``) or upper (``max``) end of a bin's 95% band."""
    return lambda p: float(pick(float(p["ci_lower_95"]), float(p["ci_upper_95"])))


def _risk_row(points: Sequence[dict[str, Any]], ticks: Sequence[float]) -> list[int | None]:
    from phds.sdk.results_stats import _at_risk

    return [_at_risk(points, t) for t in ticks]
