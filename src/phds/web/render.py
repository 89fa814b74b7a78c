"""The portal's templates and the one way its pages render: :func:`page`."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from phds.web.kit import make_templates
from phds.web.session import Viewer

templates = make_templates()

NAVIGATION: dict[str, list[tuple[str, str]]] = {
    "requester": [
        ("/portal/", "Home"),
        ("/portal/catalogue", "Catalogue"),
        ("/portal/feasibility", "Feasibility"),
        ("/portal/studies", "Studies"),
        ("/portal/money", "Applications & invoices"),
    ],
    "admin": [
        ("/portal/", "Home"),
        ("/portal/operator/organisations", "Organisations"),
        ("/portal/operator/nodes", "Nodes"),
        ("/portal/operator/billing", "Billing"),
        ("/portal/operator/simulator", "Simulator"),
        ("/portal/studies", "Studies"),
    ],
    "steward": [("/portal/", "Home"), ("/portal/studies", "Studies"), ("/portal/catalogue", "Catalogue")],
}
"""The menu of each role; pages outside a role's menu still check the role themselves."""


def page(
    request: Request, name: str, viewer: Viewer | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render template *name* for *viewer* (None before sign-in) with the menu of their role."""
    nav = NAVIGATION.get(viewer.role, []) if viewer is not None else []
    return templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "nav": nav, "csrf": viewer.csrf if viewer else context.pop("csrf", ""), **context},
        status_code=status_code,
    )
