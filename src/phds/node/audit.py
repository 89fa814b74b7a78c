"""The node's state database and its append-only, hash-chained audit log.

All local state of a node lives in one SQLite file, ``<state_dir>/node.db``, so that an approval and its
audit entry, or a released value, its cohort fingerprint and its audit entry, commit together or not at
all (:meth:`NodeDatabase.transaction`).

Each audit entry stores ``hash = SHA-256(canonical JSON of seq, ts, kind, study_id, task_id, payload,
prev_hash)`` and the previous entry's hash, so editing, deleting, inserting or reordering entries breaks
the chain. Cutting entries off the end does not, so the newest ``(seq, hash)`` is also written to a
second file, ``audit.head``, inside the same write lock, just before the commit. A crash between the
two leaves the head one entry ahead, which :meth:`AuditLog.verify` reports as a truncation: it fails
safe, and the node's own log shows the crash. Limitation: someone who can write both files can
rewrite the whole history consistently; only an anchor outside the node (the hub keeping reported head
hashes, or a signature with a key held elsewhere) detects that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from phds.errors import InputError, StoreError
from phds.private_files import ensure_private, open_private_for_writing
from phds.protocol.canonical import canonical_json

log = logging.getLogger(__name__)


class AuditKind(StrEnum):
    """Every kind of audit entry; the one list of them."""

    TASK_RECEIVED = "task_received"  # a task arrived: full parameters and the claimed requester
    DECISION = "decision"  # the policy's (or the signature check's) decision
    APPROVAL = "approval"  # a steward approved a study as bound
    REJECTION = "rejection"  # a steward rejected a study
    APPROVAL_RESET = "approval_reset"  # a study changed what it asks: the steward must decide again
    QUERY_RUN = "query_run"  # a vetted analysis ran on a source
    VALUE_RELEASED = "value_released"  # exactly what left the node
    ERROR = "error"  # a refusal or failure, with its reason
    DP_BUDGET = "dp_budget"  # a steward set or reset a differential-privacy budget
    SECAGG = "secagg"  # a secure-aggregation stage: what was masked, which shares revealed, the sum
    USAGE_RECEIPT = "usage_receipt"  # a task's chargeable event, as the signed receipt sent to the hub
    PARTICIPATION = "participation"  # a steward's signed decision on a data-access application


AUDIT_KINDS: tuple[str, ...] = tuple(k.value for k in AuditKind)
GENESIS_HASH = "0" * 64


class NodeDatabase:
    """The node's SQLite state file; :meth:`transaction` is the only way to write to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            ensure_private(self.path, "node state database")
            self.con = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the node state database {self.path}: {exc}") from None
        self._depth = 0
        self._hooks: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}

    def ensure_schema(self, ddl: str) -> None:
        """Create tables and indexes (``CREATE … IF NOT EXISTS``) in one transaction."""
        with self.transaction() as con:
            for statement in ddl.split(";"):
                if statement.strip():
                    con.execute(statement)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Write lock (``BEGIN IMMEDIATE``) to commit; a nested call joins the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN IMMEDIATE")
        self._depth = 1
        done: list[Callable[[], None]] = []
        try:
            yield self.con
            for before, undo in list(self._hooks.values()):
                before()
                done.append(undo)
            self.con.execute("COMMIT")
        except BaseException:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
            for undo in reversed(done):
                undo()
            raise
        finally:
            self._depth = 0
            self._hooks.clear()

    def before_commit(self, key: str, write: Callable[[], None], undo: Callable[[], None]) -> None:
        """Run *write* just before the current transaction commits (the last one per *key* wins)."""
        if not self._depth:
            raise RuntimeError("before_commit outside a transaction")
        self._hooks[key] = (write, undo)

    def close(self) -> None:
        self.con.close()


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    seq: int
    ts: str
    kind: str
    study_id: str
    task_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "study_id": self.study_id,
            "task_id": self.task_id,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(
    seq: int, ts: str, kind: str, study_id: str, task_id: str, payload: Any, prev_hash: str
) -> str:
    """SHA-256 over the canonical JSON of the entry's fields and the previous hash."""
    body = {
        "seq": seq,
        "ts": ts,
        "kind": kind,
        "study_id": study_id,
        "task_id": task_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass
class VerifyReport:
    """The result of :meth:`AuditLog.verify`: ``ok``, or the first broken seq and what is wrong."""

    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, as ``phds node audit verify`` prints it: ``ok: …`` or ``BROKEN at seq …``."""
        if self.ok:
            return f"ok: {self.entries} entries, head {self.head_hash[:16]}"
        return f"BROKEN at seq {self.first_broken_seq}: {self.problem}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, study_id TEXT NOT NULL,
    task_id TEXT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_log_study ON audit_log (study_id)
"""


class AuditLog:
    """Append-only hash chain in ``node.db`` with its head in ``audit.head`` beside it."""

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        self.head_path = db.path.parent / "audit.head"
        db.ensure_schema(_SCHEMA)

    def append(
        self,
        kind: AuditKind | str,
        *,
        study_id: str = "",
        task_id: str = "",
        payload: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry; inside an open transaction it commits (or rolls back) with it."""
        if kind not in AUDIT_KINDS:
            raise InputError(f"unknown audit kind {kind!r}", field="kind")
        kind = str(AuditKind(kind))
        body = payload or {}
        try:
            text = canonical_json(body)
        except (TypeError, ValueError) as exc:
            raise InputError(f"audit payload is not plain JSON: {exc}", field="payload") from None
        with self.db.transaction() as con:
            last = con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            ts = datetime.now(UTC).isoformat(timespec="microseconds")
            h = entry_hash(seq, ts, kind, study_id, task_id, json.loads(text), prev)
            con.execute(
                "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, ts, kind, study_id, task_id, text, prev, h),
            )
            old_head = self._read_head_text()
            self.db.before_commit(
                "audit.head",
                lambda: self._write_head_text(canonical_json({"seq": seq, "hash": h})),
                lambda: self._write_head_text(old_head),
            )
        log.debug("audit %s #%d %s study=%s", kind, seq, h[:12], study_id)
        return AuditEntry(seq, ts, kind, study_id, task_id, json.loads(text), prev, h)

    def head(self) -> tuple[int, str] | None:
        """The newest entry's ``(seq, hash)``, or None for an empty log."""
        row = self.db.con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def entries(self, study_id: str | None = None) -> list[AuditEntry]:
        """All entries in order, or those of one study."""
        sql = "SELECT seq, ts, kind, study_id, task_id, payload, prev_hash, hash FROM audit_log"
        rows = (
            self.db.con.execute(sql + " WHERE study_id = ? ORDER BY seq", (study_id,))
            if study_id is not None
            else self.db.con.execute(sql + " ORDER BY seq")
        ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]

    def newest(self, *, kind: str | None = None, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        """A page of entries, newest first, optionally of one *kind*."""
        sql = "SELECT seq, ts, kind, study_id, task_id, payload, prev_hash, hash FROM audit_log"
        where, args = (" WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self.db.con.execute(
            sql + where + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, max(0, limit), max(0, offset))
        ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]

    def count(self, *, kind: str | None = None) -> int:
        """How many entries there are (of one *kind*)."""
        if kind:
            row = self.db.con.execute("SELECT count(*) FROM audit_log WHERE kind = ?", (kind,)).fetchone()
        else:
            row = self.db.con.execute("SELECT count(*) FROM audit_log").fetchone()
        return int(row[0])

    def verify(self) -> VerifyReport:
        """Walk the chain and compare its end with ``audit.head``; report the first break."""
        rows = self.db.con.execute(
            "SELECT seq, ts, kind, study_id, task_id, payload, prev_hash, hash FROM audit_log ORDER BY seq"
        ).fetchall()
        prev, expected = GENESIS_HASH, 1
        for seq, ts, kind, study_id, task_id, payload, prev_hash, h in rows:
            if seq != expected:
                return self._broken(rows, expected, f"entry {expected} is missing (next is {seq})")
            if prev_hash != prev:
                return self._broken(
                    rows, seq, "does not follow the previous entry (deleted, inserted or moved)"
                )
            try:
                body = json.loads(payload)
            except ValueError:
                return self._broken(rows, seq, "payload is not JSON (edited)")
            if entry_hash(seq, ts, kind, study_id, task_id, body, prev) != h:
                return self._broken(rows, seq, "content does not match its hash (edited)")
            prev, expected = h, expected + 1
        n = len(rows)
        report = VerifyReport(ok=True, entries=n, head_hash=prev)
        head_text = self._read_head_text()
        if head_text is None:
            if n:
                return self._broken(rows, n, "audit.head is missing; the end of the log cannot be checked")
            return report
        try:
            head = json.loads(head_text)
            head_seq, head_hash = int(head["seq"]), str(head["hash"])
        except (ValueError, KeyError, TypeError):
            return self._broken(rows, n, "audit.head is unreadable")
        if head_seq > n:
            return self._broken(
                rows, n + 1, f"log truncated: audit.head records {head_seq} entries, found {n}"
            )
        if head_seq >= 1 and rows[head_seq - 1][7] != head_hash:
            return self._broken(rows, head_seq, "does not match the hash recorded in audit.head")
        if head_seq < n:
            return self._broken(rows, head_seq + 1, "not covered by audit.head (appended outside the node?)")
        return report

    def _broken(self, rows: list[Any], seq: int, problem: str) -> VerifyReport:
        log.warning("audit log broken at seq %d: %s", seq, problem)
        return VerifyReport(False, len(rows), "", seq, problem)

    def _read_head_text(self) -> str | None:
        try:
            return self.head_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _write_head_text(self, text: str | None) -> None:
        if text is None:
            self.head_path.unlink(missing_ok=True)
            return
        tmp = self.head_path.with_suffix(".head.tmp")
        try:
            with os.fdopen(open_private_for_writing(tmp), "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.head_path)
        except OSError as exc:
            raise StoreError(f"cannot write the audit head {self.head_path}: {exc}") from None


__all__ = [
    "AUDIT_KINDS",
    "GENESIS_HASH",
    "AuditEntry",
    "AuditKind",
    "AuditLog",
    "NodeDatabase",
    "VerifyReport",
    "entry_hash",
]
