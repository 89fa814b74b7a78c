"""Wire models of the money path: billing profiles, applications, quotes, participation, invoices.

Amounts travel as decimal strings (pydantic serialises ``Decimal`` so), never as floats. A hospital's
:class:`ParticipationStatement` is signed by its node key at the node; the hub stores and relays it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from phds.protocol.common import WireModel


class BillingProfile(WireModel):
    """Who an invoice is addressed to (or, for the operator, who issues it)."""

    legal_name: str = Field(min_length=1, max_length=200)
    address_lines: list[str] = Field(min_length=1, max_length=4)
    postcode: str = Field(min_length=1, max_length=20)
    city: str = Field(min_length=1, max_length=100)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    vat_id: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=200)
    legal_id: str | None = Field(default=None, max_length=50)
    iban: str | None = Field(default=None, max_length=34, description="The operator's account for payments")
    micro_enterprise: bool = Field(
        default=False, description="A micro-enterprise, as the operator verified (EHDS Art. 62 reduction)"
    )


class TariffInfo(WireModel):
    version: str
    effective_from: date
    currency: str
    document: dict[str, Any]


class ParticipationStatement(WireModel):
    """A hospital steward's answer to an application, signed by the node key."""

    application_id: str
    hospital: str
    accepted: bool
    pass_through_per_study: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    detail: str = Field(default="", max_length=500, description="What the pass-through covers")
    reason: str | None = Field(default=None, max_length=1000)
    signed_at: datetime
    node_key_id: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but the signature: what the node key signs."""
        return self.model_dump(mode="json", exclude={"signature"})


class QuoteView(WireModel):
    id: str
    application_id: str
    revision: int
    tariff_version: str
    currency: str
    lines: list[dict[str, Any]]
    ceiling: Decimal
    valid_until: date
    state: str
    created_at: datetime
    decided_at: datetime | None = None


class ApplicationView(WireModel):
    id: str
    organisation: str
    state: str
    form: dict[str, Any]
    created_at: datetime
    quotes: list[QuoteView] = Field(default_factory=list)
    participations: list[ParticipationStatement] = Field(default_factory=list)
    charged: Decimal = Field(default=Decimal("0.00"), description="Metered so far against the ceiling")


class InvoiceLine(WireModel):
    line_id: str
    application_id: str | None
    study_id: str | None
    service: str
    description: str
    quantity: Decimal
    unit_code: str
    unit_price: Decimal
    net_amount: Decimal
    receipt_ids: list[str]
    shares: dict[str, Decimal] = Field(description="Who receives what of the net amount (revenue share)")
    pass_through_hospital: str | None = None


class InvoiceView(WireModel):
    number: str
    kind: str
    organisation: str
    period: str
    tariff_version: str
    state: str
    currency: str
    net_total: Decimal
    vat_total: Decimal
    gross_total: Decimal
    issued_at: datetime
    due_date: date
    paid_at: datetime | None = None
    credit_of: str | None = None
    overdue: bool = False
    lines: list[InvoiceLine]


class InvoiceEvidence(WireModel):
    """What a verifier needs to check an invoice without trusting the hub: the node-signed receipts and
    participation statements behind its lines, and the tariff version it used."""

    invoice: InvoiceView
    receipts: list[dict[str, Any]]
    participations: list[ParticipationStatement]
    tariff: dict[str, Any]
    requester_category: str
    micro_enterprise: bool = False
    pass_through: dict[str, Decimal] = Field(
        default_factory=dict, description="'application/hospital' → cost"
    )
    waivers: dict[str, str] = Field(default_factory=dict, description="'application/service' → the reason")


class StatementLine(WireModel):
    invoice: str
    invoice_state: str
    line_id: str
    study_id: str | None
    description: str
    amount: Decimal
    receipt_ids: list[str]
    hospital_receipt_ids: list[str] = Field(
        default_factory=list,
        description="Of receipt_ids, those the hub metered for this hospital (its usage receipts and "
        "participation references), for the hospital to find in its own audit log",
    )


class Payout(WireModel):
    """Money the operator paid a hospital from its shares of one month's paid invoices."""

    hospital: str
    period: str
    amount: Decimal
    invoices: list[str]
    reference: str | None = None
    paid_at: datetime


class HospitalStatement(WireModel):
    """A hospital's share of one month's invoices; payable only from paid invoices."""

    hospital: str
    period: str
    currency: str
    lines: list[StatementLine]
    total: Decimal
    payable: Decimal = Field(description="The part from invoices already paid")
    paid_out: Decimal = Field(default=Decimal("0.00"), description="What the operator has paid the hospital")
    payouts: list[Payout] = Field(default_factory=list)

    @property
    def outstanding(self) -> Decimal:
        """Payable and not paid out yet."""
        return self.payable - self.paid_out
