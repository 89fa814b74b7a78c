"""The node's local state as the steward's tools open it beside a running agent: ``node.db`` as one unit.

``phds node approvals|approve|reject``, ``phds node audit``, ``phds node budget`` and the steward console
(``phds node console``) all work on ``node.db`` alone while ``phds node run`` keeps running; SQLite's
write lock (``BEGIN IMMEDIATE``) orders their writes. Each opens it through :func:`open_local` so they
read and decide through the same stores (:class:`~phds.node.approvals.ApprovalStore`,
:class:`~phds.node.dp_ledger.DpLedger`), and name the steward with :func:`steward_name`.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import NodeConfig, load_node_config
from phds.node.dp_ledger import DpLedger


@dataclass
class LocalNode:
    """``node.db`` of one node, opened: its audit log, approvals and privacy-budget ledger."""

    config: NodeConfig
    db: NodeDatabase
    audit: AuditLog

    @cached_property
    def approvals(self) -> ApprovalStore:
        return ApprovalStore(self.audit)

    @cached_property
    def ledger(self) -> DpLedger:
        return DpLedger(self.db, self.config.policy.dp)


@contextlib.contextmanager
def open_local(config: Path | NodeConfig) -> Iterator[LocalNode]:
    """Open the node's state of *config* (a ``node.toml`` path or a loaded config); closed on exit."""
    cfg = config if isinstance(config, NodeConfig) else load_node_config(config)
    db = NodeDatabase(cfg.db_path)
    try:
        yield LocalNode(cfg, db, AuditLog(db))
    finally:
        db.close()


def steward_name(name: str | None) -> str:
    """Who decides: the name given, else the operating-system login name."""
    return name or getpass.getuser()


__all__ = ["LocalNode", "open_local", "steward_name"]
