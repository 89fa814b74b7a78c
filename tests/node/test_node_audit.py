"""The audit log's hash chain detects edits, deletions, insertions, reordering and tail truncation.

Each test tampers with node.db directly through sqlite3, as someone with file access would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from phds.errors import InputError, StoreError
from phds.node.audit import GENESIS_HASH, AuditLog, NodeDatabase, entry_hash
from phds.protocol.canonical import canonical_json


def _fill(audit: AuditLog, n: int = 5) -> None:
    for i in range(1, n + 1):
        audit.append("query_run", study_id=f"s{i % 2}", task_id=f"t{i}", payload={"i": i, "rows": [i, 2.5]})


def _tamper(audit: AuditLog, *statements: tuple[str, tuple[object, ...]]) -> None:
    con = sqlite3.connect(audit.db.path)
    with con:
        for sql, params in statements:
            con.execute(sql, params)
    con.close()


def test_entries_chain_from_genesis(audit: AuditLog) -> None:
    first = audit.append("task_received", study_id="s1", task_id="t1", payload={"analysis": "x"})
    second = audit.append("decision", study_id="s1", task_id="t1", payload={"allowed": True})
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.hash == entry_hash(1, first.ts, "task_received", "s1", "t1", {"analysis": "x"}, GENESIS_HASH)
    assert first.ts.endswith("+00:00")  # UTC
    report = audit.verify()
    assert report.ok
    assert report.entries == 2
    assert report.head_hash == second.hash
    head = json.loads(audit.head_path.read_text())
    assert head == {"seq": 2, "hash": second.hash}


def test_empty_log_verifies(audit: AuditLog) -> None:
    assert audit.verify().ok


def test_entries_by_study(audit: AuditLog) -> None:
    _fill(audit, 5)
    assert [e.seq for e in audit.entries("s1")] == [1, 3, 5]
    assert len(audit.entries()) == 5


def test_edit_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    _tamper(audit, ("UPDATE audit_log SET payload = ? WHERE seq = 3", ('{"i":3,"rows":[3,2.6]}',)))
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 3
    assert report.problem is not None
    assert "edited" in report.problem


def test_edit_of_kind_or_study_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    _tamper(audit, ("UPDATE audit_log SET study_id = 'other' WHERE seq = 2", ()))
    assert audit.verify().first_broken_seq == 2


def test_deletion_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    _tamper(audit, ("DELETE FROM audit_log WHERE seq = 2", ()))
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 2
    assert "missing" in (report.problem or "")


def test_deletion_with_renumbering_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    _tamper(
        audit,
        ("DELETE FROM audit_log WHERE seq = 2", ()),
        ("UPDATE audit_log SET seq = seq - 1 WHERE seq > 2", ()),
    )
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 2


def test_insertion_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    one = audit.entries()[0]
    ts = "2026-01-01T00:00:00.000000+00:00"
    forged = entry_hash(2, ts, "approval", "s9", "", {"steward": "mallory"}, one.hash)
    _tamper(
        audit,
        ("UPDATE audit_log SET seq = -seq WHERE seq >= 2", ()),
        ("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0", ()),
        (
            "INSERT INTO audit_log VALUES (2, ?, 'approval', 's9', '', ?, ?, ?)",
            (ts, canonical_json({"steward": "mallory"}), one.hash, forged),
        ),
    )
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 3  # the forged entry chains, the one after it does not


def test_reordering_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    con = sqlite3.connect(audit.db.path)
    rows = {r[0]: r for r in con.execute("SELECT * FROM audit_log").fetchall()}
    con.close()
    swap = (
        "UPDATE audit_log SET ts=?, kind=?, study_id=?, task_id=?, payload=?, prev_hash=?, hash=? WHERE seq=?"
    )
    _tamper(audit, (swap, (*rows[3][1:], 2)), (swap, (*rows[2][1:], 3)))
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 2


def test_tail_truncation_is_detected_through_the_head(audit: AuditLog) -> None:
    _fill(audit)
    _tamper(audit, ("DELETE FROM audit_log WHERE seq >= 4", ()))
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 4
    assert "truncated" in (report.problem or "")


def test_missing_head_is_detected(audit: AuditLog) -> None:
    _fill(audit)
    audit.head_path.unlink()
    report = audit.verify()
    assert not report.ok
    assert "audit.head is missing" in (report.problem or "")


def test_entry_appended_outside_the_node_is_detected(audit: AuditLog) -> None:
    _fill(audit, 2)
    last = audit.entries()[-1]
    ts = "2026-01-01T00:00:00.000000+00:00"
    h = entry_hash(3, ts, "approval", "s9", "", {}, last.hash)
    _tamper(
        audit, ("INSERT INTO audit_log VALUES (3, ?, 'approval', 's9', '', '{}', ?, ?)", (ts, last.hash, h))
    )
    report = audit.verify()
    assert not report.ok
    assert report.first_broken_seq == 3


def test_a_failed_head_write_rolls_the_entry_back(audit: AuditLog) -> None:
    _fill(audit, 2)
    blocker = audit.head_path.with_suffix(".head.tmp")
    blocker.mkdir()  # the head cannot be written now
    with pytest.raises(StoreError, match="cannot write the audit head"):
        audit.append("error", payload={"x": 1})
    blocker.rmdir()
    assert len(audit.entries()) == 2
    assert audit.verify().ok
    assert audit.append("error").seq == 3


def test_transaction_rollback_removes_entries_and_keeps_the_head(audit: AuditLog) -> None:
    _fill(audit, 2)
    head = audit.head_path.read_text()

    def fail_after_append() -> None:
        with audit.db.transaction():
            audit.append("error", payload={"x": 1})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_after_append()
    assert len(audit.entries()) == 2
    assert audit.head_path.read_text() == head
    assert audit.verify().ok


def test_payload_must_be_plain_json(audit: AuditLog) -> None:
    with pytest.raises(InputError, match="payload"):
        audit.append("error", payload={"x": float("nan")})
    with pytest.raises(InputError, match="kind"):
        audit.append("nonsense", payload={})  # type: ignore[arg-type]


def test_state_files_are_private(db: NodeDatabase, tmp_path: Path) -> None:
    assert (db.path.stat().st_mode & 0o777) == 0o600
    assert (db.path.parent.stat().st_mode & 0o777) == 0o700


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "s" / "node.db"
    db = NodeDatabase(path)
    AuditLog(db).append("task_received", study_id="a")
    db.close()
    db = NodeDatabase(path)
    log = AuditLog(db)
    assert log.append("decision", study_id="a").seq == 2
    assert log.verify().ok
    db.close()
