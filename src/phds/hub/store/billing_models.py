"""Metering at the hub (migration 0005): typed study events, the node-signed receipts metered from them.

The study runner writes a :class:`StudyEventRow` in the same transaction as the state change it reports
(``phds.hub.events``). Metering reads the events after its cursor and stores each node-signed receipt
once (:class:`UsageReceiptRow`, keyed by the receipt id), so a redelivered task, a duplicate result or
a restart of hub or node never meters twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Uuid, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from phds.billing.invoicing import MeteredReceipt
from phds.hub.store.models import Base, UTCDateTime, utcnow
from phds.protocol.receipts import ReceiptOutcome


class StudyEventRow(Base):
    """A typed event of the study runner, written with the change it reports."""

    __tablename__ = "study_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    kind: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventCursorRow(Base):
    """How far a consumer of study events has read."""

    __tablename__ = "event_cursors"

    consumer: Mapped[str] = mapped_column(String(50), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)


class UsageReceiptRow(Base):
    """One node-signed usage receipt, as metered (its signature verified when the result arrived)."""

    __tablename__ = "usage_receipts"

    receipt_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nodes.id"))
    hospital: Mapped[str] = mapped_column(String(100))
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    application_id: Mapped[str | None] = mapped_column(String(64))
    requester_org: Mapped[str] = mapped_column(String(100))
    service_type: Mapped[str] = mapped_column(String(50))
    round: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    compute_seconds: Mapped[float] = mapped_column(Float)
    persons: Mapped[int | None] = mapped_column(Integer)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM of issued_at, the billing period
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    receipt: Mapped[dict[str, Any]] = mapped_column(JSON)  # exactly as the node signed it
    event_id: Mapped[int] = mapped_column(Integer)
    metered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def metered(self) -> MeteredReceipt:
        """What invoicing needs of this receipt."""
        return MeteredReceipt(
            self.receipt_id,
            str(self.study_id),
            self.hospital,
            self.service_type,
            ReceiptOutcome(self.outcome),
            self.issued_at,
            self.application_id,
            self.persons,
        )


class BillingRepo:
    """Study events, consumer cursors and metered receipts."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_event(self, study_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> StudyEventRow:
        row = StudyEventRow(study_id=study_id, kind=kind, payload=payload, created_at=utcnow())
        self.session.add(row)
        return row

    def events_after(self, event_id: int, limit: int) -> list[StudyEventRow]:
        query = select(StudyEventRow).where(StudyEventRow.id > event_id).order_by(StudyEventRow.id)
        return list(self.session.scalars(query.limit(limit)))

    def cursor(self, consumer: str) -> EventCursorRow:
        """The consumer's cursor, locked for this transaction (created at 0 the first time)."""
        row = self.session.get(EventCursorRow, consumer, with_for_update=True)
        if row is None:
            row = EventCursorRow(consumer=consumer, last_event_id=0)
            self.session.add(row)
            self.session.flush()
        return row

    def receipt(self, receipt_id: str) -> UsageReceiptRow | None:
        return self.session.get(UsageReceiptRow, receipt_id)

    def add_receipt(self, row: UsageReceiptRow) -> bool:
        """Store a metered receipt unless its id is stored already; whether it was new."""
        if self.receipt(row.receipt_id) is not None:
            return False
        self.session.add(row)
        return True

    def receipts(
        self,
        *,
        month: str | None = None,
        requester_org: str | None = None,
        hospital: str | None = None,
        study_ids: Sequence[uuid.UUID] | None = None,
        application_id: str | None = None,
        receipt_ids: Sequence[str] | None = None,
    ) -> list[UsageReceiptRow]:
        query = select(UsageReceiptRow)
        if application_id is not None:
            query = query.where(UsageReceiptRow.application_id == application_id)
        if receipt_ids is not None:
            query = query.where(UsageReceiptRow.receipt_id.in_(list(receipt_ids)))
        if month is not None:
            query = query.where(UsageReceiptRow.month == month)
        if requester_org is not None:
            query = query.where(UsageReceiptRow.requester_org == requester_org)
        if hospital is not None:
            query = query.where(UsageReceiptRow.hospital == hospital)
        if study_ids is not None:
            query = query.where(UsageReceiptRow.study_id.in_(list(study_ids)))
        return list(
            self.session.scalars(query.order_by(UsageReceiptRow.issued_at, UsageReceiptRow.receipt_id))
        )
