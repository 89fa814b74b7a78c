"""The node's own memory of studies and requesters, in ``node.db``: nothing here is taken from the hub.

* :class:`MemoryStore` keeps key → JSON values per scope (``study:<id>`` for what this node accepted
  in earlier rounds, e.g. quantile thresholds; ``requester:<org>`` for what it fixed for a requester,
  e.g. a time grid). An analysis writes through a :class:`StagedMemory`, whose writes are flushed in
  the gate's transaction, so they commit with the release or not at all.
* :class:`StudyRounds` is each study's protocol record: the binding of its analysis, version and
  parameters (the hash the steward approved), the rounds answered and their round-state hashes. A node
  answers round r only after round r − 1, never the same round twice under another task, at most the
  analysis's :meth:`~phds.analyses.base.Analysis.max_rounds`, and only for the parameters it bound at the
  study's first round: the round number, cap and parameters come from here, not from the hub.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from phds.errors import DisclosureRefused
from phds.node.audit import NodeDatabase
from phds.protocol.canonical import canonical_json

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_memory (
    scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS study_rounds (
    study_id TEXT PRIMARY KEY, binding TEXT NOT NULL, last_round INTEGER NOT NULL,
    last_task TEXT NOT NULL, state_hashes TEXT NOT NULL, updated_at TEXT NOT NULL)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StagedMemory:
    """One scope's memory for one task: reads see earlier commits and this task's writes."""

    def __init__(self, store: MemoryStore, scope: str) -> None:
        self.store, self.scope = store, scope
        self.staged: dict[str, Any] = {}

    def recall(self, key: str, default: Any = None) -> Any:
        if key in self.staged:
            return json.loads(canonical_json(self.staged[key]))
        return self.store.get(self.scope, key, default)

    def remember(self, key: str, value: Any) -> None:
        self.staged[key] = json.loads(canonical_json(value))

    def flush(self) -> None:
        """Write the staged values (inside the caller's transaction)."""
        for key, value in self.staged.items():
            self.store.put(self.scope, key, value)
        self.staged.clear()


class MemoryStore:
    """Key → JSON values per scope."""

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)

    def get(self, scope: str, key: str, default: Any = None) -> Any:
        row = self.db.con.execute(
            "SELECT value FROM node_memory WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, scope: str, key: str, value: Any) -> None:
        with self.db.transaction() as con:
            con.execute(
                "INSERT INTO node_memory VALUES (?, ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                (scope, key, canonical_json(value), _now()),
            )

    def staged(self, scope: str) -> StagedMemory:
        return StagedMemory(self, scope)


class StudyRounds:
    """Each study's protocol record (module docstring)."""

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)

    def last_round(self, study_id: str) -> int:
        row = self.db.con.execute("SELECT last_round FROM study_rounds WHERE study_id = ?", (study_id,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def check(self, study_id: str, task_id: str, round_no: int, binding: str, max_rounds: int) -> None:
        """Refuse a round out of order, a round answered before under another task, a round past the
        cap, or parameters other than those the study was bound to."""
        row = self.db.con.execute(
            "SELECT binding, last_round, last_task FROM study_rounds WHERE study_id = ?", (study_id,)
        ).fetchone()
        bound, last, last_task = (row[0], int(row[1]), row[2]) if row else (binding, 0, "")
        if bound != binding:
            raise DisclosureRefused(
                "the task's analysis or parameters differ from those this study was bound to at this node"
            )
        if round_no > max_rounds:
            raise DisclosureRefused(f"this analysis may take at most {max_rounds} rounds at this node")
        if round_no <= last:
            what = "was already answered" if task_id != last_task else "is stale"
            raise DisclosureRefused(f"round {round_no} of this study {what} at this node")
        if round_no != last + 1:
            raise DisclosureRefused(
                f"round {round_no} comes after round {last + 1}, which this node has not answered"
            )

    def record(self, study_id: str, task_id: str, round_no: int, binding: str, state_hash: str) -> None:
        """Record an answered round (inside the gate's transaction)."""
        with self.db.transaction() as con:
            row = con.execute(
                "SELECT state_hashes FROM study_rounds WHERE study_id = ?", (study_id,)
            ).fetchone()
            hashes = [*json.loads(row[0]), state_hash] if row else [state_hash]
            con.execute(
                "INSERT INTO study_rounds VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (study_id) DO UPDATE SET "
                "last_round = excluded.last_round, last_task = excluded.last_task, "
                "state_hashes = excluded.state_hashes, updated_at = excluded.updated_at",
                (study_id, binding, round_no, task_id, json.dumps(hashes), _now()),
            )


class ScopedMemory:
    """One scope of a :class:`MemoryStore`, written at once (each write its own transaction)."""

    def __init__(self, store: MemoryStore, scope: str) -> None:
        self.store, self.scope = store, scope

    def recall(self, key: str, default: Any = None) -> Any:
        return self.store.get(self.scope, key, default)

    def remember(self, key: str, value: Any) -> None:
        self.store.put(self.scope, key, value)


__all__ = [
    "MemoryStore",
    "ScopedMemory",
    "StagedMemory",
    "StudyRounds",
]
