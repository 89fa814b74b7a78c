"""The typed invoice and credit-note model that the HTML, CII XML and PDF renderings are made from.

Frozen dataclasses with Decimal amounts. Construction checks the EN 16931-1:2017 rules that a document
must meet whatever its rendering (the BR-n rule numbers are cited where they are checked); the derived
VAT breakdown and totals come from :func:`phds.billing.vat.vat_breakdown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

from stdnum import iban as iban_number

from phds.errors import InputError

from .money import check_currency, round_amount
from .vat import VatBreakdown, VatCategory, VatTreatment, validate_vat_id, vat_breakdown

_COUNTRY_CODE = re.compile(r"[A-Z]{2}")
# UN/ECE Recommendation 20 unit codes are 2 or 3 upper-case letters or digits ("C62", "HUR", "MON").
_UNIT_CODE = re.compile(r"[A-Z0-9]{2,3}")


def _require_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError("must not be empty", field=field)


def _require_decimal(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InputError(f"{value!r} is not a non-negative Decimal", field=field)
    return value


@dataclass(frozen=True)
class Party:
    """The seller (BG-4) or the buyer (BG-7) with its postal address (BG-5, BG-8)."""

    name: str
    address_lines: tuple[str, ...]
    postcode: str
    city: str
    country: str  # ISO 3166-1 alpha-2 (BT-40, BT-55)
    vat_id: str | None = None
    email: str | None = None
    legal_id: str | None = None  # e.g. a company registration number (BT-30, BT-47)

    def __post_init__(self) -> None:
        _require_text(self.name, "party.name")
        object.__setattr__(self, "address_lines", tuple(self.address_lines))
        if not isinstance(self.country, str) or not _COUNTRY_CODE.fullmatch(self.country):
            raise InputError(f"{self.country!r} is not an ISO 3166-1 alpha-2 code", field="party.country")
        if len(self.address_lines) > 3:
            # CII carries three address lines (BT-35, BT-36, BT-162 for the seller).
            raise InputError("at most 3 address lines", field="party.address_lines")
        if self.vat_id is not None:
            object.__setattr__(self, "vat_id", validate_vat_id(self.vat_id, "party.vat_id"))


@dataclass(frozen=True)
class DocumentLine:
    """One invoice line (BG-25)."""

    line_id: str  # "1", "2", ... (BT-126)
    description: str  # the item name (BT-153)
    service: str  # e.g. "feasibility", "application_fee", "analyst_hours" (BT-155)
    application_id: str | None
    quantity: Decimal  # BT-129
    unit_code: str  # UN/ECE Recommendation 20: "C62" (one), "HUR" (hour), "MON" (month) (BT-130)
    unit_price: Decimal  # the item net price (BT-146)
    net_amount: Decimal  # quantity × unit_price, rounded to 2 decimals (BT-131)
    vat: VatTreatment
    receipt_ids: tuple[str, ...] = ()  # the node-signed receipts behind the line

    def __post_init__(self) -> None:
        _require_text(self.line_id, "line.line_id")
        object.__setattr__(self, "receipt_ids", tuple(self.receipt_ids))
        _require_text(self.description, "line.description")
        _require_text(self.service, "line.service")
        if not isinstance(self.unit_code, str) or not _UNIT_CODE.fullmatch(self.unit_code):
            raise InputError(f"{self.unit_code!r} is not a UN/ECE Rec. 20 unit code", field="line.unit_code")
        quantity = _require_decimal(self.quantity, "line.quantity")
        # BR-27: the item net price shall not be negative.
        unit_price = _require_decimal(self.unit_price, "line.unit_price")
        net_amount = _require_decimal(self.net_amount, "line.net_amount")
        if net_amount != line_net_amount(quantity, unit_price):
            raise InputError(
                f"line {self.line_id}: {net_amount} is not {quantity} × {unit_price} rounded to cents",
                field="line.net_amount",
            )
        if not isinstance(self.vat, VatTreatment):
            raise InputError("a line needs a VatTreatment", field="line.vat")


def line_net_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """The line net amount: quantity × unit price rounded half-up to cents (BR-DEC-23)."""
    return round_amount(quantity * unit_price)


class DocumentKind(StrEnum):
    """Invoice or credit note; :attr:`type_code` is the UNTDID 1001 code of BT-3."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"

    @property
    def type_code(self) -> str:
        """380 commercial invoice, 381 credit note (UNTDID 1001)."""
        return "380" if self is DocumentKind.INVOICE else "381"


@dataclass(frozen=True)
class InvoiceDocument:
    """An invoice or credit note of the network; amounts in :attr:`currency`, positive for both kinds."""

    number: str  # BT-1
    kind: DocumentKind  # BT-3
    issue_date: date  # BT-2
    due_date: date  # BT-9
    period_start: date  # BT-73
    period_end: date  # BT-74
    currency: str  # BT-5, ISO 4217
    seller: Party
    buyer: Party
    lines: tuple[DocumentLine, ...]
    payment_reference: str  # BT-83
    seller_iban: str | None = None  # BT-84
    preceding_invoice: str | None = None  # for a credit note: the invoice it corrects (BT-25)
    note: str | None = None  # BT-22

    def __post_init__(self) -> None:
        _require_text(self.number, "number")
        if not isinstance(self.kind, DocumentKind):
            raise InputError(f"{self.kind!r} is not a document kind", field="kind")
        check_currency(self.currency, "currency")
        _require_text(self.payment_reference, "payment_reference")
        if self.due_date < self.issue_date:
            raise InputError("the due date is before the issue date", field="due_date")
        if self.period_end < self.period_start:
            # BR-29: the invoicing period end date is on or after its start date.
            raise InputError("the period ends before it starts", field="period_end")
        object.__setattr__(self, "lines", tuple(self.lines))
        if not self.lines:
            raise InputError("a document has at least one line (BR-16)", field="lines")
        line_ids = [line.line_id for line in self.lines]
        if len(set(line_ids)) != len(line_ids):
            raise InputError("line ids repeat", field="lines")
        if self.kind is DocumentKind.CREDIT_NOTE and not self.preceding_invoice:
            raise InputError("a credit note names the invoice it corrects", field="preceding_invoice")
        if self.seller_iban is not None:
            if not iban_number.is_valid(self.seller_iban):
                raise InputError(f"{self.seller_iban!r} is not a valid IBAN", field="seller_iban")
            object.__setattr__(self, "seller_iban", iban_number.compact(self.seller_iban))
        self._check_vat_rules()

    def _check_vat_rules(self) -> None:
        categories = {line.vat.category for line in self.lines}
        if VatCategory.OUT_OF_SCOPE in categories and len(categories) > 1:
            # BR-O-11 .. BR-O-14: a document not subject to VAT has no other VAT category.
            raise InputError("out-of-scope lines cannot share a document with taxed lines", field="lines")
        if categories - {VatCategory.OUT_OF_SCOPE} and self.seller.vat_id is None:
            # BR-S-02, BR-AE-02, BR-E-02: the seller's VAT identifier (BT-31) is present.
            raise InputError("the seller needs a VAT id for VAT-rated lines", field="seller.vat_id")
        if VatCategory.REVERSE_CHARGE in categories and self.buyer.vat_id is None:
            # BR-AE-02: a reverse-charged invoice carries the buyer's VAT identifier (BT-48).
            raise InputError("a reverse-charged line needs the buyer's VAT id", field="buyer.vat_id")

    @cached_property
    def _summary(self) -> tuple[list[VatBreakdown], Decimal, Decimal, Decimal]:
        return vat_breakdown(self.lines)

    @property
    def breakdown(self) -> tuple[VatBreakdown, ...]:
        """The VAT breakdown groups (BG-23), one per VAT category and rate."""
        return tuple(self._summary[0])

    @property
    def net_total(self) -> Decimal:
        """Sum of the line net amounts (BT-106 = BT-109)."""
        return self._summary[1]

    @property
    def vat_total(self) -> Decimal:
        """Sum of the VAT category tax amounts (BT-110)."""
        return self._summary[2]

    @property
    def gross_total(self) -> Decimal:
        """Net total plus VAT total (BT-112), which is also the amount due (BT-115)."""
        return self._summary[3]

    @property
    def title(self) -> str:
        """'Invoice <number>' or 'Credit note <number>'."""
        return f"{'Invoice' if self.kind is DocumentKind.INVOICE else 'Credit note'} {self.number}"


def _decimal_text(value: Decimal) -> str:
    # Fixed-point text, never an exponent ("1E+1") and never a float.
    return format(value, "f")


def _party_json(party: Party) -> dict[str, Any]:
    return {
        "name": party.name,
        "address_lines": list(party.address_lines),
        "postcode": party.postcode,
        "city": party.city,
        "country": party.country,
        "vat_id": party.vat_id,
        "email": party.email,
        "legal_id": party.legal_id,
    }


def _vat_json(category: VatCategory, rate: Decimal, reason: str | None, code: str | None) -> dict[str, Any]:
    return {
        "category": category.value,
        "rate": _decimal_text(rate),
        "exemption_reason": reason,
        "exemption_code": code,
    }


def document_json(doc: InvoiceDocument) -> dict[str, Any]:
    """*doc* as JSON-ready data: amounts and rates as decimal strings, dates as ISO 8601."""
    return {
        "number": doc.number,
        "kind": doc.kind.value,
        "type_code": doc.kind.type_code,
        "issue_date": doc.issue_date.isoformat(),
        "due_date": doc.due_date.isoformat(),
        "period_start": doc.period_start.isoformat(),
        "period_end": doc.period_end.isoformat(),
        "currency": doc.currency,
        "seller": _party_json(doc.seller),
        "buyer": _party_json(doc.buyer),
        "lines": [
            {
                "line_id": line.line_id,
                "description": line.description,
                "service": line.service,
                "application_id": line.application_id,
                "quantity": _decimal_text(line.quantity),
                "unit_code": line.unit_code,
                "unit_price": _decimal_text(line.unit_price),
                "net_amount": _decimal_text(line.net_amount),
                "vat": _vat_json(
                    line.vat.category, line.vat.rate, line.vat.exemption_reason, line.vat.exemption_code
                ),
                "receipt_ids": list(line.receipt_ids),
            }
            for line in doc.lines
        ],
        "vat_breakdown": [
            {
                **_vat_json(group.category, group.rate, group.exemption_reason, group.exemption_code),
                "taxable_amount": _decimal_text(group.taxable_amount),
                "tax_amount": _decimal_text(group.tax_amount),
            }
            for group in doc.breakdown
        ],
        "net_total": _decimal_text(doc.net_total),
        "vat_total": _decimal_text(doc.vat_total),
        "gross_total": _decimal_text(doc.gross_total),
        "payment_reference": doc.payment_reference,
        "seller_iban": doc.seller_iban,
        "preceding_invoice": doc.preceding_invoice,
        "note": doc.note,
    }


def document_from_json(data: dict[str, Any]) -> InvoiceDocument:
    """The document that :func:`document_json` wrote (the hub stores issued invoices so, and renders
    their HTML and PDF from it on demand)."""

    def party(p: dict[str, Any]) -> Party:
        return Party(
            p["name"],
            tuple(p["address_lines"]),
            p["postcode"],
            p["city"],
            p["country"],
            p.get("vat_id"),
            p.get("email"),
            p.get("legal_id"),
        )

    def vat(v: dict[str, Any]) -> VatTreatment:
        return VatTreatment(
            VatCategory(v["category"]), Decimal(v["rate"]), v["exemption_reason"], v["exemption_code"]
        )

    lines = tuple(
        DocumentLine(
            line["line_id"],
            line["description"],
            line["service"],
            line["application_id"],
            Decimal(line["quantity"]),
            line["unit_code"],
            Decimal(line["unit_price"]),
            Decimal(line["net_amount"]),
            vat(line["vat"]),
            tuple(line["receipt_ids"]),
        )
        for line in data["lines"]
    )
    return InvoiceDocument(
        number=data["number"],
        kind=DocumentKind(data["kind"]),
        issue_date=date.fromisoformat(data["issue_date"]),
        due_date=date.fromisoformat(data["due_date"]),
        period_start=date.fromisoformat(data["period_start"]),
        period_end=date.fromisoformat(data["period_end"]),
        currency=data["currency"],
        seller=party(data["seller"]),
        buyer=party(data["buyer"]),
        lines=lines,
        payment_reference=data["payment_reference"],
        seller_iban=data.get("seller_iban"),
        preceding_invoice=data.get("preceding_invoice"),
        note=data.get("note"),
    )
