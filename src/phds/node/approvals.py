"""Local approvals: studies waiting for a data steward, and the steward's decisions.

Approvals are made here, at the node, and only reported to the hub (DESIGN.md invariant 4): the agent
files a study with :meth:`ApprovalStore.add_pending` when the policy says ``manual``, a steward decides
with ``phds node approve|reject``, and the agent later sends :meth:`ApprovalStore.unreported` decisions
to the hub and calls :meth:`ApprovalStore.mark_reported`. Each decision and its audit entry commit in one
transaction of ``node.db``.

A request, and the decision on it, is bound to a *binding*: the canonical hash of the analysis, its
version and parameters, the requester and its category, the service type and the target hospitals
(:func:`phds.node.binding.task_binding`). A task of the same study with any other binding (a hub that
swaps a benign approved analysis for another) resets the request to pending: the steward is asked again,
and sees the full parameters, purpose and hospitals (``phds node approvals show``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from phds.errors import Conflict, InputError, NotFound
from phds.node.audit import AuditLog
from phds.protocol.canonical import canonical_json

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_requests (
    study_id TEXT PRIMARY KEY, title TEXT NOT NULL, requester_org TEXT NOT NULL,
    requester_category TEXT NOT NULL, analysis TEXT NOT NULL, params_summary TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    binding TEXT NOT NULL DEFAULT '', params TEXT NOT NULL DEFAULT '{}', purpose TEXT NOT NULL DEFAULT '',
    hospitals TEXT NOT NULL DEFAULT '[]', service_type TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS approval_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id TEXT NOT NULL REFERENCES approval_requests (study_id),
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')), reason TEXT NOT NULL,
    steward TEXT NOT NULL, decided_at TEXT NOT NULL, reported_at TEXT, binding TEXT NOT NULL DEFAULT '',
    UNIQUE (study_id, binding))
"""
_ADDED_COLUMNS = {  # columns a node.db from before approval bindings lacks
    "approval_requests": ("binding", "params", "purpose", "hospitals", "service_type"),
    "approval_decisions": ("binding",),
}
_DEFAULTS = {"params": "'{}'", "hospitals": "'[]'"}


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
    binding: str = ""
    params: str = "{}"
    purpose: str = ""
    hospitals: str = "[]"
    service_type: str = ""

    def to_json(self) -> dict[str, Any]:
        """Everything the steward decides on, with the parameters and hospitals as JSON values."""
        out: dict[str, Any] = dict(self.__dict__)
        out["params"] = json.loads(self.params)
        out["hospitals"] = json.loads(self.hospitals)
        return out


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
    binding: str = ""

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
            "binding": self.binding,
        }


_REQUEST_COLUMNS = (
    "study_id, title, requester_org, requester_category, analysis, params_summary, received_at, status, "
    "binding, params, purpose, hospitals, service_type"
)
_DECISION_COLUMNS = (
    "d.id, d.study_id, d.decision, d.reason, d.steward, d.decided_at, d.reported_at, d.binding"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ApprovalStore:
    """Pending approvals and decisions in ``node.db``, audited through *audit*."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self.db = audit.db
        self.db.ensure_schema(_SCHEMA)
        with self.db.transaction() as con:
            for table, columns in _ADDED_COLUMNS.items():
                have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column not in have:
                        default = _DEFAULTS.get(column, "''")
                        con.execute(
                            f"ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT {default}"
                        )

    def add_pending(
        self,
        study_id: str,
        *,
        title: str,
        requester_org: str,
        requester_category: str,
        analysis: str,
        params_summary: str = "",
        binding: str = "",
        params: dict[str, Any] | None = None,
        purpose: str = "",
        hospitals: list[str] | None = None,
        service_type: str = "",
    ) -> PendingApproval:
        """File a study for a steward. Filing it again with the same binding returns it unchanged; with
        another binding the request is reset to pending (and audited), so the steward decides again."""
        if not study_id:
            raise InputError("a study id is required", field="study_id")
        values = (
            title, requester_org, requester_category, analysis, params_summary, _now(), binding,
            canonical_json(params or {}), purpose, json.dumps(hospitals or []), service_type,
        )  # fmt: skip
        with self.db.transaction() as con:
            row = con.execute(
                "SELECT binding FROM approval_requests WHERE study_id = ?", (study_id,)
            ).fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO approval_requests (title, requester_org, requester_category, analysis, "
                    "params_summary, received_at, binding, params, purpose, hospitals, service_type, "
                    "study_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, study_id),
                )
            elif row[0] != binding:
                con.execute(
                    "UPDATE approval_requests SET title = ?, requester_org = ?, requester_category = ?, "
                    "analysis = ?, params_summary = ?, received_at = ?, binding = ?, params = ?, "
                    "purpose = ?, hospitals = ?, service_type = ?, status = 'pending' WHERE study_id = ?",
                    (*values, study_id),
                )
                self.audit.append(
                    "approval_reset",
                    study_id=study_id,
                    payload={"previous_binding": row[0], "binding": binding, "analysis": analysis,
                             "params": params or {}},
                )  # fmt: skip
                log.warning("study %s changed what it asks; the steward must decide again", study_id)
        return self.get(study_id)

    def withdraw(self, study_id: str) -> bool:
        """Take a still-pending request off the steward's queue (its study was cancelled); whether one was.
        Decided requests stay: the decision is the steward's record."""
        with self.db.transaction() as con:
            gone = con.execute(
                "DELETE FROM approval_requests WHERE study_id = ? AND status = 'pending'", (study_id,)
            ).rowcount
        return bool(gone)

    def get(self, study_id: str) -> PendingApproval:
        row = self.db.con.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE study_id = ?", (study_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no study {study_id!r} is waiting for approval at this node")
        return PendingApproval(*row)

    def pending(self) -> list[PendingApproval]:
        """Studies still waiting, oldest first."""
        rows = self.db.con.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE status = 'pending' "
            "ORDER BY received_at, study_id"
        ).fetchall()
        return [PendingApproval(*r) for r in rows]

    def approve(
        self, study_id: str, *, steward: str, reason: str = "", binding: str | None = None
    ) -> ApprovalDecision:
        """Approve a pending study and audit it (``approval``), in one transaction.

        With *binding* (the hash the steward was shown), refuse when the study now asks something else."""
        return self._decide(study_id, "approved", reason, steward, binding)

    def reject(
        self, study_id: str, *, reason: str, steward: str, binding: str | None = None
    ) -> ApprovalDecision:
        """Reject a pending study with a reason and audit it (``rejection``), in one transaction."""
        if not reason.strip():
            raise InputError("a rejection needs a reason the requester can read", field="reason")
        return self._decide(study_id, "rejected", reason, steward, binding)

    def _decide(
        self,
        study_id: str,
        decision: Literal["approved", "rejected"],
        reason: str,
        steward: str,
        binding: str | None,
    ) -> ApprovalDecision:
        if not steward.strip():
            raise InputError("the steward's name is required", field="steward")
        with self.db.transaction() as con:
            request = self.get(study_id)
            if request.status != "pending":
                raise Conflict(f"study {study_id!r} was already {request.status}")
            if binding is not None and binding != request.binding:
                raise Conflict(
                    f"study {study_id!r} changed what it asks since it was shown (binding "
                    f"{request.binding[:16]}, not {binding[:16]}); review it again before deciding"
                )
            now = _now()
            cur = con.execute(
                "INSERT INTO approval_decisions (study_id, decision, reason, steward, decided_at, binding) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (study_id, decision, reason, steward, now, request.binding),
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
                    "binding": request.binding,
                    "params": json.loads(request.params),
                    "hospitals": json.loads(request.hospitals),
                },
            )
        log.info("study %s %s by %s", study_id, decision, steward)
        result = self.decision_for(study_id)
        assert result is not None
        return result

    def decision_for(self, study_id: str) -> ApprovalDecision | None:
        """The steward's decision on *study_id* as it now asks (its current binding), or None while it is
        pending or unknown."""
        row = self.db.con.execute(
            f"SELECT {_DECISION_COLUMNS} FROM approval_decisions d JOIN approval_requests r "
            "ON r.study_id = d.study_id AND r.binding = d.binding "
            "WHERE d.study_id = ? AND r.status != 'pending'",
            (study_id,),
        ).fetchone()
        return ApprovalDecision(*row) if row else None

    def decisions(self) -> list[ApprovalDecision]:
        rows = self.db.con.execute(
            f"SELECT {_DECISION_COLUMNS} FROM approval_decisions d ORDER BY d.id"
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
