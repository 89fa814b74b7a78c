"""Signing in with the one-time link, asking for a new link, and signing out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from phds.node.console.render import HOME, page
from phds.node.console.session import (
    LINK_SECONDS,
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    CurrentSteward,
    Sessions,
    announce_link,
    session_cookie_flags,
)
from phds.web.kit import check_csrf, csrf_token_for, new_presession

router = APIRouter()


@router.get("/")
async def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, token: str | None = None, out: bool = False) -> Response:
    """Spend a sign-in token for a session; without a (valid) one, say how to get a link."""
    sessions: Sessions = request.app.state.sessions
    if token:
        session_id = sessions.redeem(token)
        if session_id is not None:
            response = RedirectResponse(HOME, status_code=303)
            response.set_cookie(SESSION_COOKIE, session_id, **session_cookie_flags())
            response.delete_cookie(PRESESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
            return response
    else:
        current = request.cookies.get(SESSION_COOKIE)
        if current and sessions.touch(current):
            return RedirectResponse(HOME, status_code=303)
    error = (
        "This sign-in link does not work: it was used already, is older than "
        f"{LINK_SECONDS // 60} minutes, or was replaced by a newer link."
        if token
        else None
    )
    return _sign_in_page(request, status_code=401 if token else 200, error=error, signed_out=out)


@router.post("/sign-in/new-link", response_class=HTMLResponse)
async def new_link(request: Request) -> Response:
    """Print a new sign-in link in the console's terminal (only whoever can read it may sign in)."""
    await check_csrf(request, request.cookies.get(PRESESSION_COOKIE))
    announce_link(request.app)
    return _sign_in_page(request, link_sent=True)


@router.post("/sign-out")
async def sign_out(request: Request, steward: CurrentSteward) -> Response:
    """End the session here and clear its cookie."""
    sessions: Sessions = request.app.state.sessions
    sessions.end(steward.session_id)
    response = RedirectResponse("/sign-in?out=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _sign_in_page(request: Request, *, status_code: int = 200, **context: object) -> Response:
    presession = request.cookies.get(PRESESSION_COOKIE) or new_presession()
    response = page(
        request,
        "console_sign_in.html",
        None,
        status_code=status_code,
        csrf=csrf_token_for(presession),
        link_minutes=LINK_SECONDS // 60,
        **context,
    )
    response.set_cookie(PRESESSION_COOKIE, presession, **session_cookie_flags(max_age=None))
    return response
