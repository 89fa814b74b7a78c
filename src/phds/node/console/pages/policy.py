"""The node's policy, read-only as ``node.toml`` (with any environment overrides) sets it, and the rule
that decided each recent task (the audited ``decision`` entries, whose reason names the rule)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.node.audit import AuditKind
from phds.node.console.render import page
from phds.node.console.session import CurrentSteward
from phds.node.local import open_local

router = APIRouter()

RECENT_DECISIONS = 50


@router.get("/policy", response_class=HTMLResponse)
def policy(request: Request, steward: CurrentSteward) -> Response:
    """Thresholds, privacy settings and rules in force; the latest policy decisions."""
    config = request.app.state.config
    with open_local(config) as node:
        decisions = node.audit.newest(kind=AuditKind.DECISION, limit=RECENT_DECISIONS)
    settings = config.policy.model_dump(mode="json", exclude={"rules"})
    return page(
        request,
        "console_policy.html",
        steward,
        rules=list(enumerate(config.policy.rules, start=1)),
        settings=settings,
        nfilter_tab=config.policy.effective_nfilter_tab,
        decisions=decisions,
        trust=config.trust,
    )
