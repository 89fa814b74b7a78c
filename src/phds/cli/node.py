"""``phds node``: act on a hospital node's local state (audit log, approvals); no network."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import load_node_config

app = typer.Typer(
    help="A hospital node's local governance: audit log and study approvals.", no_args_is_help=True
)
audit_app = typer.Typer(help="The node's hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

CONFIG = typer.Option(
    Path("node.toml"), "--config", "-c", envvar="PHDS_NODE_CONFIG", help="The node's node.toml."
)
console = Console()


def register(root: typer.Typer) -> None:
    """Add the ``node`` group to *root*."""
    root.add_typer(app, name="node")


@contextlib.contextmanager
def _audit(config: Path) -> Iterator[AuditLog]:
    cfg = load_node_config(config)
    db = NodeDatabase(cfg.db_path)
    try:
        yield AuditLog(db)
    finally:
        db.close()


@audit_app.command("verify")
def audit_verify(config: Path = CONFIG) -> None:
    """Check the whole hash chain and its head; exit 1 at the first broken entry."""
    with _audit(config) as audit:
        report = audit.verify()
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not report.ok:
        typer.echo(f"BROKEN at seq {report.first_broken_seq}: {report.problem}")
        raise typer.Exit(code=1)
    typer.echo(f"ok: {report.entries} entries, head {report.head_hash[:16]}")


@audit_app.command("show")
def audit_show(
    config: Path = CONFIG,
    study: str | None = typer.Option(None, "--study", help="Only this study's entries."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List audit entries, oldest first."""
    with _audit(config) as audit:
        entries = audit.entries(study)
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e.to_json(), ensure_ascii=False))
        return
    table = Table("seq", "time (UTC)", "kind", "study", "task", "payload")
    for e in entries:
        text = json.dumps(e.payload, ensure_ascii=False)
        table.add_row(str(e.seq), e.ts[:19], e.kind, e.study_id, e.task_id, text[:80])
    console.print(table)


@app.command("approvals")
def approvals(
    config: Path = CONFIG, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """List studies waiting for a steward's decision."""
    with _audit(config) as audit:
        pending = ApprovalStore(audit).pending()
    if as_json:
        typer.echo(json.dumps([p.__dict__ for p in pending], ensure_ascii=False, indent=2))
        return
    if not pending:
        typer.echo("no studies are waiting for approval")
        return
    table = Table("study", "title", "requester", "category", "analysis", "parameters", "received (UTC)")
    for p in pending:
        table.add_row(
            p.study_id, p.title, p.requester_org, p.requester_category, p.analysis, p.params_summary,
            p.received_at,
        )  # fmt: skip
    console.print(table)


def _steward(name: str | None) -> str:
    return name or getpass.getuser()


@app.command("approve")
def approve(
    study_id: str = typer.Argument(..., help="The study to approve."),
    config: Path = CONFIG,
    steward: str | None = typer.Option(None, "--as", help="Steward's name (default: login name)."),
    reason: str = typer.Option("", "--reason", help="Optional note recorded with the approval."),
) -> None:
    """Approve a pending study; the decision is audited and later reported to the hub."""
    with _audit(config) as audit:
        d = ApprovalStore(audit).approve(study_id, steward=_steward(steward), reason=reason)
    typer.echo(f"approved {d.study_id} as {d.steward} at {d.decided_at}")


@app.command("reject")
def reject(
    study_id: str = typer.Argument(..., help="The study to reject."),
    reason: str = typer.Option(..., "--reason", help="Why; the requester will read it."),
    config: Path = CONFIG,
    steward: str | None = typer.Option(None, "--as", help="Steward's name (default: login name)."),
) -> None:
    """Reject a pending study with a reason; the decision is audited and later reported to the hub."""
    with _audit(config) as audit:
        d = ApprovalStore(audit).reject(study_id, reason=reason, steward=_steward(steward))
    typer.echo(f"rejected {d.study_id} as {d.steward} at {d.decided_at}: {d.reason}")
