"""The study runner's tables (migration 0002): studies, their target hospitals, tasks and results.

A study has one row per target hospital (``study_targets``: the hospital's state, reason and outcome)
and one task per hospital and round. A task is ``queued`` → ``leased`` (delivered, until
``lease_expires_at``) → ``done``; an ``awaiting_approval`` answer ``parked`` it (no redelivery), and
tasks the study no longer needs are ``cancelled``. A task has at most one result (unique ``task_id``),
so a duplicate answer can never be stored twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from phds.hub.store.models import Base, OrganisationRow, UTCDateTime, utcnow

STUDY_STATES = (
    "submitted",
    "awaiting_approval",
    "running",
    "completed",
    "partially_completed",
    "rejected",
    "failed",
)
ACTIVE_STUDY_STATES = ("submitted", "awaiting_approval", "running")
TASK_STATES = ("queued", "leased", "parked", "done", "cancelled")
OPEN_TASK_STATES = ("queued", "leased", "parked")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StudyRow(Base):
    """A submitted study: its spec, where the runner is, and (when final) its result."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(_in("state", STUDY_STATES), name="state"),
        Index("ix_studies_org_submitted", "organisation_id", "submitted_at"),
        Index("ix_studies_state_deadline", "state", "deadline_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    requester_category: Mapped[str | None] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    analysis: Mapped[str] = mapped_column(String(100))
    analysis_version: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(24))
    round: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[int] = mapped_column(Integer, default=1)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    signed_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")
    targets: Mapped[list[StudyTargetRow]] = relationship(
        lazy="selectin", order_by="StudyTargetRow.position", back_populates="study"
    )


class StudyRoundRow(Base):
    """The state of one round of a study (e.g. the global model of a FedAvg round), stored once.

    Every task of the round is delivered with this state; it is never copied into the tasks, so a round
    of a large model costs one row however many hospitals answer it (issue 12).
    """

    __tablename__ = "study_rounds"

    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StudyTargetRow(Base):
    """One target hospital of a study: its state, the node's reason, and its outcome for attribution."""

    __tablename__ = "study_targets"
    __table_args__ = (
        UniqueConstraint("study_id", "organisation_id", name="uq_study_targets_study_org"),
        Index("ix_study_targets_organisation_id", "organisation_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nodes.id"))
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str | None] = mapped_column(String(16))  # answered, declined, refused, failed, timed_out
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")
    study: Mapped[StudyRow] = relationship(back_populates="targets")


class TaskRow(Base):
    """One round of a study for one hospital's node."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("state", TASK_STATES), name="state"),
        UniqueConstraint("study_id", "organisation_id", "round", name="uq_tasks_study_org_round"),
        Index("ix_tasks_node_state", "node_id", "state"),
        Index("ix_tasks_state_lease", "state", "lease_expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nodes.id"))
    round: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")
    study: Mapped[StudyRow] = relationship(lazy="joined")


class ResultRow(Base):
    """A node's final answer to a task: at most one per task."""

    __tablename__ = "results"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id"), unique=True)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    compute_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    audit_hash: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    envelope: Mapped[dict[str, Any] | None] = mapped_column(JSON)
