"""Tariffs: the price of each service per requester category, with reductions and the revenue-share rule.

A tariff file (YAML or JSON; ``data/tariff-default.yaml`` is the shipped one, with its sources) holds one
*version*, effective from a date. Versions are never edited in place: a changed tariff is a new version,
and a quote or invoice keeps the version it used (:class:`TariffBook` picks the version in force on a
date and refuses overlapping or duplicated versions). Amounts are decimal strings; a float in a tariff
is refused, because 0.1 has no exact binary value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from phds.billing.money import check_currency, round_amount
from phds.billing.service_catalogue import CATEGORIES, BillableService, PriceUnit
from phds.documents import load_model, model_from_document, parse_text
from phds.errors import InputError, NotFound
from phds.protocol.organisations import RequesterCategory
from phds.protocol.receipts import ReceiptOutcome

MAX_TARIFF_BYTES = 1_000_000
DEFAULT_TARIFF = "tariff-default.yaml"

Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=6, decimal_places=3)]


def _exact_amount(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"write amounts as decimal strings (e.g. '{value:.2f}'), not as floats")
    return value


#: A price: a non-negative decimal of at most two decimals, never a float.
Amount = Annotated[Decimal, BeforeValidator(_exact_amount), Field(ge=0, max_digits=12, decimal_places=2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A public fee schedule a price was built from."""

    title: str = Field(min_length=1, max_length=300)
    url: str = Field(min_length=1, max_length=500)
    retrieved: date | None = None


class ServicePrice(_Strict):
    """One service's unit and its price per requester category (every category must be priced)."""

    unit: PriceUnit
    prices: dict[RequesterCategory, Amount]
    free_per_month: dict[RequesterCategory, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="Free queries per requester organisation and month (per_query)"
    )
    charged_outcomes: frozenset[ReceiptOutcome] = Field(
        default=frozenset({ReceiptOutcome.ANSWERED}),
        description="Which receipt outcomes this service charges; refused and failed work is free",
    )
    sources: list[str] = Field(default_factory=list, description="Keys of the tariff's sources")
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _complete(self) -> ServicePrice:
        missing = [c.value for c in CATEGORIES if c not in self.prices]
        if missing:
            raise ValueError(f"no price for requester categor{'y' if len(missing) == 1 else 'ies'} "
                             f"{', '.join(missing)}")  # fmt: skip
        if self.free_per_month and self.unit is not PriceUnit.PER_QUERY:
            raise ValueError("free_per_month applies only to per_query prices")
        return self


class Reduction(_Strict):
    """A percentage off the list price for some categories (and services), with its legal basis."""

    name: str = Field(min_length=1, max_length=100)
    categories: frozenset[RequesterCategory] = Field(min_length=1)
    services: frozenset[BillableService] = Field(default=frozenset(), description="Empty: every service")
    micro_enterprise_only: bool = False
    percent: Percent
    basis: str = Field(min_length=1, max_length=500, description="Why: the law or policy it follows")

    def applies(self, service: BillableService, category: RequesterCategory, micro_enterprise: bool) -> bool:
        return (
            category in self.categories
            and (not self.services or service in self.services)
            and (micro_enterprise or not self.micro_enterprise_only)
        )


class RevenueShareRule(_Strict):
    """How a paid line is split: by default the Greater Plains Collaborative's rule (howto/earnings.md)."""

    operator_percent: Percent = Decimal("25")
    pool_equal_percent: Percent = Field(
        default=Decimal("50"),
        description="Share of the hospital pool split equally among answering hospitals",
    )
    remainder_to: str = Field(
        default="operator", min_length=1, max_length=100, description="Who receives rounding remainders"
    )

    @property
    def pool_persons_percent(self) -> Decimal:
        """The rest of the pool, split in proportion to the persons each hospital released."""
        return Decimal(100) - self.pool_equal_percent


class Vat(_Strict):
    """The operator's VAT: its country and standard rate (reverse charge and exemptions: billing.vat)."""

    country: str = Field(pattern=r"^[A-Z]{2}$")
    standard_rate: Percent
    public_law_fees: bool = Field(
        default=False, description="The operator is a public body charging fees as a public authority"
    )


class Tariff(_Strict):
    """One version of the network's price list."""

    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
    effective_from: date
    currency: str = "EUR"
    payment_days: int = Field(default=30, ge=0, le=120)
    vat: Vat
    services: dict[BillableService, ServicePrice]
    reductions: list[Reduction] = Field(default_factory=list)
    revenue_share: RevenueShareRule = Field(default_factory=RevenueShareRule)
    sources: dict[str, Source] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return check_currency(value, "currency")
        except InputError:
            raise ValueError(f"unknown currency {value!r}") from None

    @model_validator(mode="after")
    def _consistent(self) -> Tariff:
        for service, price in self.services.items():
            unknown = [s for s in price.sources if s not in self.sources]
            if unknown:
                raise ValueError(f"services.{service.value}: unknown source {unknown[0]!r}")
        return self

    def price(self, service: BillableService) -> ServicePrice:
        """The price entry of *service*; :class:`NotFound` when this tariff does not sell it."""
        found = self.services.get(service)
        if found is None:
            raise NotFound(f"tariff {self.version} has no price for {service.value}")
        return found

    def unit_price(
        self, service: BillableService, category: RequesterCategory, *, micro_enterprise: bool = False
    ) -> PricedUnit:
        """The list price of one unit of *service* for *category*, and the price after reductions."""
        listed = self.price(service).prices[category]
        applied = [r for r in self.reductions if r.applies(service, category, micro_enterprise)]
        percent = max((r.percent for r in applied), default=Decimal(0))  # reductions never stack
        best = next((r for r in applied if r.percent == percent), None)
        net = round_amount(listed * (Decimal(100) - percent) / Decimal(100))
        return PricedUnit(listed, percent, net, best.name if best else None, best.basis if best else None)

    def free_queries(self, service: BillableService, category: RequesterCategory) -> int:
        return self.price(service).free_per_month.get(category, 0)

    def charges(self, service: BillableService, outcome: ReceiptOutcome) -> bool:
        """Whether a receipt of *outcome* is charged for *service* (only answered work, unless the
        tariff says otherwise)."""
        return outcome in self.price(service).charged_outcomes


@dataclass(frozen=True)
class PricedUnit:
    """A unit price as quoted: the list price, the reduction taken (with its basis) and the net price."""

    list_price: Decimal
    reduction_percent: Decimal
    net_price: Decimal
    reduction: str | None
    basis: str | None


def load_tariff(path: str | Path) -> Tariff:
    """Read and check a tariff file; errors name the file, line and field."""
    return load_model(Tariff, path, max_bytes=MAX_TARIFF_BYTES, what="tariff file")


def tariff_from_text(text: str, name: str) -> Tariff:
    """Check a tariff given as YAML text (as uploaded to the hub)."""
    data, lines = parse_text(text, name)
    return model_from_document(Tariff, data, file=name, lines=lines)


def default_tariff_text() -> str:
    """The shipped tariff, built from public fee schedules (its sources are in the file)."""
    return resources.files("phds.billing").joinpath("data", DEFAULT_TARIFF).read_text(encoding="utf-8")


def default_tariff() -> Tariff:
    return tariff_from_text(default_tariff_text(), DEFAULT_TARIFF)


class TariffBook:
    """Every version of the tariff; the one in force on a date is the newest effective by then."""

    def __init__(self, versions: list[Tariff]) -> None:
        seen: dict[str, Tariff] = {}
        for tariff in versions:
            if tariff.version in seen:
                raise InputError(f"tariff version {tariff.version} exists already", field="version")
            clash = next((t for t in seen.values() if t.effective_from == tariff.effective_from), None)
            if clash is not None:
                raise InputError(
                    f"tariff {tariff.version} takes effect on {tariff.effective_from}, the same day as "
                    f"{clash.version}; effective dates must differ",
                    field="effective_from",
                )
            seen[tariff.version] = tariff
        self.versions = sorted(seen.values(), key=lambda t: t.effective_from)

    def in_force(self, on: date) -> Tariff:
        current = [t for t in self.versions if t.effective_from <= on]
        if not current:
            raise NotFound(f"no tariff is in force on {on.isoformat()}")
        return current[-1]

    def version(self, version: str) -> Tariff:
        found = next((t for t in self.versions if t.version == version), None)
        if found is None:
            raise NotFound(f"no tariff version {version!r}")
        return found
