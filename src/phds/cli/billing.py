"""``phds billing``: the network's money. The tariff, quote and invoice commands join this group."""

from __future__ import annotations

import typer

from phds.cli.billing_simulate import simulate

app = typer.Typer(
    help="The network's money: the sustainability simulator (tariffs, quotes and invoices to follow).",
    no_args_is_help=True,
)


@app.callback()
def _billing() -> None:
    """The network's money: the sustainability simulator (tariffs, quotes and invoices to follow)."""


app.command("simulate")(simulate)

__all__ = ["app"]
