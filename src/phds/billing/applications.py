"""Data-access applications (the PHEMS "permit" step) and their quotes.

A requester organisation files an :class:`ApplicationForm`: purpose, legal basis and ethics approval,
the hospitals, the services with their expected volume, and the duration. The operator prices it with
:func:`price_application` into quote lines from the tariff in force, plus each hospital's pass-through
estimate per study (its own extraction and steward costs, at cost: Findata's practice and EHDS recital
70; feasibility queries carry none, as they take no steward time). The
quote's total is its binding ceiling: studies under the application are refused once the metered
charges would pass it, until a revised quote is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from phds.billing.money import round_amount
from phds.billing.service_catalogue import UNECE_UNIT_CODES, BillableService, PriceUnit
from phds.billing.tariff import PricedUnit, Tariff
from phds.documents import load_model
from phds.errors import InputError
from phds.protocol.common import Slug
from phds.protocol.organisations import RequesterCategory

QUOTE_VALID_DAYS = 30
MAX_APPLICATION_BYTES = 200_000


class ServiceRequest(BaseModel):
    """A service the application asks for, and how much of it (studies, queries, hours, months)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: BillableService
    quantity: Annotated[int, Field(ge=1, le=100_000)] = 1
    hospitals: Annotated[int | None, Field(ge=1, le=200)] = Field(
        default=None, description="Hospitals per study (per_hospital services); default: all named"
    )


class ApplicationForm(BaseModel):
    """What a requester files to be allowed to run (and be billed for) studies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=4000)
    legal_basis: str = Field(
        min_length=1, max_length=500, description="e.g. GDPR Art. 6(1)(e) and 9(2)(j); EHDS Art. 53"
    )
    ethics_reference: str = Field(min_length=1, max_length=200, description="The ethics approval's reference")
    hospitals: list[Slug] = Field(min_length=1, max_length=200)
    services: list[ServiceRequest] = Field(min_length=1, max_length=20)
    duration_months: int = Field(ge=1, le=120)
    micro_enterprise: bool = Field(
        default=False, description="An SME that is a micro-enterprise (EHDS Art. 62)"
    )

    @field_validator("hospitals")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each hospital may be named once")
        return value

    @field_validator("services")
    @classmethod
    def _one_request_per_service(cls, value: list[ServiceRequest]) -> list[ServiceRequest]:
        names = [s.service for s in value]
        if len(set(names)) != len(names):
            raise ValueError("each service may be requested once")
        return value


def load_application(path: str | Path) -> ApplicationForm:
    """Read an application file (YAML or JSON); errors name the file, line and field."""
    return load_model(ApplicationForm, path, max_bytes=MAX_APPLICATION_BYTES, what="application file")


@dataclass(frozen=True)
class PassThrough:
    """A hospital's own cost estimate per study, passed through at cost."""

    hospital: str
    per_study: Decimal
    detail: str


@dataclass(frozen=True)
class QuoteLine:
    """One priced line of a quote."""

    service: str
    description: str
    quantity: Decimal
    unit_code: str
    list_price: Decimal
    reduction_percent: Decimal
    reduction_basis: str | None
    unit_price: Decimal
    amount: Decimal
    hospital: str | None = None  # a pass-through line's hospital
    waiver: str | None = None  # the operator's recorded reason, when the fee is waived

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "description": self.description,
            "quantity": str(self.quantity),
            "unit_code": self.unit_code,
            "list_price": str(self.list_price),
            "reduction_percent": str(self.reduction_percent),
            "reduction_basis": self.reduction_basis,
            "unit_price": str(self.unit_price),
            "amount": str(self.amount),
            "hospital": self.hospital,
            "waiver": self.waiver,
        }


@dataclass(frozen=True)
class QuoteDraft:
    """A priced application: its lines, the binding ceiling and until when it may be accepted."""

    tariff_version: str
    currency: str
    lines: tuple[QuoteLine, ...]
    valid_until: date

    @property
    def ceiling(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


def price_application(
    form: ApplicationForm,
    tariff: Tariff,
    category: RequesterCategory,
    *,
    pass_through: list[PassThrough],
    today: date,
    micro_enterprise: bool = False,
    waivers: Mapping[str, str] | None = None,
) -> QuoteDraft:
    """Price *form* for a requester of *category* under *tariff* (see the module docstring). *waivers*
    maps a service to the operator's recorded reason for waiving its fee; a waived line costs 0."""
    lines: list[QuoteLine] = []
    studies = 0
    waived = dict(waivers or {})
    unknown = sorted(set(waived) - {r.service.value for r in form.services})
    if unknown:
        raise InputError(f"the application asks for no {unknown[0]} to waive", field=f"waivers.{unknown[0]}")
    for service, reason in waived.items():
        if not reason.strip():
            raise InputError("a waiver needs its reason", field=f"waivers.{service}")
    for request in form.services:
        price = tariff.price(request.service)
        unit = tariff.unit_price(request.service, category, micro_enterprise=micro_enterprise)
        if request.service.value in waived:
            unit = PricedUnit(
                unit.list_price,
                Decimal(100),
                Decimal("0.00"),
                "waiver",
                f"waived by the operator: {waived[request.service.value].strip()}",
            )
        quantity = Decimal(request.quantity)
        label = request.service.value.replace("_", " ")
        if price.unit is PriceUnit.PER_HOSPITAL:
            hospitals = request.hospitals or len(form.hospitals)
            quantity *= hospitals
            studies_text = f"{request.quantity} stud{'y' if request.quantity == 1 else 'ies'}"
            label = f"{label}: {studies_text} × {hospitals} hospitals"
            studies += request.quantity
        elif price.unit is PriceUnit.PER_QUERY:
            free = tariff.free_queries(request.service, category)
            label = f"{label}: {request.quantity} queries (the first {free} each month are free)"
        elif price.unit is PriceUnit.PER_STUDY:
            studies += request.quantity
        lines.append(
            QuoteLine(
                service=request.service.value,
                description=label,
                quantity=quantity,
                unit_code=UNECE_UNIT_CODES[price.unit],
                list_price=unit.list_price,
                reduction_percent=unit.reduction_percent,
                reduction_basis=unit.basis,
                unit_price=unit.net_price,
                amount=round_amount(quantity * unit.net_price),
                waiver=waived.get(request.service.value),
            )
        )
    for cost in pass_through:
        if cost.per_study <= 0 or studies == 0:
            continue
        lines.append(
            QuoteLine(
                service="pass_through",
                description=f"{cost.hospital}: {cost.detail} (at cost, per study)",
                quantity=Decimal(studies),
                unit_code="C62",
                list_price=cost.per_study,
                reduction_percent=Decimal(0),
                reduction_basis=None,
                unit_price=cost.per_study,
                amount=round_amount(studies * cost.per_study),
                hospital=cost.hospital,
            )
        )
    return QuoteDraft(tariff.version, tariff.currency, tuple(lines), today + timedelta(days=QUOTE_VALID_DAYS))
