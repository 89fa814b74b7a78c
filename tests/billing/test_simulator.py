"""The sustainability simulator: exact on deterministic scenarios, reproducible Monte Carlo, calibration,
shipped scenarios, and scenario-file errors that name the file, line and field."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

from phds.billing.scenario import calibrate_from_usage, load_scenario, shipped_scenarios
from phds.billing.service_catalogue import BillableService
from phds.billing.simulator import GRANTS, month_part, result_json, simulate
from phds.errors import InputError, NotFound
from phds.protocol.organisations import RequesterCategory

# Constant demand and costs: 10 hospitals, industry analytical studies at the default tariff's EUR 3,000
# per answering hospital, the operator keeping 25%; onboarding paid by the operator in month 1.
CONSTANT = """\
name: constant
start: "2027-01"
horizon_years: {years}
opening_cash: "1000.00"
operator_costs:
  staff: {{per_year: "{staff}"}}
hospital_costs:
  onboarding: "{onboarding}"
  onboarding_paid_by: operator
  it_per_year: "5000.00"
  steward_hours_per_study: "8"
  steward_hour_cost: "50.00"
pass_through: {{extraction_per_hospital_per_study: "300.00"}}
hospitals: {{initial: 10}}
demand:
  - {{service: analytical_study, category: industry, per_year: {studies}, hospitals_per_study: 5}}
"""


def _write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _constant(
    tmp_path: Path,
    *,
    onboarding: str = "10000.00",
    studies: int = 24,
    staff: str = "60000.00",
    years: int = 5,
) -> Path:
    return _write(tmp_path, CONSTANT.format(onboarding=onboarding, studies=studies, staff=staff, years=years))


@pytest.mark.parametrize(
    ("onboarding", "studies", "staff"),
    [("10000.00", 24, "60000.00"), ("12345.00", 24, "60000.00"), ("8000.00", 36, "90000.00")],
)
def test_break_even_month_is_the_closed_form(
    tmp_path: Path, onboarding: str, studies: int, staff: str
) -> None:
    # By hand: monthly operator revenue R = studies/12 × 5 hospitals × 3000 × 25%; monthly cost K =
    # staff/12; one-off C = 10 × onboarding in month 1. Cash − opening after m months = m(R − K) − C, so
    # the first month at or above the opening cash (and for good, as R > K) is ceil(C / (R − K)).
    r = Decimal(studies) / 12 * 5 * 3000 * Decimal("0.25")
    k = Decimal(staff) / 12
    c = 10 * Decimal(onboarding)
    expected = math.ceil(c / (r - k))
    result = simulate(load_scenario(_constant(tmp_path, onboarding=onboarding, studies=studies, staff=staff)))
    assert result.break_even_month == expected
    assert result.months[expected - 1].cash == Decimal("1000.00") + expected * (r - k) - c
    assert result.months[expected - 2].cash < Decimal("1000.00")
    assert result.sustainable_from_month is not None  # the one-off drops out of the 12-month window
    assert result.lowest_cash == Decimal("1000.00") + (r - k) - c and result.lowest_cash_month == 1


def test_no_break_even_when_costs_exceed_revenue(tmp_path: Path) -> None:
    result = simulate(load_scenario(_constant(tmp_path, staff="100000.00")))  # K 8,333.33 > R 7,500
    assert result.break_even_month is None and result.sustainable_from_month is None
    assert result_json(result)["break_even_month"] is None


def test_hospital_payout_by_hand(tmp_path: Path) -> None:
    # Pool 75% of 2 studies × 5 × 3000 = 22,500 a month over 10 hospitals: 27,000 a year each; pass-through
    # 10 answers × 300 / 10 × 12 = 3,600; steward 10 answers × 8 h × 50 / 10 × 12 = 4,800; IT 5,000.
    year = simulate(load_scenario(_constant(tmp_path))).years[0]
    assert year.payout_per_hospital_mean == year.payout_per_hospital_min == Decimal("20800.00")
    assert year.hospitals_below_viability == 10  # below EUR 51,114 (USD 60,000 × 0.8519)
    assert (year.revenue, year.pool, year.pass_through) == (
        Decimal("90000.00"),
        Decimal(270000),
        Decimal(36000),
    )


@pytest.mark.parametrize("name", shipped_scenarios())
def test_every_shipped_scenario_runs_and_its_sums_reconcile(name: str) -> None:
    result = simulate(load_scenario(name))
    assert len(result.months) == 12 * result.horizon_years
    cash = result.opening_cash
    for m in result.months:
        assert sum(m.revenue_by_stream.values()) == m.revenue
        assert sum(m.costs_by_item.values()) == m.costs and m.revenue - m.costs == m.net
        own_shares = m.revenue - m.revenue_by_stream[GRANTS]
        assert own_shares + m.pool + m.pass_through == sum(m.billed_by_stream.values())
        cash += m.net
        assert m.cash == cash
        assert all(isinstance(v, Decimal) for v in (*m.revenue_by_stream.values(), m.pool, m.cash))
    for y in result.years:
        months = result.months[(y.year - 1) * 12 : y.year * 12]
        assert y.revenue == sum(m.revenue for m in months) == sum(y.revenue_by_stream.values())
        assert y.billed == sum(y.billed_by_stream.values()) and y.cash_end == months[-1].cash
    data = json.loads(json.dumps(result_json(result)))
    assert data["years"][0]["revenue"] == str(result.years[0].revenue.quantize(Decimal("0.01")))


def test_shipped_scenarios_include_the_four_stories() -> None:
    assert {"grant-funded-start", "pharma-heavy", "academic-heavy", "trinetx-like"} <= set(
        shipped_scenarios()
    )
    with pytest.raises(NotFound, match="shipped: "):
        load_scenario("no-such-scenario")


def test_monte_carlo_is_reproducible_by_seed_and_its_bands_are_ordered() -> None:
    loaded = load_scenario("grant-funded-start")
    first, again = simulate(loaded, runs=40, seed=7), simulate(loaded, runs=40, seed=7)
    other = simulate(loaded, runs=40, seed=8)
    assert first.bands is not None and first.bands == again.bands and first.bands != other.bands
    b = first.bands
    for band in (*b.cash, *b.revenue, *b.net, *b.cash_end, *b.payout_mean):
        assert band.p5 <= band.p50 <= band.p95
    assert b.cash[-1].p5 < b.cash[-1].p95  # the draws do vary
    assert first.months == simulate(loaded).months  # the central projection stays the expected one
    assert Decimal(0) <= b.break_even_share <= 1


def test_fixed_demand_gives_degenerate_bands(tmp_path: Path) -> None:
    result = simulate(load_scenario(_constant(tmp_path)), runs=5)
    assert result.bands is not None
    assert all(b.p5 == b.p95 == m.cash for b, m in zip(result.bands.cash, result.months, strict=True))


def test_month_parts_sum_to_the_yearly_amount() -> None:
    for yearly in (Decimal("100000.00"), Decimal("0.05"), Decimal("12345.67")):
        assert sum(month_part(yearly, k) for k in range(1, 13)) == yearly


def test_calibration_from_the_last_12_months_of_usage(tmp_path: Path) -> None:
    rows = [
        {
            "service": "feasibility",
            "category": "academic",
            "month": f"2026-{m:02d}",
            "quantity": 30,
            "requester": f"uni-{m % 3}",
        }
        for m in range(1, 13)
    ]
    rows += [
        {"service": "feasibility", "category": "academic", "month": "2025-12", "quantity": 999},  # too old
        {"service": "research", "category": "industry", "month": "2026-03", "quantity": 2, "hospitals": 10},
        {
            "service": "research",
            "category": "industry",
            "month": "2026-09",
            "quantity": "1.5",
            "hospitals": 5,
        },
        {
            "service": "analyst_hours",
            "category": "public",
            "month": "2026-06",
            "quantity": "7.25",
            "node": "x",
        },
    ]
    lines = {(d.service, d.category): d for d in calibrate_from_usage(rows)}
    feas = lines[BillableService.FEASIBILITY, RequesterCategory.ACADEMIC]
    assert (feas.per_year, feas.requesters, feas.growth_percent) == (Decimal(360), 3, Decimal(0))
    research = lines[BillableService.RESEARCH, RequesterCategory.INDUSTRY]
    assert research.per_year == Decimal("3.5") and research.hospitals_per_study == Decimal("4.29")
    assert lines[BillableService.ANALYST_HOURS, RequesterCategory.PUBLIC].per_year == Decimal("7.25")
    with pytest.raises(InputError, match=r"field 0\.quantity"):
        calibrate_from_usage([{**rows[0], "quantity": 1.5}])
    # A scenario can start from such a file.
    (tmp_path / "usage.json").write_text(json.dumps(rows), encoding="utf-8")
    text = CONSTANT.format(onboarding="0.00", studies=12, staff="1000.00", years=1)
    text = text.replace("demand:\n", "demand_from: {file: usage.json}\ndemand:\n")
    loaded = load_scenario(_write(tmp_path, text))
    assert len(loaded.demand) == 4 and loaded.demand[0].service is BillableService.ANALYST_HOURS
    assert simulate(loaded).years[0].billed_by_stream["feasibility"] == Decimal("0.00")  # within allowance


def test_subscriptions_make_covered_lines_free_and_are_split(tmp_path: Path) -> None:
    text = CONSTANT.format(onboarding="0.00", studies=24, staff="60000.00", years=2)
    text = text.replace("hospitals_per_study: 5}", "hospitals_per_study: 5, via_subscription: access}")
    text += (
        'subscriptions:\n  - {name: access, fee_per_year: "120000.00", subscribers_per_year: [1, 2],\n'
        '     covers: [analytical_study], operator_percent: "60"}\n'
    )
    result = simulate(load_scenario(_write(tmp_path, text)))
    first, second = result.years
    assert first.billed_by_stream["analytical_study"] == 0 and first.pass_through == 0
    assert first.revenue_by_stream["subscriptions"] == Decimal("72000.00")  # 60% of 120,000
    assert second.billed_by_stream["subscriptions"] == Decimal("240000.00")
    assert first.pool == Decimal("48000.00")


def test_price_overrides_replace_the_list_price_and_reductions_still_apply(tmp_path: Path) -> None:
    text = CONSTANT.format(onboarding="0.00", studies=12, staff="0.00", years=1).replace(
        "category: industry", "category: academic"
    )
    text += 'price_overrides: {analytical_study: {academic: "1000.00"}}\n'
    year = simulate(load_scenario(_write(tmp_path, text))).years[0]
    assert year.billed_by_stream["analytical_study"] == 12 * 5 * Decimal(800)  # 1,000 less EHDS's 20%


BASE = """\
name: bad
start: "2027-01"
horizon_years: 3
operator_costs:
  staff: {per_year: "100000.00"}
hospitals: {initial: 4}
demand:
  - service: feasibility
    category: academic
    per_year: 120
grants:
  - {name: seed, amount_per_year: "50000.00", start: "2027-01", end: "2027-12"}
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "says"),
    [
        ('per_year: "100000.00"', "per_year: 100000.50", 5, "operator_costs.staff.per_year", "not as floats"),
        ('per_year: "100000.00"', 'per_year: "-5.00"', 5, "operator_costs.staff.per_year", "greater than"),
        ("service: feasibility", "service: feasability", 8, "demand.0.service", "Input should be"),
        ('end: "2027-12"', 'end: "2026-12"', 12, "grants.0.end", "ends (2026-12) before it starts"),
        ("hospitals: {initial: 4}", "hospitals: {initial: 4", 7, None, "not valid YAML"),
        (
            "    per_year: 120",
            "    per_year: 120\n    hospitals_per_study: 2",
            11,
            "demand.0.hospitals_per_study",
            "not per_hospital",
        ),
        (
            "    per_year: 120",
            "    per_year: 120\n    via_subscription: nope",
            11,
            "demand.0.via_subscription",
            "no subscription",
        ),
        (
            "hospitals: {initial: 4}",
            "hospitals: {initial: 4, joining_per_year: [1, 1, 1, 1]}",
            6,
            "hospitals.joining_per_year",
            "the horizon is 3",
        ),
        ("horizon_years: 3", "horizon_years: 3\nhorizon: 4", 4, "horizon", "did you mean 'horizon_years'"),
    ],
)
def test_bad_scenario_files_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str | None, says: str
) -> None:
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1), "bad.yaml")
    with pytest.raises(InputError, match=re.escape(says)) as caught:
        load_scenario(path)
    assert (caught.value.file, caught.value.line, caught.value.field) == (str(path), line, field)


def test_the_base_of_the_bad_files_is_good(tmp_path: Path) -> None:
    assert simulate(load_scenario(_write(tmp_path, BASE))).years[0].revenue_by_stream["grants"] == 50000
