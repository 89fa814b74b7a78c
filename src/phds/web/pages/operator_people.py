"""The operator's actions on an organisation's people and credentials (admins only).

Add a person, set or reset their password (``PUT /users/{id}/password``, which also unlocks a locked
account), issue and revoke API tokens (``/tokens``), and issue a hospital's one-time node enrolment token
(``POST /enrolment-tokens``). A secret is shown once, on the page that issued it, and never again: the
hub stores only its hash, and the page is sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import shlex
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import InputError
from phds.protocol.enrolment import EnrolmentTokenIssued
from phds.protocol.tokens import TokenInfo, TokenIssued
from phds.protocol.users import User
from phds.web.pages.operator import organisation_page
from phds.web.pages.outcome import FIXABLE, Outcome, done, segment
from phds.web.session import CurrentViewer, Viewer

router = APIRouter(prefix="/operator")


def _user_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InputError(f"not a person's id: {value!r}", field="user_id") from None


async def _person(viewer: Viewer, user_id: str) -> User:
    return User.model_validate(await viewer.api.get(f"/users/{_user_id(user_id)}"))


@router.post("/organisations/{name}/people", response_class=HTMLResponse)
async def add_person(
    request: Request,
    viewer: CurrentViewer,
    name: str,
    email: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
) -> Response:
    """Add a person to the organisation (``POST /users``); the role must fit its kind."""
    viewer.require("admin")
    name = segment(name, "organisation")
    body = {"email": email.strip(), "display_name": display_name, "role": role, "organisation": name}
    try:
        user = User.model_validate(await viewer.api.post("/users", body))
    except FIXABLE as exc:
        return await organisation_page(request, viewer, name, Outcome.failed("add-person", exc))
    notice = (
        f"Added {user.display_name} <{user.email}> as {user.role.value}. Set a password or issue a token."
    )
    return done(request, f"/portal/operator/organisations/{name}", "add-person", notice)


@router.post("/people/{user_id}/password", response_class=HTMLResponse)
async def set_password(
    request: Request,
    viewer: CurrentViewer,
    user_id: str,
    new_password: Annotated[str, Form()] = "",
) -> Response:
    """Set or reset the person's password; the hub checks its strength and unlocks the account."""
    viewer.require("admin")
    user = await _person(viewer, user_id)
    form = f"password-{user.id}"
    try:
        await viewer.api.put(f"/users/{user.id}/password", {"new_password": new_password})
    except FIXABLE as exc:
        return await organisation_page(request, viewer, user.organisation, Outcome.failed(form, exc))
    notice = f"Set the password of {user.email}; give it to them over a channel you trust."
    return done(request, f"/portal/operator/organisations/{user.organisation}", form, notice)


@router.post("/people/{user_id}/tokens", response_class=HTMLResponse)
async def issue_token(
    request: Request,
    viewer: CurrentViewer,
    user_id: str,
    token_name: Annotated[str, Form()] = "",
    ttl_days: Annotated[str, Form()] = "",
) -> Response:
    """Issue an API token for the person (``POST /tokens``); its secret is on this page only."""
    viewer.require("admin")
    user = await _person(viewer, user_id)
    form = f"token-{user.id}"
    body: dict[str, Any] = {"user_id": str(user.id), "name": token_name.strip()}
    if ttl_days.strip():
        body["ttl_days"] = ttl_days.strip()
    try:
        issued = TokenIssued.model_validate(await viewer.api.post("/tokens", body))
    except FIXABLE as exc:
        return await organisation_page(request, viewer, user.organisation, Outcome.failed(form, exc))
    notice = (
        f"Issued API token {issued.info.name or issued.info.id} for {user.email}, valid until "
        f"{issued.info.expires_at:%Y-%m-%d}. Copy it now: it is shown only once."
    )
    command = f"export PHDS_TOKEN={shlex.quote(issued.token)}"
    return await organisation_page(
        request, viewer, user.organisation, Outcome.done(form, notice, secret=issued.token, command=command)
    )


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke_token(
    request: Request,
    viewer: CurrentViewer,
    token_id: str,
    organisation: Annotated[str, Form()] = "",
) -> Response:
    """Revoke a person's or a node's token at once (``DELETE /tokens/{id}``)."""
    viewer.require("admin")
    organisation = segment(organisation, "organisation")
    try:
        token = TokenInfo.model_validate(await viewer.api.delete(f"/tokens/{segment(token_id, 'token_id')}"))
    except FIXABLE as exc:
        return await organisation_page(request, viewer, organisation, Outcome.failed("revoked", exc))
    what = "node credential" if token.node_id is not None else f"{token.purpose} token"
    notice = f"Revoked the {what} {token.name or token.id}; it no longer works."
    return done(request, f"/portal/operator/organisations/{organisation}", "revoked", notice)


@router.post("/organisations/{name}/enrolment-token", response_class=HTMLResponse)
async def issue_enrolment_token(
    request: Request,
    viewer: CurrentViewer,
    name: str,
    ttl_hours: Annotated[str, Form()] = "",
) -> Response:
    """A one-time token the hospital's node enrols with, and the command its IT runs with it."""
    viewer.require("admin")
    name = segment(name, "organisation")
    body: dict[str, Any] = {"hospital": name}
    if ttl_hours.strip():
        body["ttl_hours"] = ttl_hours.strip()
    try:
        issued = EnrolmentTokenIssued.model_validate(await viewer.api.post("/enrolment-tokens", body))
    except FIXABLE as exc:
        return await organisation_page(request, viewer, name, Outcome.failed("enrolment", exc))
    hub_url = f"{request.url.scheme}://{request.url.netloc}"
    command = (
        f"phds node enrol --config node.toml --hub {shlex.quote(hub_url)} --token {shlex.quote(issued.token)}"
    )
    notice = (
        f"Issued a one-time enrolment token for {name}'s node, valid until "
        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC. Give the hospital this command over a channel you trust; "
        "it is shown only once and works once."
    )
    return await organisation_page(
        request, viewer, name, Outcome.done("enrolment", notice, secret=issued.token, command=command)
    )
