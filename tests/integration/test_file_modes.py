"""Every file that holds a secret or a node's state is readable by its owner only (0600).

Attack stopped: another local account on the hub's or the hospital's server reading the hub database
(token hashes, study specifications), a node's state database (audit log, approvals, the overlap guard's
fingerprints), its audit head, its credential or its signing key.
"""

from __future__ import annotations

import stat
from pathlib import Path

from phds.demo.network import LocalNetwork


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_databases_audit_heads_credentials_and_keys_are_owner_only(network: LocalNetwork) -> None:
    hub_db = Path(network.db_url.split(":///", 1)[1])
    private = [hub_db, network.requester_key_path]  # an attestation is a signed public statement
    for node in network.nodes.values():
        state = list(node.folder.rglob("node.db")) + list(node.folder.rglob("audit.head"))
        keys = list(node.folder.rglob("*.key")) + list(node.folder.rglob("*credential*"))
        assert state and keys, f"{node.folder} has no state database, audit head or credential"
        private += state + keys
    private += list(hub_db.parent.glob(hub_db.name + "-*"))  # SQLite's -wal and -shm
    wal = [p for p in private if p.name.endswith(("-wal", "-shm"))]
    assert wal, "the hub database runs in WAL mode, so its -wal file should exist"
    loose = {str(p): oct(_mode(p)) for p in private if _mode(p) & (stat.S_IRWXG | stat.S_IRWXO)}
    assert loose == {}
