"""``phds node participation list|show|accept|decline``: the steward decides whether the hospital takes
part in a data-access application, and declares its own costs per study, passed through at cost.

``list`` and ``show`` fetch the applications naming this hospital from the hub. ``accept`` and
``decline`` build a :class:`~phds.protocol.billing.ParticipationStatement`, sign it with the node key,
audit it (a ``participation`` entry holding the signed statement) and only then post it to the hub,
which verifies the signature against the key it pinned at enrolment. A statement the hub did not take
stays audited: the node's log shows what its steward signed; deciding again signs a newer statement.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from phds.billing.money import parse_amount
from phds.errors import InputError, PhdsError
from phds.node.audit import AuditEntry, AuditKind, AuditLog, NodeDatabase
from phds.node.config import NodeConfig, load_node_config
from phds.node.hub_client import HubClient, connect_hub
from phds.protocol.billing import ApplicationView, ParticipationStatement
from phds.trust.envelopes import sign_participation
from phds.trust.keys import KeyPair

app = typer.Typer(
    help="Take part in data-access applications (or not), declaring the hospital's costs per study.",
    no_args_is_help=True,
)
CONFIG = typer.Option(
    Path("node.toml"), "--config", "-c", envvar="PHDS_NODE_CONFIG", help="The node's node.toml."
)
console = Console()


@contextlib.contextmanager
def connect(config: Path) -> Iterator[tuple[NodeConfig, HubClient]]:
    """The node's configuration and an authenticated client of its hub (the enrolment credential)."""
    cfg = load_node_config(config)
    with connect_hub(cfg) as client:
        yield cfg, client


def pass_through_amount(value: str | int | Decimal | float, field: str = "--pass-through") -> Decimal:
    """A pass-through cost as a two-decimal Decimal; refuses floats (also written as ``1e2``),
    negatives and a third decimal, naming *field*."""
    if isinstance(value, str) and any(c in value for c in "eE"):
        raise InputError(f"{value!r}: write the amount as a plain decimal such as 230.00", field=field)
    return parse_amount(value, field)  # type: ignore[arg-type]  # a float is refused there, by name


def build_statement(
    application_id: str,
    hospital: str,
    key: KeyPair,
    *,
    accepted: bool,
    pass_through: str | int | Decimal | float = "0.00",
    detail: str = "",
    reason: str | None = None,
) -> ParticipationStatement:
    """The steward's decision as a statement signed by the node *key*."""
    amount = pass_through_amount(pass_through)
    try:
        statement = ParticipationStatement(
            application_id=application_id,
            hospital=hospital,
            accepted=accepted,
            pass_through_per_study=amount,
            detail=detail,
            reason=reason,
            signed_at=datetime.now(UTC),
            node_key_id=key.key_id,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        name = {"pass_through_per_study": "--pass-through", "detail": "--detail", "reason": "--reason"}
        field = name.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else None
        raise InputError(str(error["msg"]), field=field) from None
    return sign_participation(statement, key)


def record_and_report(cfg: NodeConfig, client: HubClient, statement: ParticipationStatement) -> AuditEntry:
    """Audit the signed *statement* at the node, then post it to the hub; the audit entry."""
    db = NodeDatabase(cfg.db_path)
    try:
        entry = AuditLog(db).append(AuditKind.PARTICIPATION, payload=statement.model_dump(mode="json"))
    finally:
        db.close()
    try:
        client.report_participation(statement)
    except PhdsError:
        typer.echo(
            f"the decision is audited (entry {entry.seq}) but the hub did not take it; "
            "decide again to resend it",
            err=True,
        )
        raise
    return entry


def _ours(view: ApplicationView, hospital: str) -> ParticipationStatement | None:
    return next((p for p in view.participations if p.hospital == hospital), None)


def _decision(view: ApplicationView, hospital: str) -> str:
    mine = _ours(view, hospital)
    if mine is None:
        return "not decided"
    if mine.accepted:
        return f"accepted, {mine.pass_through_per_study} per study"
    return f"declined: {mine.reason or ''}".rstrip(": ")


def _services(form: dict[str, Any]) -> str:
    return ", ".join(
        f"{s['service']} ×{s.get('quantity', 1)}"
        + (f" ({s['hospitals']} hospitals)" if s.get("hospitals") else "")
        for s in form.get("services", [])
    )


def _quote(view: ApplicationView) -> str:
    if not view.quotes:
        return "none yet"
    q = max(view.quotes, key=lambda q: q.revision)
    return f"rev {q.revision} {q.state}: ceiling {q.ceiling} {q.currency}, valid until {q.valid_until}"


def _facts(view: ApplicationView, hospital: str, *, full: bool = False) -> Table:
    """The application as label/value rows, every text in full (wrapped, never cut)."""
    form = view.form
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    rows = [
        ("application", view.id), ("title", form.get("title", "")), ("requester", view.organisation),
        ("state", view.state), ("filed", f"{view.created_at:%Y-%m-%d %H:%M} UTC"),
        ("purpose", form.get("purpose", "")), ("legal basis", form.get("legal_basis", "")),
        ("ethics reference", form.get("ethics_reference", "")),
        ("hospitals", ", ".join(form.get("hospitals", []))), ("services", _services(form)),
        ("duration", f"{form.get('duration_months', '?')} months"), ("current quote", _quote(view)),
        (f"{hospital}'s decision", _decision(view, hospital)),
    ]  # fmt: skip
    if full:
        rows += [
            ("micro-enterprise", "yes" if form.get("micro_enterprise") else "no"),
            ("charged so far", str(view.charged)),
        ]
    for label, value in rows:
        facts.add_row(label, str(value))
    return facts


def _key(cfg: NodeConfig) -> KeyPair:
    """The node's own signing key, the one the hub pinned at enrolment (never a new one)."""
    return KeyPair.load(cfg.node_key_path)


@app.command("list")
def list_applications(
    config: Path = CONFIG, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """The applications naming this hospital, with their purpose, legal basis, quotes and our decision."""
    with connect(config) as (cfg, client):
        views = client.applications()
    if as_json:
        typer.echo(json.dumps([v.model_dump(mode="json") for v in views], ensure_ascii=False, indent=2))
        return
    if not views:
        typer.echo(f"no applications name {cfg.node.name}")
        return
    for i, view in enumerate(views):
        if i:
            console.rule()
        console.print(_facts(view, cfg.node.name))
    typer.echo("phds node participation accept APP --pass-through AMOUNT, or decline APP --reason TEXT")


@app.command("show")
def show(
    application_id: str = typer.Argument(..., help="The application."),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One application in full: what it asks for, under which basis, its quotes and the decisions."""
    with connect(config) as (cfg, client):
        view = client.application(application_id)
    if as_json:
        typer.echo(json.dumps(view.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    console.print(_facts(view, cfg.node.name, full=True))
    for q in sorted(view.quotes, key=lambda q: q.revision):
        table = Table("service", "description", "quantity", "unit price", "amount", title=(
            f"quote {q.id} rev {q.revision} ({q.state}, tariff {q.tariff_version}): ceiling {q.ceiling} "
            f"{q.currency}, valid until {q.valid_until}"
        ))  # fmt: skip
        for line in q.lines:
            table.add_row(
                str(line.get("service", "")), str(line.get("description", "")), str(line.get("quantity", "")),
                str(line.get("unit_price", "")), str(line.get("amount", "")),
            )  # fmt: skip
        console.print(table)
    if not view.quotes:
        typer.echo("no quote yet: the operator prices the application once the hospitals have decided")
    for p in view.participations:
        covers = f" ({p.detail})" if p.detail else ""
        said = (
            f"accepted, {p.pass_through_per_study} per study{covers}"
            if p.accepted
            else f"declined: {p.reason}"
        )
        typer.echo(f"{p.hospital}: {said}; signed {p.signed_at:%Y-%m-%d %H:%M} UTC by key {p.node_key_id}")


@app.command("accept")
def accept(
    application_id: str = typer.Argument(..., help="The application."),
    pass_through: str = typer.Option(
        ..., "--pass-through", help="The hospital's own costs per study, at cost (e.g. 230.00; 0 for none)."
    ),
    detail: str = typer.Option(
        "", "--detail", help="What the pass-through covers (extraction, steward time)."
    ),
    config: Path = CONFIG,
) -> None:
    """Take part; the node signs the decision and its pass-through, audits it, then tells the hub."""
    amount = pass_through_amount(pass_through)  # refuse bad input before anything is fetched or signed
    with connect(config) as (cfg, client):
        client.application(application_id)  # it exists and names this hospital
        statement = build_statement(
            application_id, cfg.node.name, _key(cfg), accepted=True, pass_through=amount, detail=detail
        )
        entry = record_and_report(cfg, client, statement)
    typer.echo(
        f"{cfg.node.name} takes part in {application_id}: pass-through {statement.pass_through_per_study} "
        f"per study; signed by key {statement.node_key_id}, audited as entry {entry.seq}, reported to the hub"
    )


@app.command("decline")
def decline(
    application_id: str = typer.Argument(..., help="The application."),
    reason: str = typer.Option(..., "--reason", help="Why; the requester and the operator will read it."),
    config: Path = CONFIG,
) -> None:
    """Decline to take part, with the reason; signed, audited, then reported to the hub."""
    if not reason.strip():
        raise InputError("give the reason for declining", field="--reason")
    with connect(config) as (cfg, client):
        client.application(application_id)
        statement = build_statement(application_id, cfg.node.name, _key(cfg), accepted=False, reason=reason)
        entry = record_and_report(cfg, client, statement)
    typer.echo(
        f"{cfg.node.name} declined {application_id}: {reason}; audited as entry {entry.seq}, "
        "reported to the hub"
    )


__all__ = ["app", "build_statement", "connect", "pass_through_amount", "record_and_report"]
