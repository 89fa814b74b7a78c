"""Who is signed in to the portal: the session cookie, the person behind it, and role checks.

The cookie holds the session token the hub issued at sign-in (``POST /api/v1/sessions``); the portal
keeps nothing else. Each page asks the hub ``GET /me`` with it, so a revoked or expired session ends at
once, on every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from phds.errors import AuthenticationError, PermissionDenied, PhdsError
from phds.protocol.principals import Me
from phds.web.api import HubApi, PersonApi
from phds.web.kit import PRESESSION_COOKIE, check_csrf, csrf_token_for

SESSION_COOKIE = "__Host-phds_session"


class SignInRequired(PhdsError):
    """No valid session: the portal sends the browser to the sign-in page, then back to ``next``."""

    http_status = 401

    def __init__(self, next_path: str) -> None:
        super().__init__("please sign in")
        self.next_path = next_path


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, the API as them, and the CSRF token their forms carry."""

    me: Me
    api: PersonApi
    csrf: str

    @property
    def role(self) -> str:
        return self.me.role.value if self.me.role is not None else "node"

    def require(self, *roles: str) -> None:
        """:class:`PermissionDenied` unless the person has one of *roles*."""
        if self.role not in roles:
            raise PermissionDenied(
                f"this page is for {' or '.join(roles)}s; you are signed in as a {self.role}"
            )


def hub_api(request: Request) -> HubApi:
    api: HubApi = request.app.state.hub_api
    return api


def anonymous_csrf(request: Request) -> str:
    """The CSRF token of the pre-session cookie (the sign-in form); '' until the cookie is set."""
    value = request.cookies.get(PRESESSION_COOKIE)
    return csrf_token_for(value) if value else ""


async def current_viewer(request: Request) -> Viewer:
    """The signed-in person; :class:`SignInRequired` without a valid session. Checks CSRF on writes."""
    token = request.cookies.get(SESSION_COOKIE)
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise SignInRequired(next_path)
    api = hub_api(request).as_person(token)
    try:
        me = Me.model_validate(await api.get("/me"))
    except AuthenticationError as exc:
        raise SignInRequired(next_path) from exc
    await check_csrf(request, token)
    return Viewer(me=me, api=api, csrf=csrf_token_for(token))


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


def sign_in_url(next_path: str) -> str:
    return f"/portal/sign-in?next={quote(next_path, safe='/')}"
