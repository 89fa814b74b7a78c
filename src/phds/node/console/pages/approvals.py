"""The approval queue: every pending study in full, and the steward's approve or reject.

Deciding goes through :meth:`~phds.node.approvals.ApprovalStore.approve` and ``reject``, the calls
``phds node approve|reject`` make, with the binding hash the page showed: a study that changed what it
asks in between is refused (Conflict) instead of approved unseen. ``phds node run`` reports the decision
to the hub at its next poll.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from phds.node.console.render import page
from phds.node.console.session import CurrentSteward
from phds.node.console.study_view import study_for_steward
from phds.node.local import open_local

router = APIRouter()

RECENT_DECISIONS = 10


@router.get("/approvals", response_class=HTMLResponse)
def queue(request: Request, steward: CurrentSteward, decided: str | None = None) -> Response:
    """Every study waiting for a decision, oldest first, shown in full; the latest decisions below."""
    config = request.app.state.config
    with open_local(config) as node:
        studies = [study_for_steward(node.audit, config.policy, r, None) for r in node.approvals.pending()]
        recent = list(reversed(node.approvals.decisions()[-RECENT_DECISIONS:]))
        just = node.approvals.decision_for(decided) if decided else None
        titles = {d.study_id: node.approvals.get(d.study_id).title for d in recent}
    return page(
        request, "console_approvals.html", steward, studies=studies, recent=recent, titles=titles, just=just
    )


@router.get("/approvals/{study_id}", response_class=HTMLResponse)
def one_study(request: Request, study_id: str, steward: CurrentSteward) -> Response:
    """One study, pending or decided, in full (the audit log links here)."""
    config = request.app.state.config
    with open_local(config) as node:
        pending = node.approvals.get(study_id)
        study = study_for_steward(node.audit, config.policy, pending, node.approvals.decision_for(study_id))
    return page(request, "console_one_study.html", steward, s=study)


@router.post("/approvals/{study_id}/approve")
def approve(
    request: Request,
    study_id: str,
    steward: CurrentSteward,
    binding: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Approve the study as shown (its *binding*), recorded as the console's steward."""
    with open_local(request.app.state.config) as node:
        node.approvals.approve(study_id, steward=steward.name, reason=reason.strip(), binding=binding)
    return RedirectResponse(f"/approvals?decided={quote(study_id, safe='')}", status_code=303)


@router.post("/approvals/{study_id}/reject")
def reject(
    request: Request,
    study_id: str,
    steward: CurrentSteward,
    binding: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Reject the study as shown with a reason the requester reads (required)."""
    with open_local(request.app.state.config) as node:
        node.approvals.reject(study_id, reason=reason.strip(), steward=steward.name, binding=binding)
    return RedirectResponse(f"/approvals?decided={quote(study_id, safe='')}", status_code=303)
