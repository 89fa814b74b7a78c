"""``phds node budget show|set|reset``: the node's differential-privacy ledger, on ``node.db`` alone.

``show`` lists each dataset's network ceiling (``*``) and every organisation's, with what is spent and
what remains, in ρ (zCDP) and as ε at the policy's δ. ``set`` overrides a ceiling; ``reset`` starts an
organisation's count again (the network's never). Both are audited (``dp_budget`` entries).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from phds.node.audit import AuditLog
from phds.node.dp_ledger import NETWORK, DpLedger
from phds.node.local import open_local
from phds.node.policy import DpLoss

app = typer.Typer(help="The node's differential-privacy budgets (per dataset and organisation).")
CONFIG = typer.Option(
    Path("node.toml"), "--config", "-c", envvar="PHDS_NODE_CONFIG", help="The node's node.toml."
)
console = Console()


@contextlib.contextmanager
def _ledger(config: Path) -> Iterator[tuple[DpLedger, AuditLog]]:
    with open_local(config) as node:
        yield node.ledger, node.audit


@app.command("show")
def show(
    config: Path = CONFIG,
    dataset: str | None = typer.Option(None, "--dataset", help="Only this dataset (e.g. omop:cdm)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What each organisation and the network have spent and have left."""
    with _ledger(config) as (ledger, _):
        lines = ledger.lines(dataset)
        if as_json:
            typer.echo(json.dumps([line.as_json() for line in lines], indent=2))
            return
        if not lines:
            typer.echo("no privacy budget spent yet")
            return
        table = Table("dataset", "organisation", "limit ρ", "spent ρ", "remaining ρ", "remaining ε")
        for line in lines:
            who = "(network)" if line.organisation == NETWORK else line.organisation
            table.add_row(
                line.universe, who + (" *" if line.overridden else ""), f"{line.limit_rho:.4g}",
                f"{line.spent_rho:.4g}", f"{line.remaining_rho:.4g}", f"{line.remaining_epsilon:.3g}",
            )  # fmt: skip
        console.print(table)
        typer.echo(f"ε at δ = {ledger.settings.delta:g}; * = set with 'phds node budget set'")


@app.command("set")
def set_budget(
    dataset: str = typer.Argument(..., help="The dataset, as 'budget show' names it (e.g. omop:cdm)."),
    organisation: str = typer.Option(
        NETWORK, "--organisation", "-o", help="An organisation, or * for the network."
    ),
    epsilon: float | None = typer.Option(None, "--epsilon", help="The ceiling as ε (at the policy's δ)."),
    rho: float | None = typer.Option(None, "--rho", help="The ceiling as ρ (zCDP)."),
    config: Path = CONFIG,
) -> None:
    """Override a ceiling; give exactly one of --epsilon or --rho."""
    loss = _loss(epsilon, rho)
    with _ledger(config) as (ledger, audit):
        line = ledger.set_limit(audit, dataset, organisation, loss)
    typer.echo(
        f"{dataset} {organisation}: limit ρ {line.limit_rho:.4g}, spent {line.spent_rho:.4g}, "
        f"remaining ε {line.remaining_epsilon:.3g}"
    )


@app.command("reset")
def reset(
    dataset: str = typer.Argument(..., help="The dataset."),
    organisation: str = typer.Option(..., "--organisation", "-o", help="The organisation to reset."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the audit log)."),
    config: Path = CONFIG,
) -> None:
    """Start an organisation's spend on a dataset again; the network's ceiling keeps counting."""
    with _ledger(config) as (ledger, audit):
        line = ledger.reset(audit, dataset, organisation, reason)
    typer.echo(f"{dataset} {organisation}: spend reset; remaining ε {line.remaining_epsilon:.3g}")


def _loss(epsilon: float | None, rho: float | None) -> DpLoss:
    from pydantic import ValidationError

    from phds.errors import InputError

    try:
        return DpLoss(epsilon=epsilon, rho=rho)
    except ValidationError as exc:
        raise InputError(
            exc.errors()[0]["msg"].removeprefix("Value error, "), field="--epsilon/--rho"
        ) from None


__all__ = ["app"]
