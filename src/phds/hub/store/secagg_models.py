"""Secure-aggregation sessions at the hub (migration 0004): one per study round, and the signed messages.

The hub relays; it never holds a secret of the protocol. A session row records the round's
configuration, its stage (0 keys, 1 shares, 2 masked inputs, 3 unmask, then ``done`` or ``failed``) and
when the open stage closes at the latest. Every message a node posts is stored as it arrived (signed),
once per (stage, sender), so the hub can rebuild any stage from its database after a restart and a
node can recompute the sum from the transcript.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from phds.hub.store.models import Base, UTCDateTime, utcnow

STAGE_DONE = 4
STAGE_FAILED = 5


class SecAggSessionRow(Base):
    """One secure sum: a study's round."""

    __tablename__ = "secagg_sessions"

    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    stage: Mapped[int] = mapped_column(Integer, default=0)
    stage_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # stage 3: survivors and dropped
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # done: contributors, dropped, sums
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SecAggMessageRow(Base):
    """A signed protocol message as a node posted it."""

    __tablename__ = "secagg_messages"
    __table_args__ = (
        UniqueConstraint("study_id", "round", "stage", "sender", name="uq_secagg_messages_stage_sender"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    round: Mapped[int] = mapped_column(Integer)
    stage: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(200))
    body: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SecAggRepo:
    """Sessions and their messages."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: SecAggSessionRow) -> SecAggSessionRow:
        self.session.add(row)
        return row

    def get(self, study_id: uuid.UUID, round_no: int) -> SecAggSessionRow | None:
        return self.session.get(SecAggSessionRow, (study_id, round_no), populate_existing=True)

    def open_past(self, now: datetime) -> list[tuple[uuid.UUID, int]]:
        """Sessions whose open stage passed its deadline."""
        rows = self.session.execute(
            select(SecAggSessionRow.study_id, SecAggSessionRow.round).where(
                SecAggSessionRow.stage < STAGE_DONE, SecAggSessionRow.stage_deadline <= now
            )
        )
        return [(r[0], int(r[1])) for r in rows]

    def add_message(self, study_id: uuid.UUID, round_no: int, stage: int, sender: str, body: Any) -> bool:
        """Store a message; False when this sender already posted for this stage (idempotent)."""
        if sender in self.senders(study_id, round_no, stage):
            return False
        self.session.add(
            SecAggMessageRow(study_id=study_id, round=round_no, stage=stage, sender=sender, body=body)
        )
        self.session.flush()
        return True

    def stage_of(self, study_id: uuid.UUID, round_no: int) -> int | None:
        """The session's stage, read without loading it (the long poll's cheap check)."""
        query = select(SecAggSessionRow.stage).where(
            SecAggSessionRow.study_id == study_id, SecAggSessionRow.round == round_no
        )
        stage = self.session.scalars(query).first()
        return None if stage is None else int(stage)

    def senders(self, study_id: uuid.UUID, round_no: int, stage: int) -> set[str]:
        """Who posted for *stage*, without loading the messages (a masked input is megabytes)."""
        query = select(SecAggMessageRow.sender).where(
            SecAggMessageRow.study_id == study_id,
            SecAggMessageRow.round == round_no,
            SecAggMessageRow.stage == stage,
        )
        return set(self.session.scalars(query))

    def messages(
        self, study_id: uuid.UUID, round_no: int, stage: int, *, sender: str | None = None
    ) -> list[SecAggMessageRow]:
        query = select(SecAggMessageRow).where(
            SecAggMessageRow.study_id == study_id,
            SecAggMessageRow.round == round_no,
            SecAggMessageRow.stage == stage,
        )
        if sender is not None:
            query = query.where(SecAggMessageRow.sender == sender)
        return list(self.session.scalars(query.order_by(SecAggMessageRow.received_at)))
