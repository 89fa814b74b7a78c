"""``phds node audit verify|show`` and ``phds node approvals|approve|reject`` on a node's local state."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from phds.cli import node as node_cli
from phds.errors import Conflict, InputError, NotFound
from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import load_node_config

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Stand-in for the phds root."""

    node_cli.register(root)
    return root


@pytest.fixture
def state(node_toml: Path) -> Path:
    """A node with one audited entry and two studies waiting; returns the config path."""
    cfg = load_node_config(node_toml)
    db = NodeDatabase(cfg.db_path)
    audit = AuditLog(db)
    audit.append(
        "task_received", study_id="study-1", task_id="t1", payload={"analysis": "stats.mean_variance"}
    )
    store = ApprovalStore(audit)
    store.add_pending(
        "study-1",
        title="Asthma",
        requester_org="uni-leiden",
        requester_category="academic",
        analysis="stats.mv",
    )
    store.add_pending(
        "study-2", title="Dosing", requester_org="pharma-x", requester_category="industry", analysis="glm.fit"
    )
    db.close()
    return node_toml


def test_approvals_lists_pending(app: typer.Typer, state: Path) -> None:
    result = runner.invoke(app, ["node", "approvals", "--config", str(state), "--json"])
    assert result.exit_code == 0, result.output
    assert [p["study_id"] for p in json.loads(result.output)] == ["study-1", "study-2"]
    table = runner.invoke(app, ["node", "approvals", "--config", str(state)])
    assert "Asthma" in table.output


def test_approve_and_reject_are_audited(app: typer.Typer, state: Path) -> None:
    ok = runner.invoke(app, ["node", "approve", "study-1", "--config", str(state), "--as", "Dr Jones"])
    assert ok.exit_code == 0, ok.output
    assert "approved study-1 as Dr Jones" in ok.output
    no = runner.invoke(app, ["node", "reject", "study-2", "--reason", "not in our remit", "-c", str(state)])
    assert no.exit_code == 0, no.output
    listed = runner.invoke(app, ["node", "approvals", "--config", str(state)])
    assert "no studies are waiting" in listed.output
    shown = runner.invoke(app, ["node", "audit", "show", "--config", str(state), "--json"])
    kinds = [json.loads(line)["kind"] for line in shown.output.splitlines()]
    assert kinds == ["task_received", "approval", "rejection"]
    only = runner.invoke(
        app, ["node", "audit", "show", "--config", str(state), "--study", "study-2", "--json"]
    )
    assert [json.loads(line)["payload"]["reason"] for line in only.output.splitlines()] == [
        "not in our remit"
    ]
    table = runner.invoke(app, ["node", "audit", "show", "--config", str(state)])
    assert "rejection" in table.output


def test_errors_surface_as_phds_errors_with_exit_codes(app: typer.Typer, state: Path) -> None:
    missing = runner.invoke(app, ["node", "approve", "study-9", "--config", str(state), "--as", "x"])
    assert isinstance(missing.exception, NotFound)
    assert missing.exception.exit_code == 5
    runner.invoke(app, ["node", "approve", "study-1", "--config", str(state), "--as", "x"])
    twice = runner.invoke(app, ["node", "approve", "study-1", "--config", str(state), "--as", "x"])
    assert isinstance(twice.exception, Conflict)
    blank = runner.invoke(app, ["node", "reject", "study-2", "--reason", " ", "--config", str(state)])
    assert isinstance(blank.exception, InputError)
    no_reason = runner.invoke(app, ["node", "reject", "study-2", "--config", str(state)])
    assert no_reason.exit_code == 2  # click usage error: --reason is required


def test_config_from_environment(app: typer.Typer, state: Path) -> None:
    result = runner.invoke(app, ["node", "approvals", "--json"], env={"PHDS_NODE_CONFIG": str(state)})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 2


def test_audit_verify_ok_then_broken(app: typer.Typer, state: Path) -> None:
    ok = runner.invoke(app, ["node", "audit", "verify", "--config", str(state)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: 1 entries")
    runner.invoke(app, ["node", "approve", "study-1", "--config", str(state), "--as", "x"])
    con = sqlite3.connect(load_node_config(state).db_path)
    with con:
        con.execute('UPDATE audit_log SET payload = \'{"decision":"approved","steward":"y"}\' WHERE seq = 2')
    con.close()
    broken = runner.invoke(app, ["node", "audit", "verify", "--config", str(state)])
    assert broken.exit_code == 1
    assert "BROKEN at seq 2" in broken.output
