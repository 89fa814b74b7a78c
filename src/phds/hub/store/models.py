"""The hub's tables as typed SQLAlchemy 2 declarative models.

Every timestamp is UTC: stored naive-UTC on SQLite and ``timestamptz`` on PostgreSQL, always returned
timezone-aware. Primary keys are UUIDs (not enumerable) except the append-only catalogue history.
Studies, their per-hospital targets, tasks and results (migration 0002) are in
:mod:`phds.hub.store.study_models`; metering will arrive as a later migration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python, whatever the engine stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; constraint names are deterministic so migrations can refer to them."""

    metadata = MetaData(naming_convention=NAMING)


class OrganisationRow(Base):
    """The network operator, a hospital or a requester."""

    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint("kind IN ('operator', 'hospital', 'requester')", name="kind"),
        CheckConstraint("(kind = 'requester') = (category IS NOT NULL)", name="category_iff_requester"),
        CheckConstraint("kind <> 'hospital' OR country IS NOT NULL", name="hospital_country"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    category: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRow(Base):
    """A person with one role in one organisation."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'requester', 'steward')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """argon2id encoding (``$argon2id$v=19$...``); None: the person cannot sign in with a password."""
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")


class NodeRow(Base):
    """The one node of a hospital; re-enrolment replaces its credential, not the row."""

    __tablename__ = "nodes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), unique=True)
    node_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    public_key: Mapped[str | None] = mapped_column(String(64))

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")


class RevocationListRow(Base):
    """A revocation list the operator signed off the hub and published through it (migration 0003)."""

    __tablename__ = "revocation_lists"

    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditHeadRow(Base):
    """A node's signed audit head as reported to the hub (migration 0003): a truncated log shows."""

    __tablename__ = "audit_heads"
    __table_args__ = (Index("ix_audit_heads_node_seq", "node_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nodes.id"))
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(128))
    head: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiTokenRow(Base):
    """A bearer credential of a person or a node: ``phds_<id>_<secret>``, stored as SHA-256 of the secret."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (node_id IS NULL)", name="one_principal"),
        Index("ix_api_tokens_user_id", "user_id"),
        Index("ix_api_tokens_node_id", "node_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    purpose: Mapped[str] = mapped_column(String(16), default="api")
    """``api`` (a machine's bearer token) or ``session`` (a portal sign-in, short-lived)."""
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    node_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("nodes.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EnrolmentTokenRow(Base):
    """A one-time token that lets a hospital's node enrol; ``used_at`` is set atomically on use."""

    __tablename__ = "enrolment_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by_node_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("nodes.id"))

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")


class CatalogueEntryRow(Base):
    """One publication of a hospital's dataset profile; history is kept, the latest one is shown."""

    __tablename__ = "catalogue_entries"
    __table_args__ = (Index("ix_catalogue_entries_org_published", "organisation_id", "published_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nodes.id"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size_bytes: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")


# Study tables live in their own module; importing it here registers them on ``Base.metadata``.
from phds.hub.store.study_models import ResultRow, StudyRow, StudyTargetRow, TaskRow  # noqa: E402

__all__ = [
    "ApiTokenRow",
    "Base",
    "CatalogueEntryRow",
    "EnrolmentTokenRow",
    "NodeRow",
    "OrganisationRow",
    "ResultRow",
    "StudyRow",
    "StudyTargetRow",
    "TaskRow",
    "UTCDateTime",
    "UserRow",
    "utcnow",
]
