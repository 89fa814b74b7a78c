"""Signing in and out, the home page, and changing one's password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from phds.errors import AuthenticationError, InputError
from phds.protocol.tokens import TokenIssued
from phds.web.kit import PRESESSION_COOKIE, check_csrf, cookie_flags, csrf_token_for, new_presession
from phds.web.render import page
from phds.web.session import SESSION_COOKIE, CurrentViewer, hub_api

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a portal path only (no open redirect to another site)."""
    if target and target.startswith("/portal") and not target.startswith("//") and "\\" not in target:
        return target
    return "/portal/"


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, next: str = "/portal/") -> Response:
    """The sign-in page; sets the pre-session cookie its CSRF token is derived from."""
    presession = request.cookies.get(PRESESSION_COOKIE) or new_presession()
    response = page(request, "sign_in.html", None, next=safe_next(next), csrf=csrf_token_for(presession))
    response.set_cookie(PRESESSION_COOKIE, presession, **cookie_flags())
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/portal/",
) -> Response:
    """Check the form's token, ask the hub for a session, set the session cookie, go to *next*."""
    presession = request.cookies.get(PRESESSION_COOKIE)
    await check_csrf(request, presession)
    try:
        issued = TokenIssued.model_validate(
            await hub_api(request).as_person(None).post("/sessions", {"email": email, "password": password})
        )
    except (AuthenticationError, InputError) as exc:
        message = exc.message if isinstance(exc, AuthenticationError) else "enter your email and password"
        return page(
            request,
            "sign_in.html",
            None,
            status_code=401,
            next=safe_next(next),
            error=message,
            email=email,
            csrf=csrf_token_for(presession or ""),
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    lifetime = int((issued.info.expires_at - issued.info.created_at).total_seconds())
    response.set_cookie(SESSION_COOKIE, issued.token, **cookie_flags(max_age=lifetime))
    response.delete_cookie(PRESESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.post("/sign-out")
async def sign_out(viewer: CurrentViewer) -> Response:
    """Revoke the session at the hub and clear the cookie."""
    await viewer.api.delete("/sessions/current")
    response = RedirectResponse("/portal/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, viewer: CurrentViewer) -> Response:
    """The start page of each role: recent studies; for a steward, their node as it reported itself."""
    studies = await viewer.api.get("/studies")
    node, heads = None, []
    if viewer.role == "steward":
        nodes = await viewer.api.get("/nodes")
        node = nodes[0] if nodes else None
        if node is not None:
            heads = (await viewer.api.get(f"/nodes/{node['hospital']}/audit-heads"))[-3:]
    return page(request, "home.html", viewer, studies=studies[:10], node=node, heads=heads)


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, viewer: CurrentViewer) -> Response:
    """The person, their organisation, and the password form."""
    return page(request, "account.html", viewer)


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(
    request: Request,
    viewer: CurrentViewer,
    current_password: Annotated[str, Form()],
    new_password: Annotated[str, Form()],
) -> Response:
    """Change the password through ``PUT /me/password``; the form shows what to fix on failure."""
    try:
        await viewer.api.put(
            "/me/password", {"current_password": current_password, "new_password": new_password}
        )
    except InputError as exc:
        return page(request, "account.html", viewer, status_code=422, error=exc.message, field=exc.field)
    return page(request, "account.html", viewer, notice="Your password was changed.")
