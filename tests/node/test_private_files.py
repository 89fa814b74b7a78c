"""Databases and the audit head are created 0600 whatever the process umask (phds.private_files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from phds.hub.store import HubStore
from phds.node.audit import AuditLog, NodeDatabase


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_database_created_under_a_permissive_umask_is_still_private(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        store = HubStore.open(f"sqlite:///{tmp_path / 'hub' / 'hub.sqlite'}")
        store.close()
        db = NodeDatabase(tmp_path / "node" / "node.db")
        AuditLog(db).append("error", payload={"message": "a first entry writes the head"})
    finally:
        os.umask(old)
    files = [tmp_path / "hub" / "hub.sqlite", tmp_path / "node" / "node.db", tmp_path / "node" / "audit.head"]
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    NodeDatabase(path).con.close()
    assert _mode(path) == 0o600
