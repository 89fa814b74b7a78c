"""Repositories of the study runner's tables (SQLAlchemy expressions only, bound parameters).

Row locks: :meth:`StudyRepo.lock` takes ``SELECT … FOR UPDATE`` on the study, so every event of one
study (a result, a deadline, a submit) is serialised on PostgreSQL; on SQLite every write transaction
is already serialised by ``BEGIN IMMEDIATE``. Task leasing and lease expiry use ``SKIP LOCKED`` so two
hub workers never deliver the same task twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, lazyload

from phds.errors import StoreError
from phds.hub.store.models import NodeRow, OrganisationRow
from phds.hub.store.study_models import (
    ACTIVE_STUDY_STATES,
    OPEN_TASK_STATES,
    ResultRow,
    StudyRoundRow,
    StudyRow,
    StudyTargetRow,
    TaskRow,
)

#: Load a task without joining its study (and the study's targets) again: the runner already holds the
#: locked study, and re-reading it for every task made each result O(hospitals) in ORM work.
_TASK_ONLY = (lazyload(TaskRow.study), lazyload(TaskRow.organisation))


class StudyRepo:
    """Studies and their target hospitals."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: StudyRow) -> StudyRow:
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, study_id: uuid.UUID) -> StudyRow | None:
        return self.session.get(StudyRow, study_id)

    def round_state(self, study: StudyRow, round_no: int | None = None) -> dict[str, Any]:
        """The state of the study's round (its current one by default), as the runner stored it once."""
        row = self.session.get(StudyRoundRow, (study.id, study.round if round_no is None else round_no))
        if row is None:
            raise StoreError(f"study {study.id} has no stored state for round {round_no or study.round}")
        return dict(row.state)

    def start_round(self, study: StudyRow, round_no: int, state: dict[str, Any], now: datetime) -> None:
        """Move the study to *round_no* and store that round's state (once, for every task of it)."""
        study.round = round_no
        self.session.add(StudyRoundRow(study_id=study.id, round=round_no, state=state, created_at=now))
        self.session.flush()

    def lock(self, study_id: uuid.UUID) -> StudyRow | None:
        """The study, locked for this transaction and re-read from the database."""
        query = (
            select(StudyRow)
            .where(StudyRow.id == study_id)
            .with_for_update(of=StudyRow)
            .execution_options(populate_existing=True)
        )
        return self.session.scalars(query).unique().first()

    def past_deadline(self, now: datetime) -> list[uuid.UUID]:
        """Ids of unfinished studies whose deadline has passed."""
        query = select(StudyRow.id).where(
            StudyRow.state.in_(ACTIVE_STUDY_STATES), StudyRow.deadline_at <= now
        )
        return list(self.session.scalars(query))

    def hospitals(self, names: Sequence[str]) -> dict[str, tuple[OrganisationRow, NodeRow | None]]:
        """Hospitals among *names* with their node (None when not enrolled), in one query."""
        query = (
            select(OrganisationRow, NodeRow)
            .outerjoin(NodeRow, NodeRow.organisation_id == OrganisationRow.id)
            .where(OrganisationRow.name.in_(list(names)), OrganisationRow.kind == "hospital")
        )
        return {org.name: (org, node) for org, node in self.session.execute(query).unique()}

    def list(
        self, *, organisation_id: uuid.UUID | None = None, target_organisation_id: uuid.UUID | None = None
    ) -> list[StudyRow]:
        """Newest first; of one requester organisation, or targeting one hospital, or all."""
        query = select(StudyRow).order_by(StudyRow.submitted_at.desc(), StudyRow.id)
        if organisation_id is not None:
            query = query.where(StudyRow.organisation_id == organisation_id)
        if target_organisation_id is not None:
            query = query.where(
                exists().where(
                    StudyTargetRow.study_id == StudyRow.id,
                    StudyTargetRow.organisation_id == target_organisation_id,
                )
            )
        return list(self.session.scalars(query).unique())


class TaskRepo:
    """Tasks: one per study, hospital and round."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: TaskRow) -> TaskRow:
        self.session.add(row)
        return row

    def owner(self, task_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID] | None:
        """``(study id, node id)`` of a task, without loading it."""
        row = self.session.execute(
            select(TaskRow.study_id, TaskRow.node_id).where(TaskRow.id == task_id)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def get(self, task_id: uuid.UUID, *, fresh: bool = False) -> TaskRow | None:
        """The task; ``fresh`` re-reads it (after its study was locked)."""
        query = select(TaskRow).where(TaskRow.id == task_id).options(*_TASK_ONLY)
        if fresh:
            query = query.execution_options(populate_existing=True)
        return self.session.scalars(query).unique().first()

    def lease(self, node_id: uuid.UUID, limit: int, now: datetime, expires_at: datetime) -> list[TaskRow]:
        """Lease up to *limit* queued tasks of a node, oldest first."""
        query = (
            select(TaskRow)
            .where(TaskRow.node_id == node_id, TaskRow.state == "queued")
            .order_by(TaskRow.created_at, TaskRow.id)
            .limit(limit)
            .with_for_update(of=TaskRow, skip_locked=True)
        )
        rows = list(self.session.scalars(query).unique())
        for row in rows:
            row.state, row.lease_expires_at, row.updated_at = "leased", expires_at, now
        self.session.flush()
        return rows

    def requeue_expired(self, now: datetime) -> list[TaskRow]:
        """Put every leased task whose lease has expired back in the queue, one attempt later."""
        query = (
            select(TaskRow)
            .where(TaskRow.state == "leased", TaskRow.lease_expires_at <= now)
            .with_for_update(of=TaskRow, skip_locked=True)
        )
        rows = list(self.session.scalars(query).unique())
        for row in rows:
            row.state, row.lease_expires_at, row.updated_at = "queued", None, now
            row.attempt += 1
        self.session.flush()
        return rows

    def studies_waiting(self) -> list[uuid.UUID]:
        """Ids of studies with a queued or leased task (a round still waiting for a node)."""
        query = select(TaskRow.study_id).where(TaskRow.state.in_(("queued", "leased"))).distinct()
        return list(self.session.scalars(query))

    def of_study(self, study_id: uuid.UUID, *, round_no: int | None = None) -> list[TaskRow]:
        query = select(TaskRow).where(TaskRow.study_id == study_id).options(*_TASK_ONLY)
        if round_no is not None:
            query = query.where(TaskRow.round == round_no)
        return list(self.session.scalars(query.order_by(TaskRow.created_at)).unique())

    def of_node(self, node_id: uuid.UUID, task_ids: Sequence[uuid.UUID]) -> list[TaskRow]:
        """Those of *task_ids* that are *node_id*'s tasks."""
        if not task_ids:
            return []
        query = (
            select(TaskRow).where(TaskRow.node_id == node_id, TaskRow.id.in_(task_ids)).options(*_TASK_ONLY)
        )
        return list(self.session.scalars(query).unique())

    def cancel_open(
        self, study_id: uuid.UUID, now: datetime, organisation_id: uuid.UUID | None = None
    ) -> int:
        """Cancel the study's unanswered tasks (of one hospital, or all); how many."""
        rows = [
            t
            for t in self.of_study(study_id)
            if t.state in OPEN_TASK_STATES and organisation_id in (None, t.organisation_id)
        ]
        for row in rows:
            row.state, row.lease_expires_at, row.updated_at = "cancelled", None, now
        return len(rows)


class ResultRepo:
    """Results: one per task at most."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: ResultRow) -> ResultRow:
        self.session.add(row)
        return row

    def for_tasks(self, task_ids: Sequence[uuid.UUID]) -> list[ResultRow]:
        if not task_ids:
            return []
        return list(self.session.scalars(select(ResultRow).where(ResultRow.task_id.in_(list(task_ids)))))

    def envelopes(self, study_id: uuid.UUID) -> list[dict[str, Any]]:
        """The signed envelopes of a study's released results, by round and hospital."""
        rows = self.session.scalars(
            select(ResultRow).where(ResultRow.study_id == study_id, ResultRow.envelope.is_not(None))
        )
        found = [dict(r.envelope) for r in rows if r.envelope is not None]
        return sorted(found, key=lambda e: (int(e["round"]), str(e["hospital"])))

    def count(self, task_id: uuid.UUID) -> int:
        return len(list(self.session.scalars(select(ResultRow.id).where(ResultRow.task_id == task_id))))
