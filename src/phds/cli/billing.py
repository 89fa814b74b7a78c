"""``phds billing``: the network's money, from the hub (tariffs, billing profiles, applications, quotes,
invoices, hospitals' statements, verification against the node keys) and the sustainability simulator.

The hub's commands are in :mod:`phds.cli.billing_money` (tariff, profile, application, quote) and
:mod:`phds.cli.billing_invoices` (invoice, statement, verify); ``simulate`` needs no hub.
"""

from __future__ import annotations

import typer

from phds.cli import billing_invoices, billing_money
from phds.cli.billing_simulate import simulate

HELP = (
    "The network's money: tariffs, billing profiles, applications and quotes, invoices, hospitals' "
    "statements, verifying an invoice against the node keys, and the sustainability simulator."
)

app = typer.Typer(help=HELP, no_args_is_help=True)


@app.callback()
def _billing() -> None:
    """The network's money: tariffs, billing profiles, applications and quotes, invoices, hospitals'
    statements, verifying an invoice against the node keys, and the sustainability simulator."""


billing_money.register(app)
billing_invoices.register(app)
app.command("simulate")(simulate)

__all__ = ["app"]
