"""The network's sustainability simulator: the operator's and the hospitals' money, month by month.

Pure and exact: every amount is a :class:`~decimal.Decimal`, rounded half-up to the cent where money
changes hands (one fee per demand line and month, one split per stream and month), and every sum after
that is exact. The rules (``docs/howto/simulate.md`` states them with the JSON schema):

* Hospitals join at the start of each simulated year; a demand line needs at least one hospital.
* A demand line's monthly units are its yearly units / 12, grown by ``growth_percent`` each year after
  ``from_year``. A ``per_hospital`` line bills each study once per answering hospital
  (``hospitals_per_study``, at most the active hospitals; omitted: all). A ``per_query`` line bills the
  queries above the free allowance, ``free_per_month`` × ``requesters`` (the queries are taken as shared
  evenly among the line's requesters). Fees are the tariff's net price after reductions; lines bought
  through a subscription cost nothing.
* Each fee stream and subscription is split by the tariff's revenue-share rule: ``operator_percent`` to
  the operator (rounded half-up, the remainder rule), the rest to the hospital pool, shared equally by the
  active hospitals (they are alike here, so the equal and the persons halves give the same share).
  Pass-through (extraction at cost per answering hospital and study) goes to the hospitals whole.
* Operator revenue = its shares + grants; operator net = revenue − operator costs; cash = opening cash +
  the cumulative net. **Break-even month**: the first month (1 = the start month) from which the cash
  balance is at or above the opening cash in every remaining month of the horizon; ``None`` when the
  last month is below it. ``sustainable_from_month``: likewise, for the operator's net without grants
  over the trailing 12 months (fewer in the first year) ≥ 0, so a one-off such as onboarding is spread
  over a year. ``lowest_cash`` (and its month) is the bridging money a scenario needs.
* A hospital's payout in a year = its pool share + pass-through − its steward time − its IT cost − its
  onboarding (in its joining year, when it pays it).

With ``runs`` > 1, Monte Carlo draws each line's monthly units from its distribution (Poisson, or a
mean-preserving lognormal) with numpy's ``default_rng(seed)``; the central figures stay the
expected-value projection, and nearest-rank p5/p50/p95 bands are added (so p5 ≤ p50 ≤ p95 exactly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from phds.billing.money import round_amount
from phds.billing.scenario import LoadedScenario, calibrate_from_usage, month_index, month_label
from phds.billing.service_catalogue import PriceUnit
from phds.billing.simulator_result import (
    Band,
    Bands,
    CohortPayout,
    MonthResult,
    SimulationResult,
    YearResult,
    result_json,
)
from phds.errors import InputError

ZERO, HUNDRED, TWELVE = Decimal(0), Decimal(100), Decimal(12)
SUBSCRIPTIONS, GRANTS, PASS_THROUGH, ONBOARDING = "subscriptions", "grants", "pass_through", "onboarding"
MAX_RUNS = 10_000


def month_part(yearly: Decimal, k: int) -> Decimal:
    """Month *k* (1-12) of a yearly amount, in cents, such that the twelve parts sum to it exactly."""
    return round_amount(yearly * k / TWELVE) - round_amount(yearly * (k - 1) / TWELVE)


@dataclass
class _Line:
    unit: PriceUnit
    service: str
    price: Decimal
    free: Decimal
    hospitals_per_study: Decimal | None
    covered: bool
    expected: list[Decimal]
    kind: str
    sigma: float


@dataclass
class _Plan:
    """Everything that does not depend on demand draws, month by month."""

    loaded: LoadedScenario
    hospitals: list[int]
    cohorts: list[tuple[int, int, bool]]  # (joined year, hospitals, pays its onboarding)
    costs: list[dict[str, Decimal]]
    grants: list[Decimal]
    subs: list[tuple[Decimal, Decimal]]  # (billed, operator share)
    lines: list[_Line]
    streams: list[str] = field(default_factory=list)


def _plan(loaded: LoadedScenario) -> _Plan:
    sc, tariff = loaded.scenario, loaded.tariff
    n, start = sc.horizon_years * 12, month_index(sc.start)
    hc, rule = sc.hospital_costs, tariff.revenue_share
    per_year = [sc.hospitals.initial + (sc.hospitals.joining_per_year or [0])[0]]
    for y in range(2, sc.horizon_years + 1):
        extra = sc.hospitals.joining_per_year[y - 1] if y <= len(sc.hospitals.joining_per_year) else 0
        per_year.append(per_year[-1] + extra)
    cohorts = [(1, sc.hospitals.initial, not sc.hospitals.initial_onboarded)]
    cohorts += [(y, c, True) for y, c in enumerate(sc.hospitals.joining_per_year, start=1) if c]
    by_operator = hc.onboarding_paid_by == "operator"
    costs: list[dict[str, Decimal]] = []
    grants: list[Decimal] = []
    subs: list[tuple[Decimal, Decimal]] = []
    for i in range(n):
        y, k = i // 12 + 1, i % 12 + 1
        month: dict[str, Decimal] = {}
        for name, line in sc.operator_costs.items():
            yearly = round_amount(line.per_year * (1 + line.growth_percent / HUNDRED) ** (y - 1))
            month[name] = month_part(yearly, k)
        if by_operator:
            joined = sum(c for jy, c, pays in cohorts if jy == y and pays) if k == 1 else 0
            month[ONBOARDING] = hc.onboarding * joined
        costs.append(month)
        absolute = start + i
        grants.append(
            sum(
                (
                    month_part(g.amount_per_year, (absolute - month_index(g.start)) % 12 + 1)
                    for g in sc.grants
                    if month_index(g.start) <= absolute <= month_index(g.end)
                ),
                ZERO,
            )
        )
        billed = operator = ZERO
        for sub in sc.subscriptions:
            count = sub.subscribers_per_year[min(y, len(sub.subscribers_per_year)) - 1]
            part = month_part(sub.fee_per_year * count, k)
            share = rule.operator_percent if sub.operator_percent is None else sub.operator_percent
            billed, operator = billed + part, operator + round_amount(part * share / HUNDRED)
        subs.append((billed, operator))
    lines: list[_Line] = []
    for d in loaded.demand:
        price = tariff.price(d.service)
        net = tariff.unit_price(d.service, d.category, micro_enterprise=d.micro_enterprise).net_price
        growth = 1 + d.growth_percent / HUNDRED
        expected = [
            ZERO if i // 12 + 1 < d.from_year else d.per_year * growth ** (i // 12 + 1 - d.from_year) / TWELVE
            for i in range(n)
        ]
        free = Decimal(tariff.free_queries(d.service, d.category) * d.requesters)
        lines.append(
            _Line(
                price.unit,
                d.service.value,
                ZERO if d.via_subscription else net,
                free,
                d.hospitals_per_study,
                d.via_subscription is not None,
                expected,
                d.distribution.kind,
                float(d.distribution.sigma or 0),
            )
        )
    plan = _Plan(loaded, [per_year[i // 12] for i in range(n)], cohorts, costs, grants, subs, lines)
    plan.streams = [*sorted({line.service for line in lines}), SUBSCRIPTIONS]
    return plan


def _run(plan: _Plan, units: Sequence[Sequence[Decimal]]) -> list[MonthResult]:
    sc, rule = plan.loaded.scenario, plan.loaded.tariff.revenue_share
    hc, extraction = sc.hospital_costs, sc.pass_through.extraction_per_hospital_per_study
    steward_rate = hc.steward_hours_per_study * hc.steward_hour_cost
    cash, out, start = sc.opening_cash, [], month_index(sc.start)
    for i, active in enumerate(plan.hospitals):
        fees = dict.fromkeys(plan.streams, ZERO)
        participations = passed = ZERO
        for line, drawn in zip(plan.lines, units, strict=True):
            u = drawn[i]
            if active == 0 or u == 0:
                continue
            if line.unit is PriceUnit.PER_HOSPITAL:
                answering = min(line.hospitals_per_study or Decimal(active), Decimal(active))
                billable = u * answering
                participations += billable
                passed += ZERO if line.covered else billable
            elif line.unit is PriceUnit.PER_QUERY:
                billable = max(ZERO, u - line.free)
            else:
                billable = u
            fees[line.service] += round_amount(billable * line.price)
        fees[SUBSCRIPTIONS] = plan.subs[i][0]
        revenue_by = {s: round_amount(f * rule.operator_percent / HUNDRED) for s, f in fees.items()}
        revenue_by[SUBSCRIPTIONS] = plan.subs[i][1]
        revenue_by[GRANTS] = plan.grants[i]
        pool = sum(fees.values(), ZERO) - (sum(revenue_by.values(), ZERO) - plan.grants[i])
        pass_through = round_amount(passed * extraction)
        billed_by = {**fees, PASS_THROUGH: pass_through}
        revenue, costs = sum(revenue_by.values(), ZERO), sum(plan.costs[i].values(), ZERO)
        cash += revenue - costs
        out.append(
            MonthResult(
                i + 1,
                month_label(start + i),
                active,
                revenue_by,
                billed_by,
                plan.costs[i],
                pool,
                pass_through,
                round_amount(participations * steward_rate),
                revenue,
                costs,
                revenue - costs,
                cash,
            )
        )
    return out


def _sum(dicts: Sequence[dict[str, Decimal]]) -> dict[str, Decimal]:
    return {key: sum((d[key] for d in dicts), ZERO) for key in dicts[0]} if dicts else {}


def _years(plan: _Plan, months: list[MonthResult], viability: Decimal) -> list[YearResult]:
    hc, out = plan.loaded.scenario.hospital_costs, []
    for y in range(1, len(months) // 12 + 1):
        ms = months[(y - 1) * 12 : y * 12]
        active = ms[0].hospitals
        payouts: list[CohortPayout] = []
        if active:
            to_hospitals = sum((m.pool + m.pass_through - m.steward for m in ms), ZERO)
            share = round_amount(to_hospitals / active) - hc.it_per_year
            for joined, count, pays in plan.cohorts:
                if count and joined <= y:
                    onboarding = (
                        hc.onboarding
                        if joined == y and pays and hc.onboarding_paid_by == "hospital"
                        else ZERO
                    )
                    payouts.append(CohortPayout(joined, count, share - onboarding))
        mean = round_amount(sum((p.payout * p.hospitals for p in payouts), ZERO) / active) if active else None
        revenue_by, billed_by = (
            _sum([m.revenue_by_stream for m in ms]),
            _sum([m.billed_by_stream for m in ms]),
        )
        revenue, costs = sum((m.revenue for m in ms), ZERO), sum((m.costs for m in ms), ZERO)
        out.append(
            YearResult(
                y,
                ms[0].label,
                ms[-1].label,
                active,
                revenue_by,
                billed_by,
                _sum([m.costs_by_item for m in ms]),
                revenue,
                sum(billed_by.values(), ZERO),
                sum((m.pool for m in ms), ZERO),
                sum((m.pass_through for m in ms), ZERO),
                costs,
                revenue - costs,
                ms[-1].cash,
                payouts,
                mean,
                min((p.payout for p in payouts), default=None),
                sum(p.hospitals for p in payouts if p.payout < viability),
            )
        )
    return out


def first_month_from_which(values: Sequence[Decimal]) -> int | None:
    """The first month (1-based) from which every value is ≥ 0; ``None`` when the last is negative."""
    negative = [i for i, v in enumerate(values) if v < 0]
    if not negative:
        return 1
    return None if negative[-1] == len(values) - 1 else negative[-1] + 2


def sustainable_from_month(months: Sequence[MonthResult]) -> int | None:
    """The first month from which the trailing-12-month operator net without grants stays ≥ 0."""
    own = [m.net - m.revenue_by_stream[GRANTS] for m in months]
    return first_month_from_which([sum(own[max(0, i - 11) : i + 1], ZERO) for i in range(len(own))])


def _lowest(months: Sequence[MonthResult]) -> tuple[Decimal, int]:
    low = min(months, key=lambda m: (m.cash, m.month))
    return low.cash, low.month


def _break_even(months: Sequence[MonthResult], opening: Decimal) -> int | None:
    return first_month_from_which([m.cash - opening for m in months])


def simulate(loaded: LoadedScenario, *, runs: int = 1, seed: int | None = None) -> SimulationResult:
    """Project *loaded* month by month; with *runs* > 1, add Monte Carlo bands drawn with *seed*."""
    if not 1 <= runs <= MAX_RUNS:
        raise InputError(f"runs must be between 1 and {MAX_RUNS}", field="--runs")
    sc = loaded.scenario
    seed = sc.seed if seed is None else seed
    plan, viability = _plan(loaded), loaded.viability_eur
    months = _run(plan, [line.expected for line in plan.lines])
    years = _years(plan, months, viability)
    line = sc.viability_line
    return SimulationResult(
        sc.name,
        sc.description,
        sc.start,
        sc.horizon_years,
        loaded.tariff.currency,
        loaded.tariff.version,
        seed,
        runs,
        sc.opening_cash,
        {"amount": str(line.amount), "currency": line.currency, "eur_per_unit": str(line.eur_per_unit)},
        viability,
        months,
        years,
        _break_even(months, sc.opening_cash),
        sustainable_from_month(months),
        *_lowest(months),
        _monte_carlo(plan, runs, seed, viability) if runs > 1 else None,
    )


def _monte_carlo(plan: _Plan, runs: int, seed: int, viability: Decimal) -> Bands:
    import numpy as np

    rng = np.random.default_rng(seed)
    opening = plan.loaded.scenario.opening_cash
    cash: list[list[Decimal]] = []
    per_year: list[list[tuple[Decimal, Decimal, Decimal, Decimal]]] = []
    break_even: list[int | None] = []
    means = [np.array([float(u) for u in line.expected]) for line in plan.lines]
    for _ in range(runs):
        units: list[list[Decimal]] = []
        for line, mean in zip(plan.lines, means, strict=True):
            if line.kind == "poisson":
                units.append([Decimal(int(x)) for x in rng.poisson(mean)])
            elif line.kind == "lognormal":
                z = rng.standard_normal(len(mean))
                drawn = mean * np.exp(line.sigma * z - line.sigma**2 / 2)
                units.append([Decimal(f"{x:.4f}") for x in drawn])
            else:
                units.append(line.expected)
        months = _run(plan, units)
        years = _years(plan, months, viability)
        cash.append([m.cash for m in months])
        per_year.append([(y.revenue, y.net, y.cash_end, y.payout_per_hospital_mean or ZERO) for y in years])
        break_even.append(_break_even(months, opening))

    def band(values: list[Decimal]) -> Band:
        ordered = sorted(values)
        return Band(*(ordered[max(0, math.ceil(p * len(ordered) / 100) - 1)] for p in (5, 50, 95)))

    def months_at(p: int) -> int | None:
        ordered = sorted(break_even, key=lambda m: math.inf if m is None else m)
        return ordered[max(0, math.ceil(p * runs / 100) - 1)]

    n_years = len(per_year[0])
    revenue, net, cash_end, payout = (
        [band([run[y][j] for run in per_year]) for y in range(n_years)] for j in range(4)
    )
    share = (Decimal(sum(m is not None for m in break_even)) / runs).quantize(Decimal("0.001"))
    return Bands(
        runs,
        [band([run[i] for run in cash]) for i in range(len(cash[0]))],
        revenue,
        net,
        cash_end,
        payout,
        share,
        (months_at(5), months_at(50), months_at(95)),
    )


__all__ = [
    "Band",
    "Bands",
    "CohortPayout",
    "MonthResult",
    "SimulationResult",
    "YearResult",
    "calibrate_from_usage",
    "month_part",
    "result_json",
    "simulate",
]
