"""``phds billing simulate``: project the network's finances month by month (docs/howto/simulate.md).

Prints a yearly table (revenue, costs, net, cash, payout per hospital, hospitals below the viability
line), the break-even month and, with ``--runs``, Monte Carlo bands; ``--json`` prints the documented
JSON instead, ``--plot DIR`` writes the charts, ``--compare`` puts other scenarios side by side.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable

    from phds.billing.simulator import SimulationResult, YearResult

console = Console()
err_console = Console(stderr=True)


def simulate(
    scenario: str = typer.Argument(
        ..., help="A scenario file (YAML or JSON), or a shipped scenario's name such as grant-funded-start."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (a list with --compare)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write PNG and SVG charts into this folder."),
    runs: int = typer.Option(1, "--runs", min=1, max=10_000, help="Monte Carlo runs; 1: expected demand."),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Monte Carlo seed (default: the scenario's)."
    ),
    compare: list[str] | None = typer.Option(
        None, "--compare", help="Another scenario to put side by side (repeatable)."
    ),
) -> None:
    """Project the operator's cash and each hospital's payout over the scenario's horizon."""
    from phds.billing.scenario import load_scenario
    from phds.billing.simulator import result_json
    from phds.billing.simulator import simulate as run

    loaded = [load_scenario(name) for name in [scenario, *(compare or [])]]
    results = [run(one, runs=runs, seed=seed) for one in loaded]
    if plot is not None:
        from phds.billing.simulator_plots import write_plots

        written = [path for result in results for path in write_plots(result, plot)]
        (err_console if as_json else console).print(f"wrote {len(written)} charts to {plot}", highlight=False)
    if as_json:
        data = [result_json(r) for r in results]
        typer.echo(json.dumps(data if compare else data[0], indent=2))
        return
    if compare:
        _print_comparison(results)
        return
    _print_result(results[0])


def _amount(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _k(value: Decimal | None, decimals: int = 0) -> str:
    return "—" if value is None else f"{value / 1000:,.{decimals}f}"


def _month(result: SimulationResult, month: int | None) -> str:
    return "none within the horizon" if month is None else f"month {month} ({result.months[month - 1].label})"


def _print_result(result: SimulationResult) -> None:
    console.print(
        f"[bold]{result.name}[/]: {result.horizon_years} years from {result.start}, tariff "
        f"{result.tariff_version}, amounts in {result.currency}",
        highlight=False,
    )
    if result.description:
        console.print(result.description, style="dim", highlight=False)
    bands = result.bands
    table = Table("year", "hosp.", "revenue", "costs", "net", "cash", title=f"{result.currency} thousands")
    for name in ("payout", "min", "below"):
        table.add_column(name)
    for y in result.years:
        row = [y.first_month[:4] if result.start.endswith("-01") else y.first_month, str(y.hospitals)]
        row += [_k(v) for v in (y.revenue, y.costs, y.net, y.cash_end)]
        row += [_k(y.payout_per_hospital_mean, 1), _k(y.payout_per_hospital_min, 1)]
        row.append(f"{y.hospitals_below_viability}/{y.hospitals}")
        table.add_row(*row)
    for column in table.columns[1:]:
        column.justify = "right"
    console.print(table)
    console.print(
        "payout: the mean net payout per hospital and year; min: the lowest; below: hospitals below the "
        "viability line",
        style="dim",
        highlight=False,
    )
    line = result.viability
    console.print(
        f"Break-even (cash back at the opening {_amount(result.opening_cash)} for good): "
        f"{_month(result, result.break_even_month)}\n"
        f"Self-sustaining (12-month net without grants ≥ 0 for good): "
        f"{_month(result, result.sustainable_from_month)}\n"
        f"Lowest cash: {_amount(result.lowest_cash)} in {_month(result, result.lowest_cash_month)}\n"
        f"Viability line: {result.currency} {_amount(result.viability_line)} a hospital and year "
        f"({line['currency']} {_amount(Decimal(line['amount']))} × {line['eur_per_unit']} {result.currency}/"
        f"{line['currency']}); hospitals below it by year: "
        f"{', '.join(str(y.hospitals_below_viability) for y in result.years)}",
        highlight=False,
    )
    if bands is not None:
        lo, mid, hi = (_month(result, m) for m in bands.break_even_month)
        mc = Table(
            "year",
            "revenue p5",
            "p50",
            "p95",
            "cash p5",
            "p50",
            "p95",
            title=f"Monte Carlo: {bands.runs} runs, seed {result.seed} ({result.currency} thousands)",
        )
        for i, y in enumerate(result.years):
            r, c = bands.revenue[i], bands.cash_end[i]
            mc.add_row(str(y.year), *(_k(v) for v in (r.p5, r.p50, r.p95, c.p5, c.p50, c.p95)))
        for column in mc.columns[1:]:
            column.justify = "right"
        console.print(mc)
        console.print(
            f"Break-even in {bands.break_even_share * 100:.1f}% of runs; p5 {lo}, p50 {mid}, p95 {hi}",
            highlight=False,
        )


def _print_comparison(results: list[SimulationResult]) -> None:
    currency = ", ".join(sorted({r.currency for r in results}))
    table = Table("", *(r.name for r in results), title=f"{currency} thousands")
    for column in table.columns[1:]:
        column.justify = "right"
    metrics: tuple[tuple[str, Callable[[YearResult], str]], ...] = (
        ("net", lambda y: _k(y.net)),
        ("cash at year end", lambda y: _k(y.cash_end)),
        ("mean payout per hospital", lambda y: _k(y.payout_per_hospital_mean, 1)),
        ("hospitals below viability", lambda y: f"{y.hospitals_below_viability}/{y.hospitals}"),
    )
    for title, cell in metrics:
        table.add_row(f"[bold]{title}[/]", *("" for _ in results))
        for i in range(max(r.horizon_years for r in results)):
            starts = {r.years[i].first_month[:4] for r in results if i < len(r.years)}
            label = f"  year {i + 1}" + (f" ({starts.pop()})" if len(starts) == 1 else "")
            table.add_row(label, *(cell(r.years[i]) if i < len(r.years) else "" for r in results))
        table.add_section()
    table.add_row("[bold]break-even month[/]", *(_short(r, r.break_even_month) for r in results))
    table.add_row("[bold]self-sustaining from[/]", *(_short(r, r.sustainable_from_month) for r in results))
    table.add_row("[bold]lowest cash[/]", *(_k(r.lowest_cash) for r in results))
    console.print(table)


def _short(result: SimulationResult, month: int | None) -> str:
    return "none" if month is None else f"{month} ({result.months[month - 1].label})"


__all__ = ["simulate"]
