"""Repositories: the only code that queries the hub's tables (SQLAlchemy expressions, bound parameters).

Each repository works inside one :class:`~phds.hub.store.UnitOfWork` (one transaction); rows it returns
stay readable after the unit commits. Business rules (who may do what, which role fits which
organisation) live in :mod:`phds.hub.services`, not here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Executable, func, select, update
from sqlalchemy.orm import Session

from phds.hub.store.models import (
    ApiTokenRow,
    CatalogueEntryRow,
    EnrolmentTokenRow,
    NodeRow,
    OrganisationRow,
    UserRow,
)

T = TypeVar("T")


class _Repo:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _add(self, row: T) -> T:
        self.session.add(row)
        self.session.flush()
        return row

    def _rowcount(self, statement: Executable) -> int:
        return cast(CursorResult[Any], self.session.execute(statement)).rowcount

    def _count(self, statement: Executable) -> int:
        return int(self.session.scalar(statement) or 0)


class OrganisationRepo(_Repo):
    """Organisations, by id or by slug."""

    def add(self, row: OrganisationRow) -> OrganisationRow:
        return self._add(row)

    def get(self, org_id: uuid.UUID) -> OrganisationRow | None:
        return self.session.get(OrganisationRow, org_id)

    def by_name(self, name: str) -> OrganisationRow | None:
        return self.session.scalars(select(OrganisationRow).where(OrganisationRow.name == name)).first()

    def list(
        self, *, kind: str | None = None, ids: Sequence[uuid.UUID] | None = None
    ) -> list[OrganisationRow]:
        query = select(OrganisationRow).order_by(OrganisationRow.name)
        if kind is not None:
            query = query.where(OrganisationRow.kind == kind)
        if ids is not None:
            query = query.where(OrganisationRow.id.in_(ids))
        return list(self.session.scalars(query))


class UserRepo(_Repo):
    """People."""

    def add(self, row: UserRow) -> UserRow:
        return self._add(row)

    def get(self, user_id: uuid.UUID) -> UserRow | None:
        return self.session.get(UserRow, user_id)

    def by_email(self, email: str) -> UserRow | None:
        return self.session.scalars(select(UserRow).where(UserRow.email == email)).first()

    def list(self, *, organisation_id: uuid.UUID | None = None, role: str | None = None) -> list[UserRow]:
        query = select(UserRow).order_by(UserRow.email)
        if organisation_id is not None:
            query = query.where(UserRow.organisation_id == organisation_id)
        if role is not None:
            query = query.where(UserRow.role == role)
        return list(self.session.scalars(query))

    def count(self, *, role: str) -> int:
        return self._count(select(func.count()).select_from(UserRow).where(UserRow.role == role))


class TokenRepo(_Repo):
    """API tokens of people and nodes."""

    def add(self, row: ApiTokenRow) -> ApiTokenRow:
        return self._add(row)

    def get(self, token_id: str) -> ApiTokenRow | None:
        return self.session.get(ApiTokenRow, token_id)

    def list(
        self, *, user_ids: Sequence[uuid.UUID] | None = None, node_id: uuid.UUID | None = None
    ) -> list[ApiTokenRow]:
        query = select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.id)
        if user_ids is not None:
            query = query.where(ApiTokenRow.user_id.in_(user_ids))
        if node_id is not None:
            query = query.where(ApiTokenRow.node_id == node_id)
        return list(self.session.scalars(query))

    def revoke(self, token_id: str, now: datetime) -> bool:
        """Revoke one token; False when it was already revoked."""
        revoked = self._rowcount(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session="fetch")
        )
        return revoked == 1

    def revoke_all_of_node(self, node_id: uuid.UUID, now: datetime) -> int:
        """Revoke every live credential of a node; how many were revoked."""
        return self._rowcount(
            update(ApiTokenRow)
            .where(ApiTokenRow.node_id == node_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session="fetch")
        )

    def touch(self, token_id: str, now: datetime) -> None:
        """Record that the token was just used."""
        self.session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )


class EnrolmentRepo(_Repo):
    """One-time node enrolment tokens."""

    def add(self, row: EnrolmentTokenRow) -> EnrolmentTokenRow:
        return self._add(row)

    def by_lookup(self, lookup: str) -> EnrolmentTokenRow | None:
        return self.session.scalars(
            select(EnrolmentTokenRow).where(EnrolmentTokenRow.lookup == lookup)
        ).first()

    def claim(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Mark the token used if it is unused and unexpired, atomically; False if another use won.

        One conditional UPDATE: on PostgreSQL a concurrent claimer blocks on the row lock and then sees
        ``used_at`` set; on SQLite writers are serialised by ``BEGIN IMMEDIATE``.
        """
        claimed = self._rowcount(
            update(EnrolmentTokenRow)
            .where(
                EnrolmentTokenRow.id == token_id,
                EnrolmentTokenRow.used_at.is_(None),
                EnrolmentTokenRow.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session="fetch")
        )
        return claimed == 1


class NodeRepo(_Repo):
    """Nodes, one per hospital."""

    def add(self, row: NodeRow) -> NodeRow:
        return self._add(row)

    def get(self, node_id: uuid.UUID) -> NodeRow | None:
        return self.session.get(NodeRow, node_id)

    def by_organisation(self, org_id: uuid.UUID) -> NodeRow | None:
        return self.session.scalars(select(NodeRow).where(NodeRow.organisation_id == org_id)).first()

    def list(self, *, organisation_id: uuid.UUID | None = None) -> list[NodeRow]:
        query = select(NodeRow).join(NodeRow.organisation).order_by(OrganisationRow.name)
        if organisation_id is not None:
            query = query.where(NodeRow.organisation_id == organisation_id)
        return list(self.session.scalars(query))

    def touch(self, node_id: uuid.UUID, now: datetime) -> None:
        self.session.execute(
            update(NodeRow)
            .where(NodeRow.id == node_id)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )


class CatalogueRepo(_Repo):
    """Published dataset profiles; append-only."""

    def add(self, row: CatalogueEntryRow) -> CatalogueEntryRow:
        return self._add(row)

    def latest(self, *, organisation_id: uuid.UUID | None = None) -> list[CatalogueEntryRow]:
        """The newest entry of each hospital (or of one), ordered by hospital slug."""
        newest = select(func.max(CatalogueEntryRow.id)).group_by(CatalogueEntryRow.organisation_id)
        if organisation_id is not None:
            newest = newest.where(CatalogueEntryRow.organisation_id == organisation_id)
        query = (
            select(CatalogueEntryRow)
            .join(CatalogueEntryRow.organisation)
            .where(CatalogueEntryRow.id.in_(newest.scalar_subquery()))
            .order_by(OrganisationRow.name)
        )
        return list(self.session.scalars(query))

    def history_count(self, organisation_id: uuid.UUID) -> int:
        return self._count(
            select(func.count())
            .select_from(CatalogueEntryRow)
            .where(CatalogueEntryRow.organisation_id == organisation_id)
        )
