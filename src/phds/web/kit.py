"""What the hub's portal and the node's steward console share: templates, static files, CSRF, headers.

**CSRF.** Every unsafe request (POST, PUT, PATCH, DELETE) must carry a token, as the form field
``csrf_token`` or the header ``X-CSRF-Token`` (HTMX sends the header, see ``base.html``). The token is
HMAC-SHA256 of the request's session cookie (or, before sign-in, of a random pre-session cookie), so it
needs no server-side state and another site cannot compute it: it can neither read the HttpOnly cookie
nor our pages. Requests a browser marks ``Sec-Fetch-Site: cross-site`` are refused as well (OWASP
Cross-Site Request Forgery Prevention Cheat Sheet: "signed double-submit cookie" and "Fetch Metadata").

**Cookies** are ``__Host-`` prefixed, ``Secure``, ``HttpOnly``, ``SameSite=Lax``, ``Path=/`` (RFC 6265bis
§4.1.3.2). Browsers accept Secure cookies from ``http://localhost`` and ``127.0.0.1``, so one setting
serves a laptop and production behind TLS.

**Headers.** A Content-Security-Policy that allows only our own scripts and styles (no inline script),
no framing, no referrer across origins, no MIME sniffing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from starlette.middleware.base import BaseHTTPMiddleware

from phds.errors import PermissionDenied

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

PRESESSION_COOKIE = "__Host-phds_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class CsrfRefused(PermissionDenied):
    """An unsafe request without the page's CSRF token, or sent from another site."""


def make_templates(*extra_dirs: Path) -> Jinja2Templates:
    """A Jinja2 environment (autoescaped) over *extra_dirs* first, then the shared ``templates/``."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.loader = ChoiceLoader([FileSystemLoader([str(d) for d in (*extra_dirs, TEMPLATES_DIR)])])
    templates.env.filters.update(when=format_when, number=format_number)
    return templates


def format_when(value: Any) -> str:
    """An ISO timestamp or datetime as ``2026-12-02 14:05 UTC``; empty for None."""
    if value in (None, ""):
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_number(value: Any, digits: int = 3) -> str:
    """A number with *digits* significant digits; strings (``"<5"``) and None pass through."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}g}"


def cookie_flags(max_age: int | None = None) -> dict[str, Any]:
    """The flags every cookie of ours is set with."""
    return {"secure": True, "httponly": True, "samesite": "lax", "path": "/", "max_age": max_age}


def csrf_token_for(cookie_value: str) -> str:
    """The CSRF token that goes with a session (or pre-session) cookie's value."""
    digest = hmac.new(cookie_value.encode(), b"phds-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_presession() -> str:
    """A random pre-session value, for the CSRF token of the sign-in form."""
    return secrets.token_urlsafe(32)


async def check_csrf(request: Request, cookie_value: str | None) -> None:
    """Refuse an unsafe request without the token of *cookie_value*, or one a browser marks cross-site."""
    if request.method not in UNSAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfRefused("refused: this form was sent from another site")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not cookie_value or not sent or not hmac.compare_digest(sent, csrf_token_for(cookie_value)):
        raise CsrfRefused(
            "refused: the form's security token is missing or out of date; reload the page and try again"
        )


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds :data:`SECURITY_HEADERS` to every response (static files keep their own caching)."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            if name == "Cache-Control" and "/static/" in request.url.path:
                continue
            response.headers.setdefault(name, value)
        return response
