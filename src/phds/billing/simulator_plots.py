"""Charts of a simulation, as PNG and SVG: revenue by stream, the cash curve, payouts against viability.

matplotlib is imported inside the functions (the CLI starts without it) and draws on the Agg canvas
through the object API, never a display.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phds.billing.simulator_result import SimulationResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Each stream's label and colour, the same in every scenario's chart (grants grey, as outside money).
STREAMS: dict[str, tuple[str, str]] = {
    "grants": ("Grants", "#9e9e9e"),
    "subscriptions": ("Subscriptions (operator share)", "tab:red"),
    "feasibility": ("Feasibility queries", "tab:orange"),
    "analytical_study": ("Analytical studies", "tab:blue"),
    "research": ("Research studies", "tab:purple"),
    "clinical_trial_support": ("Clinical-trial support", "tab:green"),
    "innovation": ("Innovation projects", "tab:olive"),
    "application_fee": ("Application fees", "tab:brown"),
    "synthetic_dataset": ("Synthetic datasets", "tab:pink"),
    "analyst_hours": ("Analyst hours", "tab:cyan"),
    "project_month": ("Project months", "#393b79"),
}


def _figure() -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _money_axis(ax: Any, currency: str) -> None:
    from matplotlib.ticker import FuncFormatter

    def fmt(value: float, _pos: int) -> str:
        size = abs(value)
        if size >= 1e6:
            return f"{value / 1e6:,.2f}".rstrip("0").rstrip(".") + "M"  # 1.25M, not a rounded 1.2M
        return f"{value / 1e3:,.1f}".rstrip("0").rstrip(".") + "k" if size >= 1e3 else f"{value:,.0f}"

    ax.yaxis.set_major_formatter(FuncFormatter(fmt))
    ax.set_ylabel(currency)
    ax.grid(axis="y", alpha=0.3)
    ax.axhline(0, color="black", linewidth=0.8)


def _legend(fig: Figure, ax: Any, ncols: int = 3) -> None:
    """The legend under the axes, where it hides no data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=9, frameon=False)


def _year_ticks(result: SimulationResult) -> list[str]:
    return [f"Y{y.year}\n{y.first_month[:4]}" for y in result.years]


def _f(value: Decimal | None) -> float:
    return float(value) if value is not None else float("nan")


def revenue_plot(result: SimulationResult) -> Figure:
    """Stacked bars of the operator's yearly revenue by stream, with its costs as a line."""

    fig = _figure()
    ax = fig.add_subplot()
    x = list(range(len(result.years)))
    streams = [
        s for s in result.years[0].revenue_by_stream if any(y.revenue_by_stream[s] for y in result.years)
    ]
    bottom = [0.0] * len(x)
    for stream in streams:
        heights = [float(y.revenue_by_stream[stream]) for y in result.years]
        label, colour = STREAMS.get(stream, (stream, "black"))
        ax.bar(x, heights, bottom=bottom, label=label, color=colour, width=0.7)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    costs = [float(y.costs) for y in result.years]
    ax.plot(x, costs, color="black", marker="o", linewidth=2, label="Operator costs")
    ax.set_xticks(x, _year_ticks(result))
    _money_axis(ax, f"{result.currency} per year")
    ax.set_title(
        f"{result.name}: the operator's revenue by stream against its costs\n"
        "(each service stream is the operator's share of its fees)",
        fontsize=12,
    )
    _legend(fig, ax, 4)
    return fig


def cash_plot(result: SimulationResult) -> Figure:
    """The operator's month-end cash, with the p5-p95 Monte Carlo band and the break-even month."""
    fig = _figure()
    ax = fig.add_subplot()
    x = [m.month for m in result.months]
    if result.bands is not None:
        lo, hi = [float(b.p5) for b in result.bands.cash], [float(b.p95) for b in result.bands.cash]
        ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.2, label=f"p5-p95 of {result.bands.runs} runs")
        ax.plot(
            x,
            [float(b.p50) for b in result.bands.cash],
            color="tab:blue",
            linestyle="--",
            linewidth=1,
            label="Median of the runs",
        )
    ax.plot(
        x, [float(m.cash) for m in result.months], color="tab:blue", linewidth=2.2, label="Expected demand"
    )
    ax.axhline(float(result.opening_cash), color="grey", linestyle=":", label="Opening cash")
    if result.break_even_month is not None:
        label = result.months[result.break_even_month - 1].label
        ax.axvline(
            result.break_even_month,
            color="tab:green",
            linestyle="--",
            label=f"Break-even: month {result.break_even_month} ({label})",
        )
    ax.set_xticks([m.month for m in result.months if m.month % 12 == 1], _year_ticks(result))
    ax.set_xlim(1, len(x))
    _money_axis(ax, f"{result.currency} at month end")
    verdict = "no break-even within the horizon" if result.break_even_month is None else "breaks even"
    ax.set_title(f"{result.name}: the operator's cash balance ({verdict})", fontsize=12)
    _legend(fig, ax, 3)
    return fig


def payout_plot(result: SimulationResult) -> Figure:
    """Each year's net payout per hospital (mean and lowest) against the viability line."""
    fig = _figure()
    ax = fig.add_subplot()
    x = list(range(len(result.years)))
    mean = [_f(y.payout_per_hospital_mean) for y in result.years]
    ax.bar(x, mean, width=0.6, color="tab:blue", alpha=0.8, label="Mean net payout per hospital")
    ax.plot(
        x,
        [_f(y.payout_per_hospital_min) for y in result.years],
        color="tab:orange",
        marker="v",
        linestyle="none",
        markersize=9,
        label="Lowest net payout of a hospital (joiners pay onboarding)",
    )
    if result.bands is not None:
        b = result.bands.payout_mean
        err = [
            [m - float(v.p5) for m, v in zip(mean, b, strict=True)],
            [float(v.p95) - m for m, v in zip(mean, b, strict=True)],
        ]
        ax.errorbar(x, mean, yerr=err, fmt="none", ecolor="black", capsize=4, label="Mean: p5-p95 of runs")
    v = result.viability
    ax.axhline(
        float(result.viability_line),
        color="tab:red",
        linestyle="--",
        linewidth=2,
        label=f"Viability line {result.currency} {result.viability_line:,.0f} "
        f"({v['currency']} {Decimal(v['amount']):,.0f} × {v['eur_per_unit']})",
    )
    highs = [float(b.p95) for b in result.bands.payout_mean] if result.bands is not None else []
    top = max([float(result.viability_line), *[m for m in mean if m == m], *highs])
    for i, y in enumerate(result.years):
        ax.annotate(
            f"{y.hospitals_below_viability}/{y.hospitals}\nbelow",
            (i, top * 1.04),
            ha="center",
            va="bottom",
            fontsize=8,
            color="tab:red" if y.hospitals_below_viability else "tab:green",
        )
    ax.set_ylim(top=top * 1.22)
    ax.set_xticks(x, _year_ticks(result))
    _money_axis(ax, f"{result.currency} per hospital and year")
    ax.set_title(f"{result.name}: each hospital's net payout against the viability line", fontsize=12)
    _legend(fig, ax, 2)
    return fig


def write_plots(result: SimulationResult, directory: str | Path) -> list[Path]:
    """Write the three charts of *result* as PNG and SVG into *directory*: ``<scenario>-<chart>.<ext>``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for chart, draw in (("revenue", revenue_plot), ("cash", cash_plot), ("payouts", payout_plot)):
        fig = draw(result)
        for ext in ("png", "svg"):
            path = out / f"{result.name}-{chart}.{ext}"
            fig.savefig(path, format=ext, dpi=150, metadata={"Software": "PHDS"} if ext == "png" else None)
            written.append(path)
    return written


__all__ = ["cash_plot", "payout_plot", "revenue_plot", "write_plots"]
