"""The money path at the hub (migration 0006): tariffs, billing profiles, applications, quotes, hospitals'
signed participation, invoices with gapless numbers, and payouts.

Amounts are NUMERIC(14, 2) (``Decimal`` in Python, never float). A tariff version is inserted once and
never updated; an issued invoice is never updated except for its payment state; a correction is a credit
note. Invoice numbers come from :class:`InvoiceCounterRow`, locked and advanced in the issuing
transaction, so a year's numbers have no gaps.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from phds.hub.store.models import Base, UTCDateTime, utcnow

Money = Numeric(14, 2)


class TariffVersionRow(Base):
    """One version of the price list, as uploaded."""

    __tablename__ = "tariff_versions"

    version: Mapped[str] = mapped_column(String(40), primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillingProfileRow(Base):
    """An organisation's invoicing details (the operator's are the seller's)."""

    __tablename__ = "billing_profiles"

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApplicationRow(Base):
    """A data-access application: submitted → quoted → accepted | declined."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    form: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QuoteRow(Base):
    """A priced application; its total is the binding ceiling once accepted."""

    __tablename__ = "quotes"
    __table_args__ = (UniqueConstraint("application_id", "revision", name="uq_quotes_application_revision"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"))
    revision: Mapped[int] = mapped_column(Integer)
    tariff_version: Mapped[str] = mapped_column(ForeignKey("tariff_versions.version"))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    ceiling: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    valid_until: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20))  # offered, accepted, declined, superseded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ParticipationRow(Base):
    """A hospital steward's decision on an application, signed by the node key at the node."""

    __tablename__ = "participations"

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    hospital: Mapped[str] = mapped_column(String(63), primary_key=True)
    accepted: Mapped[bool] = mapped_column(Boolean)
    pass_through: Mapped[Decimal] = mapped_column(Money)
    statement: Mapped[dict[str, Any]] = mapped_column(JSON)  # exactly as the node signed it
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvoiceCounterRow(Base):
    """The last invoice number issued in a year."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class InvoiceRow(Base):
    """An issued invoice or credit note; immutable but for its payment state."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("organisation_id", "period", "series", name="uq_invoices_period"),)

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # invoice, credit_note
    series: Mapped[str] = mapped_column(String(40))  # "invoice", or "credit:<number>"
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    period: Mapped[str] = mapped_column(String(7))
    tariff_version: Mapped[str] = mapped_column(ForeignKey("tariff_versions.version"))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # with receipt ids and revenue shares
    net_total: Mapped[Decimal] = mapped_column(Money)
    vat_total: Mapped[Decimal] = mapped_column(Money)
    gross_total: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[str] = mapped_column(String(20))  # issued, paid, credited
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_date: Mapped[date] = mapped_column(Date)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_reference: Mapped[str | None] = mapped_column(Text)
    credit_of: Mapped[str | None] = mapped_column(String(32))


class PayoutRow(Base):
    """Money paid to a hospital from its shares of paid invoices of one month."""

    __tablename__ = "payouts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    hospital: Mapped[str] = mapped_column(String(63))
    period: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(Money)
    invoices: Mapped[list[str]] = mapped_column(JSON)  # the paid invoices it pays out from
    reference: Mapped[str | None] = mapped_column(Text)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountsRepo:
    """Tariffs, profiles, applications, quotes, participations and invoices."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Base) -> None:
        self.session.add(row)
        self.session.flush()

    def tariffs(self) -> list[TariffVersionRow]:
        return list(self.session.scalars(select(TariffVersionRow).order_by(TariffVersionRow.effective_from)))

    def tariff(self, version: str) -> TariffVersionRow | None:
        return self.session.get(TariffVersionRow, version)

    def profile(self, organisation_id: uuid.UUID) -> BillingProfileRow | None:
        return self.session.get(BillingProfileRow, organisation_id)

    def application(self, application_id: str, *, lock: bool = False) -> ApplicationRow | None:
        return self.session.get(ApplicationRow, application_id, with_for_update=lock)

    def applications(self, organisation_id: uuid.UUID | None = None) -> list[ApplicationRow]:
        query = select(ApplicationRow).order_by(ApplicationRow.created_at, ApplicationRow.id)
        if organisation_id is not None:
            query = query.where(ApplicationRow.organisation_id == organisation_id)
        return list(self.session.scalars(query))

    def count_applications(self, prefix: str) -> int:
        return len(
            list(self.session.scalars(select(ApplicationRow.id).where(ApplicationRow.id.like(f"{prefix}%"))))
        )

    def quotes(self, application_id: str) -> list[QuoteRow]:
        query = select(QuoteRow).where(QuoteRow.application_id == application_id).order_by(QuoteRow.revision)
        return list(self.session.scalars(query))

    def quote(self, quote_id: str) -> QuoteRow | None:
        return self.session.get(QuoteRow, quote_id)

    def accepted_quote(self, application_id: str) -> QuoteRow | None:
        return next((q for q in reversed(self.quotes(application_id)) if q.state == "accepted"), None)

    def participations(self, application_id: str) -> list[ParticipationRow]:
        query = select(ParticipationRow).where(ParticipationRow.application_id == application_id)
        return list(self.session.scalars(query.order_by(ParticipationRow.hospital)))

    def participation(self, application_id: str, hospital: str) -> ParticipationRow | None:
        return self.session.get(ParticipationRow, (application_id, hospital))

    def next_invoice_number(self, year: int) -> str:
        """The year's next number, allocated in this transaction (``INV-2026-000001``)."""
        counter = self.session.get(InvoiceCounterRow, year, with_for_update=True)
        if counter is None:
            counter = InvoiceCounterRow(year=year, last=0)
            self.session.add(counter)
        counter.last += 1
        self.session.flush()
        return f"INV-{year}-{counter.last:06d}"

    def payouts(self, hospital: str, period: str) -> list[PayoutRow]:
        query = select(PayoutRow).where(PayoutRow.hospital == hospital, PayoutRow.period == period)
        return list(self.session.scalars(query.order_by(PayoutRow.paid_at)))

    def invoice(self, number: str, *, lock: bool = False) -> InvoiceRow | None:
        return self.session.get(InvoiceRow, number, with_for_update=lock)

    def invoices(
        self, *, organisation_id: uuid.UUID | None = None, period: str | None = None
    ) -> list[InvoiceRow]:
        query = select(InvoiceRow).order_by(InvoiceRow.issued_at, InvoiceRow.number)
        if organisation_id is not None:
            query = query.where(InvoiceRow.organisation_id == organisation_id)
        if period is not None:
            query = query.where(InvoiceRow.period == period)
        return list(self.session.scalars(query))
