"""The operator's organisations: list and add them, and each one's people, tokens, node and billing profile.

Admins only: every page calls ``viewer.require("admin")`` before it asks the hub anything, and the hub
checks the role again on every call it is asked (``/api/v1/organisations``, ``/users``, ``/tokens``,
``/nodes``, ``/billing/profiles``). The people's actions (passwords, tokens, enrolment) are in
:mod:`phds.web.pages.operator_people`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import NotFound
from phds.protocol.billing import BillingProfile
from phds.protocol.nodes import NodeInfo
from phds.protocol.organisations import Organisation, OrganisationKind, RequesterCategory
from phds.protocol.tokens import TokenInfo
from phds.protocol.users import Role, User
from phds.web.pages.outcome import FIXABLE, NO_OUTCOME, Outcome, done, segment, with_flash
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

router = APIRouter(prefix="/operator")

ROLES_OF_KIND: dict[str, list[str]] = {
    OrganisationKind.OPERATOR.value: [Role.ADMIN.value],
    OrganisationKind.HOSPITAL.value: [Role.STEWARD.value],
    OrganisationKind.REQUESTER.value: [Role.REQUESTER.value],
}
"""The roles a person of each kind of organisation may have (the hub refuses any other)."""


async def organisations_page(
    request: Request, viewer: Viewer, outcome: Outcome = NO_OUTCOME, form: dict[str, str] | None = None
) -> Response:
    viewer.require("admin")
    organisations = [Organisation.model_validate(o) for o in await viewer.api.get("/organisations")]
    users = [User.model_validate(u) for u in await viewer.api.get("/users")]
    nodes = {n.hospital: n for n in (NodeInfo.model_validate(n) for n in await viewer.api.get("/nodes"))}
    people: dict[str, int] = {}
    for user in users:
        people[user.organisation] = people.get(user.organisation, 0) + 1
    return page(
        request,
        "operator_organisations.html",
        viewer,
        status_code=outcome.status,
        organisations=sorted(organisations, key=lambda o: (o.kind.value, o.name)),
        people=people,
        nodes=nodes,
        kinds=[k.value for k in OrganisationKind],
        categories=[c.value for c in RequesterCategory],
        outcome=outcome,
        form=form or {},
    )


@router.get("/organisations", response_class=HTMLResponse)
async def organisations(request: Request, viewer: CurrentViewer) -> Response:
    """Every organisation: kind, country or category, people, node."""
    return await with_flash(request, lambda outcome: organisations_page(request, viewer, outcome))


@router.post("/organisations", response_class=HTMLResponse)
async def add_organisation(
    request: Request,
    viewer: CurrentViewer,
    name: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
) -> Response:
    """Add a hospital (with its country) or a requester (with its category): ``POST /organisations``."""
    viewer.require("admin")
    body: dict[str, Any] = {"name": name.strip(), "display_name": display_name, "kind": kind}
    if country.strip():
        body["country"] = country.strip().upper()
    if kind == OrganisationKind.REQUESTER.value and category:
        body["category"] = category
    try:
        created = Organisation.model_validate(await viewer.api.post("/organisations", body))
    except FIXABLE as exc:
        form = {"name": name, "display_name": display_name, "kind": kind, "country": country}
        return await organisations_page(
            request, viewer, Outcome.failed("add-organisation", exc), form | {"category": category}
        )
    notice = f"Added the {created.kind.value} {created.display_name} ({created.name})."
    return done(request, "/portal/operator/organisations", "add-organisation", notice)


async def organisation_page(
    request: Request,
    viewer: Viewer,
    name: str,
    outcome: Outcome = NO_OUTCOME,
    profile_form: dict[str, Any] | None = None,
) -> Response:
    """One organisation: its people with their tokens, its node's credentials, its billing profile."""
    viewer.require("admin")
    name = segment(name, "organisation")
    organisation = Organisation.model_validate(await viewer.api.get(f"/organisations/{name}"))
    users = [
        u for u in (User.model_validate(u) for u in await viewer.api.get("/users")) if u.organisation == name
    ]
    tokens = [TokenInfo.model_validate(t) for t in await viewer.api.get("/tokens")]
    node = next(
        (
            n
            for n in (NodeInfo.model_validate(n) for n in await viewer.api.get("/nodes"))
            if n.hospital == name
        ),
        None,
    )
    try:
        profile: BillingProfile | None = BillingProfile.model_validate(
            await viewer.api.get(f"/billing/profiles/{name}")
        )
    except NotFound:
        profile = None
    now = datetime.now(UTC)
    states = {t.id: token_state(t, now) for t in tokens}
    shown = [t for t in tokens if t.purpose == "api" or states[t.id] == "active"]  # not every old session
    by_user: dict[str, list[TokenInfo]] = {str(u.id): [] for u in users}
    for token in shown:
        if token.user_id is not None and str(token.user_id) in by_user:
            by_user[str(token.user_id)].append(token)
    node_tokens = [t for t in shown if node is not None and t.node_id == node.id]
    return page(
        request,
        "operator_organisation.html",
        viewer,
        status_code=outcome.status,
        organisation=organisation,
        users=users,
        tokens=by_user,
        node=node,
        node_tokens=node_tokens,
        token_state=states,
        profile=profile_form or (profile.model_dump(mode="json") if profile else {}),
        has_profile=profile is not None,
        roles=ROLES_OF_KIND[organisation.kind.value],
        hub_url=f"{request.url.scheme}://{request.url.netloc}",
        outcome=outcome,
    )


def token_state(token: TokenInfo, now: datetime) -> str:
    """``revoked``, ``expired`` or ``active``."""
    if token.revoked_at is not None:
        return "revoked"
    expires = token.expires_at if token.expires_at.tzinfo else token.expires_at.replace(tzinfo=UTC)
    return "expired" if expires <= now else "active"


@router.get("/organisations/{name}", response_class=HTMLResponse)
async def organisation(request: Request, viewer: CurrentViewer, name: str) -> Response:
    return await with_flash(request, lambda outcome: organisation_page(request, viewer, name, outcome))


@router.post("/organisations/{name}/profile", response_class=HTMLResponse)
async def set_profile(
    request: Request,
    viewer: CurrentViewer,
    name: str,
    legal_name: Annotated[str, Form()] = "",
    address_lines: Annotated[str, Form()] = "",
    postcode: Annotated[str, Form()] = "",
    city: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    vat_id: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    legal_id: Annotated[str, Form()] = "",
    iban: Annotated[str, Form()] = "",
    micro_enterprise: Annotated[bool, Form()] = False,
) -> Response:
    """Set the organisation's invoicing details (``PUT /billing/profiles/{name}``); one address line a row."""
    viewer.require("admin")
    name = segment(name, "organisation")
    optional = {"vat_id": vat_id, "email": email, "legal_id": legal_id, "iban": iban}
    body: dict[str, Any] = {
        "legal_name": legal_name.strip(),
        "address_lines": [line.strip() for line in address_lines.splitlines() if line.strip()],
        "postcode": postcode.strip(),
        "city": city.strip(),
        "country": country.strip().upper(),
        "micro_enterprise": micro_enterprise,
        **{key: value.strip() for key, value in optional.items() if value.strip()},
    }
    try:
        await viewer.api.put(f"/billing/profiles/{name}", body)
    except FIXABLE as exc:
        return await organisation_page(request, viewer, name, Outcome.failed("profile", exc), body)
    return done(
        request, f"/portal/operator/organisations/{name}", "profile", f"Saved the billing profile of {name}."
    )
