"""Scenario files of the sustainability simulator (``phds billing simulate``): YAML or JSON.

A scenario states the operator's costs, the hospitals' own costs, how many hospitals join each year,
demand per service and requester category, subscriptions, grants, the tariff and the viability line.
Amounts are decimal strings (a float is refused, as in tariffs). Problems are :class:`InputError` s naming
the file, the line and the field. ``docs/howto/simulate.md`` documents every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from phds.billing.money import check_currency
from phds.billing.service_catalogue import BillableService, PriceUnit
from phds.billing.tariff import Percent, Tariff, default_tariff, load_tariff
from phds.documents import LineIndex, located_error, model_from_document, read_document
from phds.errors import InputError, NotFound
from phds.protocol.common import Slug
from phds.protocol.organisations import RequesterCategory

MAX_SCENARIO_BYTES = 1_000_000
MAX_USAGE_BYTES = 20_000_000
SHIPPED_DIR = Path(__file__).parent / "scenarios"
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"

#: USD→EUR: the ECB euro reference rate of 1 EUR = 1.1739 USD, as reported for 22 January 2026
#: (businessnovinite.bg, "Курсът на долара за 22 януари 2026 г."; the series is published on
#: ecb.europa.eu), so 1 USD = 1 / 1.1739 = 0.8519 EUR. Rates move: scenarios set ``eur_per_unit``.
USD_TO_EUR = Decimal("0.8519")
#: The Greater Plains Collaborative's figure of USD 60,000 a year to sustain one site (the simulator's
#: issue; GPC publishes its cost-recovery work under "Sustainability and Pricing", gpcnetwork.org/research).
GPC_SITE_USD_PER_YEAR = Decimal("60000.00")


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"write amounts and fractions as decimal strings ('{value:.2f}'), not as floats")
    return value


Amount = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0, max_digits=14, decimal_places=2)]
SignedAmount = Annotated[Decimal, BeforeValidator(_no_float), Field(max_digits=14, decimal_places=2)]
Quantity = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0, max_digits=14, decimal_places=4)]
Growth = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=-100, le=1000, decimal_places=3)]
Month = Annotated[str, Field(pattern=MONTH_PATTERN, description="A month, YYYY-MM")]
HospitalsPerStudy = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=1, le=100_000, decimal_places=2)]
Count = Annotated[int, Field(ge=0, le=100_000)]


def month_index(month: str) -> int:
    """Months since year 0 of a ``YYYY-MM`` text: differences of two are months apart."""
    year, mon = month.split("-")
    return int(year) * 12 + int(mon) - 1


def month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostLine(_Strict):
    """An operator cost: a yearly amount, growing by a percentage each year after the first."""

    per_year: Amount
    growth_percent: Growth = Decimal(0)


class HospitalCosts(_Strict):
    """What taking part costs each hospital (they reduce its net payout unless the operator pays)."""

    # EHDEN's data-partner grants for mapping to OMOP were at most EUR 100,000 per data partner
    # (IMI rules; ehden.eu/open-calls/faq): a fair ceiling of an onboarding cost.
    onboarding: Amount = Decimal(0)
    onboarding_paid_by: Literal["hospital", "operator"] = "hospital"
    it_per_year: Amount = Decimal(0)
    steward_hours_per_study: Quantity = Decimal(0)
    steward_hour_cost: Amount = Decimal(0)


class Hospitals(_Strict):
    """The initial hospitals and how many join at the start of each simulated year."""

    initial: Count
    initial_onboarded: bool = Field(default=False, description="The initial hospitals paid onboarding")
    joining_per_year: list[Count] = Field(default_factory=list)


class Distribution(_Strict):
    """How a demand line's monthly units are drawn under ``--runs``: its expected value stays the same."""

    kind: Literal["fixed", "poisson", "lognormal"] = "fixed"
    sigma: Annotated[Decimal, BeforeValidator(_no_float), Field(gt=0, le=3)] | None = None

    @model_validator(mode="after")
    def _sigma(self) -> Distribution:
        if (self.kind == "lognormal") != (self.sigma is not None):
            raise ValueError("sigma is required for a lognormal distribution, and only for it")
        return self


class DemandLine(_Strict):
    """Units of one service bought by one requester category per year (studies, queries, hours...)."""

    service: BillableService
    category: RequesterCategory
    per_year: Quantity
    growth_percent: Growth = Decimal(0)
    from_year: Annotated[int, Field(ge=1, le=20)] = 1
    hospitals_per_study: HospitalsPerStudy | None = Field(
        default=None, description="Answering hospitals per study (per_hospital prices); omitted: all"
    )
    requesters: Annotated[int, Field(ge=1, le=100_000)] = 1
    micro_enterprise: bool = False
    via_subscription: str | None = None
    distribution: Distribution = Field(default_factory=Distribution)


class Subscription(_Strict):
    """Industry-paid access (TriNetX-like): a yearly fee per subscriber; covered services are free."""

    name: Slug
    category: RequesterCategory = RequesterCategory.INDUSTRY
    fee_per_year: Amount
    subscribers_per_year: list[Count] = Field(min_length=1, description="Beyond the list: the last")
    covers: list[BillableService] = Field(min_length=1)
    operator_percent: Annotated[Percent, BeforeValidator(_no_float)] | None = Field(
        default=None, description="Omitted: the tariff's rule"
    )


class Grant(_Strict):
    """A grant or subsidy to the operator, paid monthly from *start* to *end* (both included)."""

    name: str = Field(min_length=1, max_length=100)
    amount_per_year: Amount
    start: Month
    end: Month

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is not None and month_index(end) < month_index(start):
            raise ValueError(f"the grant ends ({end}) before it starts ({start})")
        return end


class ViabilityLine(_Strict):
    """What a site needs a year; by default GPC's USD 60,000 at the stated USD→EUR rate."""

    amount: Amount = GPC_SITE_USD_PER_YEAR
    currency: str = "USD"
    eur_per_unit: Annotated[Decimal, BeforeValidator(_no_float), Field(gt=0, decimal_places=6)] = USD_TO_EUR

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return check_currency(value, "currency")
        except InputError as exc:
            raise ValueError(f"unknown currency {value!r}") from exc

    @model_validator(mode="after")
    def _euro_is_one(self) -> ViabilityLine:
        if self.currency == "EUR" and self.eur_per_unit != 1:
            raise ValueError("a viability line in EUR has eur_per_unit 1")
        return self


class PassThrough(_Strict):
    """Hospitals' study costs billed at cost to the requester and paid to the answering hospital."""

    extraction_per_hospital_per_study: Amount = Decimal(0)


class DemandFrom(_Strict):
    """Demand calibrated from metered usage: a JSON list of usage rows (see :func:`calibrate_from_usage`)."""

    file: str = Field(min_length=1)
    growth_percent: Growth = Decimal(0)
    distribution: Distribution = Field(default_factory=Distribution)


class Scenario(_Strict):
    """One scenario file."""

    name: Slug
    description: str = Field(default="", max_length=2000)
    start: Month
    horizon_years: Annotated[int, Field(ge=1, le=20)]
    seed: Annotated[int, Field(ge=0)] = 0
    opening_cash: SignedAmount = Decimal(0)
    tariff: str | None = Field(default=None, description="A tariff file, relative to the scenario")
    price_overrides: dict[BillableService, dict[RequesterCategory, Amount]] = Field(default_factory=dict)
    operator_costs: dict[str, CostLine] = Field(default_factory=dict)
    hospital_costs: HospitalCosts = Field(default_factory=HospitalCosts)
    hospitals: Hospitals
    demand: list[DemandLine] = Field(default_factory=list)
    demand_from: DemandFrom | None = None
    subscriptions: list[Subscription] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)
    viability_line: ViabilityLine = Field(default_factory=ViabilityLine)
    pass_through: PassThrough = Field(default_factory=PassThrough)


@dataclass(frozen=True)
class LoadedScenario:
    """A checked scenario, its tariff (price overrides applied) and its demand (calibrated lines first)."""

    scenario: Scenario
    tariff: Tariff
    demand: tuple[DemandLine, ...]
    file: str | None = None

    @property
    def viability_eur(self) -> Decimal:
        line = self.scenario.viability_line
        return (line.amount * line.eur_per_unit).quantize(Decimal("0.01"))


def shipped_scenarios() -> list[str]:
    """The names of the scenarios shipped with PHDS."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def find_scenario(name_or_path: str | Path) -> Path:
    """A scenario file: *name_or_path* itself, or the shipped scenario of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise NotFound(f"no scenario file {str(name_or_path)!r}; shipped: {', '.join(shipped_scenarios())}")


def load_scenario(name_or_path: str | Path) -> LoadedScenario:
    """Read and check a scenario file (or a shipped scenario by name); errors name file, line and field."""
    path = find_scenario(name_or_path)
    file = str(path)
    data, lines = read_document(path, max_bytes=MAX_SCENARIO_BYTES, what="scenario file")
    scenario = model_from_document(Scenario, data, file=file, lines=lines)
    return check_scenario(scenario, base_dir=path.parent, file=file, lines=lines)


def check_scenario(
    scenario: Scenario,
    *,
    base_dir: Path | None = None,
    file: str | None = None,
    lines: LineIndex | None = None,
) -> LoadedScenario:
    """Check what one field cannot: against the tariff, the horizon and each other."""

    def fail(message: str, *loc: str | int) -> InputError:
        return located_error(message, tuple(str(part) for part in loc), file, lines)

    base = base_dir or Path(".")
    tariff = default_tariff() if scenario.tariff is None else load_tariff(base / scenario.tariff)
    for service, prices in scenario.price_overrides.items():
        if service not in tariff.services:
            raise fail(
                f"tariff {tariff.version} does not sell {service.value}", "price_overrides", service.value
            )
        entry = tariff.services[service].model_copy(
            update={"prices": {**tariff.services[service].prices, **prices}}
        )
        tariff = tariff.model_copy(update={"services": {**tariff.services, service: entry}})
    horizon = scenario.horizon_years
    if len(scenario.hospitals.joining_per_year) > horizon:
        raise fail(
            f"lists {len(scenario.hospitals.joining_per_year)} years; the horizon is {horizon}",
            "hospitals",
            "joining_per_year",
        )
    subs: dict[str, Subscription] = {}
    for i, sub in enumerate(scenario.subscriptions):
        if sub.name in subs:
            raise fail(f"subscription {sub.name!r} is named twice", "subscriptions", i, "name")
        subs[sub.name] = sub
        for j, service in enumerate(sub.covers):
            if service not in tariff.services:
                raise fail(
                    f"tariff {tariff.version} does not sell {service.value}", "subscriptions", i, "covers", j
                )
    grant_names: set[str] = set()
    for i, grant in enumerate(scenario.grants):
        if grant.name in grant_names:
            raise fail(f"grant {grant.name!r} is named twice", "grants", i, "name")
        grant_names.add(grant.name)
    demand: list[DemandLine] = []
    if scenario.demand_from is not None:
        usage = base / scenario.demand_from.file
        rows, _ = read_document(usage, max_bytes=MAX_USAGE_BYTES, what="usage file")
        demand += calibrate_from_usage(
            rows,
            growth_percent=scenario.demand_from.growth_percent,
            distribution=scenario.demand_from.distribution,
            file=str(usage),
        )
    explicit = len(demand)
    demand += scenario.demand
    for i, line in enumerate(demand):

        def at(key: str, i: int = i) -> tuple[str | int, ...]:  # calibrated lines point at demand_from
            return ("demand", i - explicit, key) if i >= explicit else ("demand_from",)

        if line.service not in tariff.services:
            raise fail(f"tariff {tariff.version} does not sell {line.service.value}", *at("service"))
        unit = tariff.services[line.service].unit
        if line.hospitals_per_study is not None and unit is not PriceUnit.PER_HOSPITAL:
            raise fail(
                f"{line.service.value} is priced {unit.value}, not per_hospital", *at("hospitals_per_study")
            )
        if line.from_year > horizon:
            raise fail(f"year {line.from_year} is beyond the horizon of {horizon} years", *at("from_year"))
        if line.via_subscription is not None:
            covering = subs.get(line.via_subscription)
            if covering is None:
                raise fail(f"no subscription {line.via_subscription!r}", *at("via_subscription"))
            if covering.category is not line.category or line.service not in covering.covers:
                raise fail(
                    f"subscription {covering.name!r} does not cover {line.service.value} for "
                    f"{line.category.value}",
                    *at("via_subscription"),
                )
    if tariff.currency != "EUR" and scenario.viability_line.currency != tariff.currency:
        raise fail(f"the tariff is in {tariff.currency}; state the viability line in it", "viability_line")
    return LoadedScenario(scenario, tariff, tuple(demand), file)


class UsageRow(BaseModel):
    """One metered usage row: units of a service a requester category bought in a month."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    service: BillableService
    category: RequesterCategory
    month: Month
    quantity: Quantity = Field(description="Studies (per_hospital prices), queries, hours, datasets...")
    hospitals: Quantity | None = Field(default=None, description="Answering hospitals of those studies")
    requester: str | None = None


def calibrate_from_usage(
    rows: Iterable[Mapping[str, Any]] | Any,
    *,
    growth_percent: Decimal = Decimal(0),
    distribution: Distribution | None = None,
    file: str | None = None,
) -> list[DemandLine]:
    """Demand lines from the last 12 months of metered usage (the 12 ending at the latest month present).

    Each (service, category) becomes one line: ``per_year`` is the sum of its quantities over the window,
    ``hospitals_per_study`` the mean of answering hospitals per study where rows give them, and
    ``requesters`` the number of distinct requesters named (at least 1). Older rows are ignored.
    """
    if not isinstance(rows, list):
        raise InputError("usage must be a list of rows", file=file, field="(root)")
    parsed: list[UsageRow] = []
    for i, raw in enumerate(rows):
        if not isinstance(raw, Mapping):
            raise InputError("a usage row is a mapping", file=file, field=str(i))
        try:
            parsed.append(UsageRow.model_validate(dict(raw)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (i, *first["loc"]))
            raise InputError(
                str(first["msg"]).removeprefix("Value error, "), file=file, field=where
            ) from None
    if not parsed:
        return []
    last = max(month_index(r.month) for r in parsed)
    window = [r for r in parsed if last - 12 < month_index(r.month) <= last]
    lines: list[DemandLine] = []
    for key in sorted({(r.service, r.category) for r in window}):
        group = [r for r in window if (r.service, r.category) == key]
        studies = sum((r.quantity for r in group), Decimal(0))
        answered = [r for r in group if r.hospitals is not None]
        hps = None
        if answered and (base := sum((r.quantity for r in answered), Decimal(0))) > 0:
            hps = max(
                Decimal(1),
                (sum((r.hospitals or Decimal(0) for r in answered), Decimal(0)) / base).quantize(
                    Decimal("0.01")
                ),
            )
        requesters = len({r.requester for r in group if r.requester}) or 1
        lines.append(
            DemandLine(
                service=key[0],
                category=key[1],
                per_year=studies,
                growth_percent=growth_percent,
                hospitals_per_study=hps,
                requesters=requesters,
                distribution=distribution or Distribution(),
            )
        )
    return lines
