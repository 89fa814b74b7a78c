"""The differential-privacy ledger, as ``phds node budget show`` lists it: per dataset, the network's
ceiling and each requesting organisation's, with what is spent and what remains."""

from __future__ import annotations

from itertools import groupby

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.node.console.render import page
from phds.node.console.session import CurrentSteward
from phds.node.dp_ledger import NETWORK, loss_rho
from phds.node.local import open_local

router = APIRouter()


@router.get("/budget", response_class=HTMLResponse)
def budget(request: Request, steward: CurrentSteward) -> Response:
    """Spent and remaining privacy loss per dataset and organisation, and the ceilings that apply."""
    config = request.app.state.config
    with open_local(config) as node:
        lines = node.ledger.lines()
    dp = config.policy.dp
    return page(
        request,
        "console_budget.html",
        steward,
        datasets=[(universe, list(group)) for universe, group in groupby(lines, key=lambda x: x.universe)],
        network=NETWORK,
        dp=dp,
        requester_rho=loss_rho(dp.requester_budget, dp.delta),
        network_rho=loss_rho(dp.network_budget, dp.delta),
    )
