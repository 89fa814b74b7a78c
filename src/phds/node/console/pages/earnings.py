"""The hospital's earnings statement of a month, fetched from the hub with the node's credential (as
``phds node earnings`` does), and its check against this node's audit log (``earnings verify``).

The hub may be down or the credential expired: the page then says so, and everything local still works.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import PhdsError
from phds.node.console.render import page
from phds.node.console.session import CurrentSteward
from phds.node.earnings import EarningsCheck, check_against_audit, statement_period
from phds.node.hub_client import connect_hub
from phds.node.local import open_local
from phds.protocol.billing import HospitalStatement

router = APIRouter()

HUB_TIMEOUT_SECONDS = 10.0


@router.get("/earnings", response_class=HTMLResponse)
def earnings(request: Request, steward: CurrentSteward, period: str = "") -> Response:
    """The month's statement (default: last month) and whether the node can account for it."""
    config = request.app.state.config
    month = statement_period(period or None, field="period")
    statement: HospitalStatement | None = None
    check: EarningsCheck | None = None
    unavailable: str | None = None
    try:
        with connect_hub(config, timeout=HUB_TIMEOUT_SECONDS) as client:
            statement = client.statement(config.node.name, month)
    except PhdsError as exc:
        unavailable = exc.message
    if statement is not None:
        with open_local(config) as node:
            check = check_against_audit(statement, node.audit, config.node.name)
    return page(
        request,
        "console_earnings.html",
        steward,
        period=month,
        statement=statement,
        check=check,
        unavailable=unavailable,
        hub_url=config.node.hub_url,
    )
