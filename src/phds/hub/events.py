"""Typed events of the study runner, stored in the transaction of the change they report.

Consumers (metering first, :mod:`phds.hub.metering`) read them in order after their own cursor, so a
consumer that was down catches up, and nothing is scraped from logs. An event is a pydantic model with a
``kind``; :func:`record_event` stores it, :func:`parse_event` reads one back.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from phds.hub.store import UnitOfWork
from phds.hub.store.billing_models import StudyEventRow
from phds.protocol.receipts import UsageReceipt
from phds.protocol.tasks import ResultStatus


class StudyEvent(BaseModel):
    """Base of the runner's events."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]


class TaskAnswered(StudyEvent):
    """A node's final answer to a task was accepted; *receipt* is its verified usage receipt."""

    kind: ClassVar[str] = "task_answered"

    task_id: str
    hospital: str
    node_id: str
    status: ResultStatus
    receipt: UsageReceipt | None


EVENT_TYPES: dict[str, type[StudyEvent]] = {TaskAnswered.kind: TaskAnswered}


def record_event(uow: UnitOfWork, study_id: uuid.UUID, event: StudyEvent) -> StudyEventRow:
    """Store *event* in the unit of work's transaction."""
    return uow.billing.add_event(study_id, event.kind, event.model_dump(mode="json"))


def parse_event(row: StudyEventRow) -> StudyEvent | None:
    """The typed event of a stored row; None for a kind this hub does not know (a newer hub wrote it)."""
    model = EVENT_TYPES.get(row.kind)
    return model.model_validate(row.payload) if model is not None else None
