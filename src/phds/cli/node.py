"""``phds node``: enrol and run a hospital's node; act on its local state (audit log, approvals).

``enrol``, ``run``, ``participation`` and ``earnings`` talk to the hub (outbound only); every other
command works on ``node.db`` alone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from phds.cli.node_budget import app as budget_app
from phds.cli.node_console import console as console_command
from phds.cli.node_earnings import app as earnings_app
from phds.cli.node_participation import app as participation_app
from phds.node.approvals import ApprovalStore
from phds.node.audit import AuditLog
from phds.node.config import load_node_config
from phds.node.local import open_local, steward_name

app = typer.Typer(
    help="A hospital's node: enrol, run, and its local governance (audit log, approvals).",
    no_args_is_help=True,
)
audit_app = typer.Typer(help="The node's hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(budget_app, name="budget")
app.add_typer(participation_app, name="participation")
app.add_typer(earnings_app, name="earnings")
app.command("console")(console_command)

CONFIG = typer.Option(
    Path("node.toml"), "--config", "-c", envvar="PHDS_NODE_CONFIG", help="The node's node.toml."
)
console = Console()


def register(root: typer.Typer) -> None:
    """Add the ``node`` group to *root*."""
    root.add_typer(app, name="node")


@contextlib.contextmanager
def _audit(config: Path) -> Iterator[AuditLog]:
    with open_local(config) as node:
        yield node.audit


@audit_app.command("verify")
def audit_verify(config: Path = CONFIG) -> None:
    """Check the whole hash chain and its head; exit 1 at the first broken entry."""
    with _audit(config) as audit:
        report = audit.verify()
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(code=1)


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
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    study: str | None = typer.Option(None, "--study", help="Show one study in full: what approving binds."),
) -> None:
    """List studies waiting for a steward's decision, or show one in full (``--study``)."""
    with _audit(config) as audit:
        store = ApprovalStore(audit)
        pending = [store.get(study)] if study else store.pending()
    if as_json or study:
        shown = [p.to_json() for p in pending]
        typer.echo(json.dumps(shown[0] if study else shown, ensure_ascii=False, indent=2))
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
    typer.echo("phds node approvals --study ID shows a study's full parameters, purpose and hospitals")


BINDING = typer.Option(
    None, "--binding", help="Refuse unless the study still asks what this hash binds (approvals --study)."
)


@app.command("approve")
def approve(
    study_id: str = typer.Argument(..., help="The study to approve."),
    config: Path = CONFIG,
    steward: str | None = typer.Option(None, "--as", help="Steward's name (default: login name)."),
    reason: str = typer.Option("", "--reason", help="Optional note recorded with the approval."),
    binding: str | None = BINDING,
) -> None:
    """Approve a pending study; the decision is audited and later reported to the hub."""
    with open_local(config) as node:
        d = node.approvals.approve(study_id, steward=steward_name(steward), reason=reason, binding=binding)
    typer.echo(f"approved {d.study_id} as {d.steward} at {d.decided_at}")


@app.command("reject")
def reject(
    study_id: str = typer.Argument(..., help="The study to reject."),
    reason: str = typer.Option(..., "--reason", help="Why; the requester will read it."),
    config: Path = CONFIG,
    steward: str | None = typer.Option(None, "--as", help="Steward's name (default: login name)."),
    binding: str | None = BINDING,
) -> None:
    """Reject a pending study with a reason; the decision is audited and later reported to the hub."""
    with open_local(config) as node:
        d = node.approvals.reject(study_id, reason=reason, steward=steward_name(steward), binding=binding)
    typer.echo(f"rejected {d.study_id} as {d.steward} at {d.decided_at}: {d.reason}")


@app.command("enrol")
def enrol(
    config: Path = CONFIG,
    token: str = typer.Option(
        ..., "--token", envvar="PHDS_ENROLMENT_TOKEN", help="The one-time enrolment token from the operator."
    ),
    hub: str | None = typer.Option(None, "--hub", help="The hub's URL (default: node.hub_url)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing credential file."),
) -> None:
    """Exchange a one-time enrolment token for the node's credential and write it (mode 0600)."""
    from urllib.parse import urlsplit

    from phds import __version__
    from phds.errors import ConfigError, Conflict
    from phds.node.credential import write_credential
    from phds.node.hub_client import enrol as enrol_at_hub
    from phds.protocol.nodes import NodeMetadata

    cfg = load_node_config(config)
    hub_url = (hub or cfg.node.hub_url).rstrip("/")
    if cfg.node.environment != "development" and urlsplit(hub_url).scheme != "https":
        raise ConfigError(f"--hub {hub_url}: the hub must be reached over https outside development")
    path = cfg.node.credential_file
    if path.exists() and not force:  # check before the one-time token is spent
        raise Conflict(f"{path} already holds a credential; use --force to replace it")
    from phds.trust.keys import load_or_create

    key = load_or_create(cfg.node_key_path)  # the hub pins its public key; it signs every release
    metadata = NodeMetadata(software_version=__version__)
    response = enrol_at_hub(
        hub_url, token, metadata=metadata, public_key=key.public_key_b64, ca_bundle=cfg.node.ca_bundle
    )
    if response.node.hospital != cfg.node.name:
        raise ConfigError(
            f"the token enrolled a node for hospital {response.node.hospital!r}, but node.name is "
            f"{cfg.node.name!r}; the credential was not written: ask the operator for a token for "
            f"{cfg.node.name!r}"
        )
    cred = write_credential(path, response, hub_url, force=force)
    typer.echo(
        f"enrolled node {cred.node_id} for hospital {cred.hospital} at {hub_url}; credential written to "
        f"{path} (mode 0600, expires {cred.expires_at:%Y-%m-%d}); node key {key.key_id} pinned by the hub",
        err=True,
    )


@app.command("run")
def run(
    config: Path = CONFIG,
    poll_wait: float = typer.Option(25.0, "--poll-wait", min=0, max=60, help="Long-poll seconds."),
    catalogue_minutes: float = typer.Option(
        60.0, "--catalogue-minutes", min=0, help="Republish the dataset profile this often (0: at start)."
    ),
    cancel_check: float = typer.Option(
        10.0, "--cancel-check-seconds", min=1, help="How often to ask whether parked studies were cancelled."
    ),
) -> None:
    """Run the node agent: pull tasks from the hub, answer them here, post the results. Ctrl-C stops."""
    import signal

    from phds.node.agent import Agent, AgentOptions
    from phds.node.credential import read_credential
    from phds.node.executor import NodeRuntime

    cfg = load_node_config(config)
    cred = read_credential(cfg.node.credential_file, hospital=cfg.node.name, hub_url=cfg.node.hub_url)
    runtime = NodeRuntime.open(cfg)
    options = AgentOptions(
        poll_wait=poll_wait, catalogue_interval=catalogue_minutes * 60, cancel_check_interval=cancel_check
    )
    agent = Agent(runtime, cred.credential, options)

    def _stop(signum: int, _frame: object) -> None:
        if agent.stopping:  # a second signal: stop now
            raise KeyboardInterrupt
        typer.echo(f"{signal.Signals(signum).name}: finishing the current task, then stopping", err=True)
        agent.stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    typer.echo(f"node {cfg.node.name} running against {cfg.node.hub_url}; Ctrl-C stops", err=True)
    try:
        agent.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runtime.close()
    typer.echo(f"node {cfg.node.name} stopped after {agent.tasks_done} task(s)", err=True)
