"""The simulator's results: typed per month and per year, with Monte Carlo bands, and as JSON.

:func:`result_json` gives the documented schema (``docs/howto/simulate.md``): amounts are decimal strings
with two decimals, counts and months are integers, and ``null`` stands for "none" (no break-even month
within the horizon, no hospital to pay in a year, no bands for a single run).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from phds.billing.money import CENT


@dataclass(frozen=True)
class MonthResult:
    """One month: the operator's revenue by stream, costs by item, net and cash; the hospitals' pool."""

    month: int
    label: str
    hospitals: int
    revenue_by_stream: dict[str, Decimal]
    billed_by_stream: dict[str, Decimal]
    costs_by_item: dict[str, Decimal]
    pool: Decimal
    pass_through: Decimal
    steward: Decimal
    revenue: Decimal
    costs: Decimal
    net: Decimal
    cash: Decimal


@dataclass(frozen=True)
class CohortPayout:
    """The payout of each hospital that joined in one year (year 1 holds the initial hospitals)."""

    joined_year: int
    hospitals: int
    payout: Decimal


@dataclass(frozen=True)
class YearResult:
    """One simulated year (12 months from the start month's anniversary)."""

    year: int
    first_month: str
    last_month: str
    hospitals: int
    revenue_by_stream: dict[str, Decimal]
    billed_by_stream: dict[str, Decimal]
    costs_by_item: dict[str, Decimal]
    revenue: Decimal
    billed: Decimal
    pool: Decimal
    pass_through: Decimal
    costs: Decimal
    net: Decimal
    cash_end: Decimal
    payouts: list[CohortPayout]
    payout_per_hospital_mean: Decimal | None
    payout_per_hospital_min: Decimal | None
    hospitals_below_viability: int


@dataclass(frozen=True)
class Band:
    """Nearest-rank percentiles over the Monte Carlo runs."""

    p5: Decimal
    p50: Decimal
    p95: Decimal


@dataclass(frozen=True)
class Bands:
    runs: int
    cash: list[Band]  # per month
    revenue: list[Band]  # per year
    net: list[Band]
    cash_end: list[Band]
    payout_mean: list[Band]
    break_even_share: Decimal  # share of runs that break even within the horizon
    break_even_month: tuple[int | None, int | None, int | None]  # p5, p50, p95 (None: not in horizon)


@dataclass(frozen=True)
class SimulationResult:
    name: str
    description: str
    start: str
    horizon_years: int
    currency: str
    tariff_version: str
    seed: int
    runs: int
    opening_cash: Decimal
    viability: dict[str, str]
    viability_line: Decimal  # in the tariff's currency
    months: list[MonthResult]
    years: list[YearResult]
    break_even_month: int | None
    sustainable_from_month: int | None
    lowest_cash: Decimal
    lowest_cash_month: int
    bands: Bands | None = None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(CENT))


def _amounts(d: dict[str, Decimal]) -> dict[str, str | None]:
    return {k: _money(v) for k, v in d.items()}


def result_json(result: SimulationResult) -> dict[str, Any]:
    """*result* as JSON-ready data; amounts are decimal strings (the schema: docs/howto/simulate.md)."""
    years = [
        {
            "year": y.year,
            "first_month": y.first_month,
            "last_month": y.last_month,
            "hospitals": y.hospitals,
            "revenue": _money(y.revenue),
            "costs": _money(y.costs),
            "net": _money(y.net),
            "cash_end": _money(y.cash_end),
            "payout_per_hospital_mean": _money(y.payout_per_hospital_mean),
            "payout_per_hospital_min": _money(y.payout_per_hospital_min),
            "hospitals_below_viability": y.hospitals_below_viability,
            "revenue_by_stream": _amounts(y.revenue_by_stream),
            "costs_by_item": _amounts(y.costs_by_item),
            "billed": _money(y.billed),
            "billed_by_stream": _amounts(y.billed_by_stream),
            "pool": _money(y.pool),
            "pass_through": _money(y.pass_through),
            "payouts": [
                {"joined_year": p.joined_year, "hospitals": p.hospitals, "payout": _money(p.payout)}
                for p in y.payouts
            ],
        }
        for y in result.years
    ]
    months = [
        {
            "month": m.month,
            "label": m.label,
            "hospitals": m.hospitals,
            "revenue": _money(m.revenue),
            "costs": _money(m.costs),
            "net": _money(m.net),
            "cash": _money(m.cash),
            "revenue_by_stream": _amounts(m.revenue_by_stream),
            "costs_by_item": _amounts(m.costs_by_item),
            "billed_by_stream": _amounts(m.billed_by_stream),
            "pool": _money(m.pool),
            "pass_through": _money(m.pass_through),
            "steward": _money(m.steward),
        }
        for m in result.months
    ]
    bands = None
    if result.bands is not None:
        b = result.bands

        def row(x: Band) -> dict[str, str | None]:
            return {"p5": _money(x.p5), "p50": _money(x.p50), "p95": _money(x.p95)}

        bands = {
            "runs": b.runs,
            "months": [{"month": i + 1, "cash": row(c)} for i, c in enumerate(b.cash)],
            "years": [
                {
                    "year": i + 1,
                    "revenue": row(r),
                    "net": row(n),
                    "cash_end": row(c),
                    "payout_per_hospital_mean": row(p),
                }
                for i, (r, n, c, p) in enumerate(
                    zip(b.revenue, b.net, b.cash_end, b.payout_mean, strict=True)
                )
            ],
            "break_even": {
                "share_of_runs": str(b.break_even_share),
                "month": dict(zip(("p5", "p50", "p95"), b.break_even_month, strict=True)),
            },
        }
    label = None if result.break_even_month is None else result.months[result.break_even_month - 1].label
    return {
        "scenario": result.name,
        "description": result.description,
        "start": result.start,
        "horizon_years": result.horizon_years,
        "currency": result.currency,
        "tariff_version": result.tariff_version,
        "seed": result.seed,
        "runs": result.runs,
        "opening_cash": _money(result.opening_cash),
        "viability_line": {**result.viability, "converted": _money(result.viability_line)},
        "break_even_month": result.break_even_month,
        "break_even_label": label,
        "sustainable_from_month": result.sustainable_from_month,
        "lowest_cash": _money(result.lowest_cash),
        "lowest_cash_month": result.lowest_cash_month,
        "hospitals_below_viability": [y.hospitals_below_viability for y in result.years],
        "years": years,
        "months": months,
        "bands": bands,
    }
