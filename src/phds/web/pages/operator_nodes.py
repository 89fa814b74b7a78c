"""Node health for the operator: each hospital's node, when the hub last heard from it, its version, whether
it is polling for work now, and the signed audit head it last reported (admins only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.protocol.nodes import NodeInfo
from phds.protocol.organisations import Organisation
from phds.protocol.trust import SignedAuditHead
from phds.web.render import page
from phds.web.session import CurrentViewer

router = APIRouter(prefix="/operator")

STALE_AFTER = timedelta(minutes=5)
"""A node unheard of for longer is flagged. A healthy node long-polls at least every minute, and the hub
records "last seen" at most once per ``PHDS_HUB_TOKEN_TOUCH_SECONDS`` (60 s by default)."""


@dataclass(frozen=True)
class NodeHealth:
    """One hospital's row: its node (None: not enrolled), how long since it called, its newest audit head."""

    hospital: Organisation
    node: NodeInfo | None
    ago: timedelta | None
    head: SignedAuditHead | None

    @property
    def stale(self) -> bool:
        return self.node is not None and (self.ago is None or self.ago > STALE_AFTER)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def how_long(delta: timedelta | None) -> str:
    """``42 s ago``, ``7 min ago``, ``3 h ago``, ``2 days ago``; ``never`` for None."""
    if delta is None:
        return "never"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


@router.get("/nodes", response_class=HTMLResponse)
async def nodes(request: Request, viewer: CurrentViewer) -> Response:
    """Every hospital's node health, stale ones first."""
    viewer.require("admin")
    now = datetime.now(UTC)
    hospitals = [
        Organisation.model_validate(o) for o in await viewer.api.get("/organisations", kind="hospital")
    ]
    by_hospital = {
        n.hospital: n for n in (NodeInfo.model_validate(n) for n in await viewer.api.get("/nodes"))
    }
    rows = []
    for hospital in sorted(hospitals, key=lambda h: h.name):
        node = by_hospital.get(hospital.name)
        head = None
        if node is not None:
            heads = await viewer.api.get(f"/nodes/{hospital.name}/audit-heads")
            head = SignedAuditHead.model_validate(heads[0]) if heads else None
        seen = node.last_seen_at if node is not None else None
        rows.append(NodeHealth(hospital, node, now - _aware(seen) if seen else None, head))
    rows.sort(key=lambda r: (not r.stale, r.node is not None, r.hospital.name))
    return page(
        request,
        "operator_nodes.html",
        viewer,
        rows=rows,
        how_long=how_long,
        stale_minutes=int(STALE_AFTER.total_seconds() // 60),
        stale_count=sum(r.stale for r in rows),
        checked_at=now,
    )
