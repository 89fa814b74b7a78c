"""Local approvals: studies waiting for a data steward, and the steward's decisions.

Approvals are made here, at the node, and only reported to the hub (DESIGN.md invariant 4): the agent
files a study with :meth:`ApprovalStore.add_pending` when the policy says ``manual``, a steward decides
with ``phds node approve|reject``, and the agent later sends :meth:`ApprovalStore.unreported` decisions
to the hub and calls :meth:`ApprovalStore.mark_reported`. Each decision and its audit entry commit in one
transaction of ``node.db``. A study is decided once; changing one's mind is a new study for now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from phds.errors import Conflict, InputError, NotFound
from phds.node.audit import AuditLog

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_requests (
    study_id TEXT PRIMARY KEY, title TEXT NOT NULL, requester_org TEXT NOT NULL,
    requester_category TEXT NOT NULL, analysis TEXT NOT NULL, params_summary TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')));
CREATE TABLE IF NOT EXISTS approval_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id TEXT NOT NULL UNIQUE REFERENCES approval_requests (study_id),
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')), reason TEXT NOT NULL,
    steward TEXT NOT NULL, decided_at TEXT NOT NULL, reported_at TEXT)
"""


@dataclass(frozen=True)
class PendingApproval:
    """A study waiting for (or past) a steward's decision."""

    study_id: str
    title: str
    requester_org: str
    requester_category: str
    analysis: str
    params_summary: str
    received_at: str
    status: str = "pending"


@dataclass(frozen=True)
class ApprovalDecision:
    """A steward's decision on a study; ``reported_at`` is set once the hub has been told."""

    id: int
    study_id: str
    decision: Literal["approved", "rejected"]
    reason: str
    steward: str
    decided_at: str
    reported_at: str | None

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "study_id": self.study_id,
            "decision": self.decision,
            "reason": self.reason,
            "steward": self.steward,
            "decided_at": self.decided_at,
            "reported_at": self.reported_at,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ApprovalStore:
    """Pending approvals and decisions in ``node.db``, audited through *audit*."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self.db = audit.db
        self.db.ensure_schema(_SCHEMA)

    def add_pending(
        self,
        study_id: str,
        *,
        title: str,
        requester_org: str,
        requester_category: str,
        analysis: str,
        params_summary: str = "",
    ) -> PendingApproval:
        """File a study for a steward; filing the same study again returns it unchanged."""
        if not study_id:
            raise InputError("a study id is required", field="study_id")
        with self.db.transaction() as con:
            con.execute(
                "INSERT OR IGNORE INTO approval_requests (study_id, title, requester_org, "
                "requester_category, analysis, params_summary, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (study_id, title, requester_org, requester_category, analysis, params_summary, _now()),
            )
        return self.get(study_id)

    def get(self, study_id: str) -> PendingApproval:
        row = self.db.con.execute(
            "SELECT study_id, title, requester_org, requester_category, analysis, params_summary, "
            "received_at, status FROM approval_requests WHERE study_id = ?",
            (study_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no study {study_id!r} is waiting for approval at this node")
        return PendingApproval(*row)

    def pending(self) -> list[PendingApproval]:
        """Studies still waiting, oldest first."""
        rows = self.db.con.execute(
            "SELECT study_id, title, requester_org, requester_category, analysis, params_summary, "
            "received_at, status FROM approval_requests WHERE status = 'pending' "
            "ORDER BY received_at, study_id"
        ).fetchall()
        return [PendingApproval(*r) for r in rows]

    def approve(self, study_id: str, *, steward: str, reason: str = "") -> ApprovalDecision:
        """Approve a pending study and audit it (``approval``), in one transaction."""
        return self._decide(study_id, "approved", reason, steward)

    def reject(self, study_id: str, *, reason: str, steward: str) -> ApprovalDecision:
        """Reject a pending study with a reason and audit it (``rejection``), in one transaction."""
        if not reason.strip():
            raise InputError("a rejection needs a reason the requester can read", field="reason")
        return self._decide(study_id, "rejected", reason, steward)

    def _decide(
        self, study_id: str, decision: Literal["approved", "rejected"], reason: str, steward: str
    ) -> ApprovalDecision:
        if not steward.strip():
            raise InputError("the steward's name is required", field="steward")
        with self.db.transaction() as con:
            request = self.get(study_id)
            if request.status != "pending":
                raise Conflict(f"study {study_id!r} was already {request.status}")
            now = _now()
            cur = con.execute(
                "INSERT INTO approval_decisions (study_id, decision, reason, steward, decided_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (study_id, decision, reason, steward, now),
            )
            con.execute("UPDATE approval_requests SET status = ? WHERE study_id = ?", (decision, study_id))
            decision_id = int(cur.lastrowid or 0)
            self.audit.append(
                "approval" if decision == "approved" else "rejection",
                study_id=study_id,
                payload={
                    "decision_id": decision_id,
                    "decision": decision,
                    "reason": reason,
                    "steward": steward,
                    "analysis": request.analysis,
                    "requester_org": request.requester_org,
                    "requester_category": request.requester_category,
                },
            )
        log.info("study %s %s by %s", study_id, decision, steward)
        result = self.decision_for(study_id)
        assert result is not None
        return result

    def decision_for(self, study_id: str) -> ApprovalDecision | None:
        """The steward's decision on *study_id*, or None while it is pending or unknown."""
        row = self.db.con.execute(
            "SELECT id, study_id, decision, reason, steward, decided_at, reported_at "
            "FROM approval_decisions WHERE study_id = ?",
            (study_id,),
        ).fetchone()
        return ApprovalDecision(*row) if row else None

    def decisions(self) -> list[ApprovalDecision]:
        rows = self.db.con.execute(
            "SELECT id, study_id, decision, reason, steward, decided_at, reported_at "
            "FROM approval_decisions ORDER BY id"
        ).fetchall()
        return [ApprovalDecision(*r) for r in rows]

    def unreported(self) -> list[ApprovalDecision]:
        """Decisions the hub has not yet been told about, oldest first."""
        return [d for d in self.decisions() if d.reported_at is None]

    def mark_reported(self, decision_id: int) -> None:
        """Record that the hub acknowledged decision *decision_id*."""
        with self.db.transaction() as con:
            cur = con.execute(
                "UPDATE approval_decisions SET reported_at = ? WHERE id = ? AND reported_at IS NULL",
                (_now(), decision_id),
            )
            if (
                cur.rowcount == 0
                and not con.execute(
                    "SELECT 1 FROM approval_decisions WHERE id = ?", (decision_id,)
                ).fetchone()
            ):
                raise NotFound(f"no approval decision {decision_id}")


__all__ = ["ApprovalDecision", "ApprovalStore", "PendingApproval"]
