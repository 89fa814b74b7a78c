"""Tasks the node keeps across restarts, in ``node.db``: parked tasks and the results outbox.

- **Parked tasks** wait for a steward's decision (the policy said ``manual``). The whole :class:`Task`
  is kept as JSON, so a restarted node still runs it once the steward decides.
- **Outcomes** are the final :class:`TaskResult` of each task, stored before they are posted and
  marked posted once the hub acknowledged them. A task delivered again (its lease expired while the
  node crashed or the hub was unreachable) is answered from here, so nothing is computed, released or
  audited as released twice, and a result that could not be posted is posted later.

Neither table holds row-level data: a task carries parameters, an outcome carries what the gate
released (identical to the audited ``value_released`` payload).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from phds.node.audit import NodeDatabase
from phds.protocol.tasks import ResultStatus, Task, TaskResult

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parked_tasks (
    task_id TEXT PRIMARY KEY, study_id TEXT NOT NULL, task_json TEXT NOT NULL, parked_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS parked_tasks_study ON parked_tasks (study_id);
CREATE TABLE IF NOT EXISTS task_outcomes (
    task_id TEXT PRIMARY KEY, study_id TEXT NOT NULL, status TEXT NOT NULL, result_json TEXT NOT NULL,
    created_at TEXT NOT NULL, posted_at TEXT)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TaskStore:
    """Parked tasks and final outcomes of one node, in its ``node.db``."""

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)

    # -- parked tasks -------------------------------------------------------------------------------

    def park(self, task: Task) -> None:
        """Keep *task* until its study is decided (parking it again replaces the stored copy)."""
        with self.db.transaction() as con:
            con.execute(
                "INSERT INTO parked_tasks (task_id, study_id, task_json, parked_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (task_id) DO UPDATE SET task_json = excluded.task_json",
                (task.id, task.study_id, task.model_dump_json(), _now()),
            )

    def parked(self) -> list[Task]:
        """Every parked task, oldest first."""
        rows = self.db.con.execute("SELECT task_json FROM parked_tasks ORDER BY parked_at, task_id")
        return [Task.model_validate_json(r[0]) for r in rows.fetchall()]

    def unpark(self, task_id: str) -> None:
        with self.db.transaction() as con:
            con.execute("DELETE FROM parked_tasks WHERE task_id = ?", (task_id,))

    # -- outcomes (the outbox) ----------------------------------------------------------------------

    def record(self, study_id: str, result: TaskResult) -> None:
        """Store a final result (never ``awaiting_approval``) and unpark its task, in one transaction."""
        if result.status is ResultStatus.AWAITING_APPROVAL:
            raise ValueError("awaiting_approval is interim; it is not an outcome")
        with self.db.transaction() as con:
            con.execute(
                "INSERT OR IGNORE INTO task_outcomes (task_id, study_id, status, result_json, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (result.task_id, study_id, result.status.value, result.model_dump_json(), _now()),
            )
            con.execute("DELETE FROM parked_tasks WHERE task_id = ?", (result.task_id,))

    def outcome(self, task_id: str) -> TaskResult | None:
        """The stored final result of *task_id*, if the node has answered it."""
        row = self.db.con.execute(
            "SELECT result_json FROM task_outcomes WHERE task_id = ?", (task_id,)
        ).fetchone()
        return TaskResult.model_validate_json(row[0]) if row else None

    def unposted(self) -> list[tuple[str, TaskResult]]:
        """``(study id, result)`` of final results the hub has not acknowledged, oldest first."""
        rows = self.db.con.execute(
            "SELECT study_id, result_json FROM task_outcomes WHERE posted_at IS NULL "
            "ORDER BY created_at, task_id"
        ).fetchall()
        return [(r[0], TaskResult.model_validate_json(r[1])) for r in rows]

    def mark_posted(self, task_id: str) -> None:
        with self.db.transaction() as con:
            con.execute(
                "UPDATE task_outcomes SET posted_at = ? WHERE task_id = ? AND posted_at IS NULL",
                (_now(), task_id),
            )


__all__ = ["TaskStore"]
