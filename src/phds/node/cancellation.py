"""Cancelled studies at the node: parked tasks the hub reports cancelled are withdrawn, not run.

A requester may cancel a study while one of its tasks waits here for the steward. Before the node runs
a parked task (and every ``cancel_check_interval`` seconds for the steward's queue), it asks the hub the
state of its parked tasks (``POST /nodes/me/tasks/states``). A cancelled one is unparked, its pending
approval request is withdrawn from the steward's queue, and a ``study_cancelled`` audit entry records it.
A result the hub refuses because its study was cancelled is audited the same way.

The hub is not trusted to decide here, but it needs no trust: a hub that falsely reports a study
cancelled can only stop the node from answering, which withholding the task would do anyway. It can
never make the node run or release anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from phds.errors import PhdsError
from phds.node.executor import NodeRuntime
from phds.node.hub_client import HubClient
from phds.protocol.tasks import Task

log = logging.getLogger(__name__)


def audit_cancelled(runtime: NodeRuntime, study_id: str, task_id: str, what: str) -> None:
    """Record that *study_id* was cancelled by its requester, and what the node did about it."""
    runtime.audit.append(
        "study_cancelled", study_id=study_id, task_id=task_id, payload={"reported_by": "hub", "action": what}
    )
    log.info("study %s was cancelled by its requester: %s", study_id, what)


def withdraw_cancelled(runtime: NodeRuntime, client: HubClient, parked: Sequence[Task]) -> list[Task]:
    """Withdraw the parked tasks whose study the hub reports cancelled; the others, still to run.

    When the hub cannot be asked, every task stays (the check runs again later)."""
    if not parked:
        return []
    try:
        states = client.task_states([t.id for t in parked])
    except PhdsError as exc:
        log.info("could not ask the hub about parked tasks: %s", exc.message)
        return list(parked)
    keep: list[Task] = []
    for task in parked:
        if states.get(task.id) != "cancelled":
            keep.append(task)
            continue
        runtime.tasks.unpark(task.id)
        withdrawn = runtime.approvals.withdraw(task.study_id)
        what = "task withdrawn before it ran" + ("; approval request withdrawn" if withdrawn else "")
        audit_cancelled(runtime, task.study_id, task.id, what)
    return keep


__all__ = ["audit_cancelled", "withdraw_cancelled"]
