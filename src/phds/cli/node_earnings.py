"""``phds node earnings [--period YYYY-MM]`` and ``phds node earnings verify``: the hospital's monthly
statement from the hub, and its check against the node's own audit log (:mod:`phds.node.earnings`).

The statement lists each invoice line the hospital has a share of: its study, the receipts behind it
and the hospital's amount; ``total`` is the month's share of every issued invoice and ``payable`` the
part from invoices already paid (payouts come only from paid invoices). ``verify`` finds each of the
hospital's receipts in ``node.db`` and exits 1 listing what it cannot account for.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from phds.cli.node_participation import connect
from phds.node.earnings import check_against_audit, statement_period
from phds.node.local import open_local

app = typer.Typer(help="The hospital's monthly earnings statement, and its check against the audit log.")
CONFIG = typer.Option(
    Path("node.toml"), "--config", "-c", envvar="PHDS_NODE_CONFIG", help="The node's node.toml."
)
PERIOD = typer.Option(None, "--period", help="The month, YYYY-MM (default: last month).")
console = Console()


@app.callback(invoke_without_command=True)
def earnings(
    ctx: typer.Context,
    period: str | None = PERIOD,
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print the statement as JSON."),
) -> None:
    """The hospital's statement of a month: studies, lines, receipts, amounts; total and payable."""
    if ctx.invoked_subcommand is not None:
        return
    month = statement_period(period)
    with connect(config) as (cfg, client):
        statement = client.statement(cfg.node.name, month)
    if as_json:
        typer.echo(json.dumps(statement.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    if not statement.lines:
        typer.echo(f"{statement.hospital}: nothing invoiced for {month}")
        return
    table = Table(title=f"{statement.hospital}: earnings of {month}")
    table.add_column("invoice", no_wrap=True)
    for name in ("state", "line", "study", "description"):
        table.add_column(name, overflow="fold")
    table.add_column(f"receipts ({statement.hospital}'s)", overflow="fold")
    table.add_column(f"amount {statement.currency}", justify="right", no_wrap=True)
    for line in statement.lines:
        table.add_row(
            line.invoice, line.invoice_state, line.line_id, line.study_id or "", line.description,
            f"{len(line.receipt_ids)} ({len(line.hospital_receipt_ids)})", str(line.amount),
        )  # fmt: skip
    console.print(table)
    typer.echo(
        f"total {statement.total} {statement.currency}; payable {statement.payable} {statement.currency} "
        "(from paid invoices only)"
    )
    typer.echo(f"phds node earnings verify --period {month} checks it against this node's audit log")


@app.command("verify")
def verify(
    period: str | None = PERIOD,
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print the check as JSON."),
) -> None:
    """Reproduce the statement from the node's own receipts; exit 1 listing what does not match."""
    month = statement_period(period)
    with connect(config) as (cfg, client):
        statement = client.statement(cfg.node.name, month)
    with open_local(cfg) as node:
        check = check_against_audit(statement, node.audit, cfg.node.name)
    if as_json:
        typer.echo(json.dumps(check.as_json(), ensure_ascii=False, indent=2))
    else:
        typer.echo(check.summary())
        for problem in check.problems:
            typer.echo(f"- {problem}")
    if not check.ok:
        raise typer.Exit(code=1)


__all__ = ["app"]
