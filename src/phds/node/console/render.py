"""The console's templates (its own first, then the portal's shared ``base.html``) and :func:`page`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from phds.node.console.session import Steward
from phds.web.kit import make_templates

TEMPLATES_DIR = Path(__file__).parent / "templates"

NAVIGATION: list[tuple[str, str]] = [
    ("/approvals", "Approvals"),
    ("/audit", "Audit log"),
    ("/policy", "Policy"),
    ("/budget", "Privacy budget"),
    ("/earnings", "Earnings"),
]
HOME = "/approvals"


def console_templates(hospital: str) -> Jinja2Templates:
    """The templates of one console; its name, home and static files are globals, so that error pages
    (rendered by :func:`phds.web.errors.install_page_errors`) look like every other page."""
    templates = make_templates(TEMPLATES_DIR)
    templates.env.globals.update(
        site_name=f"{hospital} · steward console", home_url=HOME, static_root="/static", hospital=hospital
    )
    return templates


def page(
    request: Request, name: str, steward: Steward | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render template *name*; the menu and the sign-out button only for a signed-in steward."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        name,
        {
            "steward": steward,
            "nav": NAVIGATION if steward is not None else [],
            "csrf": steward.csrf if steward is not None else context.pop("csrf", ""),
            **context,
        },
        status_code=status_code,
    )


__all__ = ["HOME", "NAVIGATION", "TEMPLATES_DIR", "console_templates", "page"]
