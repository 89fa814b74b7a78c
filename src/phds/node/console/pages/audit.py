"""The audit log browser: pages of entries, newest first, by kind; and the chain's verification.

"Verify the chain" runs :meth:`~phds.node.audit.AuditLog.verify`, the check ``phds node audit verify``
makes, and shows its one-line summary with the details.
"""

from __future__ import annotations

import json
import math

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import InputError
from phds.node.audit import AUDIT_KINDS, AuditEntry, VerifyReport
from phds.node.console.render import page
from phds.node.console.session import CurrentSteward, Steward
from phds.node.local import open_local

router = APIRouter()

PAGE_SIZE = 50
_PREVIEW_CHARS = 90


def _preview(entry: AuditEntry) -> str:
    text = json.dumps(entry.payload, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _audit_page(
    request: Request, steward: Steward, kind: str, number: int, report: VerifyReport | None = None
) -> Response:
    if kind and kind not in AUDIT_KINDS:
        raise InputError(f"{kind!r} is not a kind of audit entry", field="kind")
    with open_local(request.app.state.config) as node:
        total = node.audit.count(kind=kind or None)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        number = min(number, pages)
        entries = node.audit.newest(kind=kind or None, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    rows = [
        (e, _preview(e), json.dumps(e.payload, ensure_ascii=False, indent=2, sort_keys=True)) for e in entries
    ]
    return page(
        request,
        "console_audit.html",
        steward,
        rows=rows,
        kinds=AUDIT_KINDS,
        kind=kind,
        number=number,
        pages=pages,
        total=total,
        first=(number - 1) * PAGE_SIZE + 1 if entries else 0,
        last=(number - 1) * PAGE_SIZE + len(entries),
        report=report,
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    steward: CurrentSteward,
    kind: str = "",
    page_number: int = Query(1, ge=1, alias="page"),
) -> Response:
    """A page of audit entries, newest first, optionally of one kind."""
    return _audit_page(request, steward, kind, page_number)


@router.post("/audit/verify", response_class=HTMLResponse)
def verify(request: Request, steward: CurrentSteward) -> Response:
    """Verify the whole hash chain and its head (``phds node audit verify``), then show the newest page."""
    with open_local(request.app.state.config) as node:
        report = node.audit.verify()
    return _audit_page(request, steward, "", 1, report=report)
