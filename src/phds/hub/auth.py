"""Authentication (bearer API tokens) and the one authorisation layer of the hub.

Token format: ``phds_<id>_<secret>``, where ``id`` is 16 random hex characters (the primary key, so
lookup is one indexed read) and ``secret`` is 256 random bits, URL-safe base64. The hub stores only
SHA-256 of the secret and compares in constant time. A slow password hash (argon2) would add tens of
milliseconds to every request for no gain: a 256-bit random secret cannot be guessed offline, so a
fast hash of it is as safe as a slow one. Enrolment tokens use ``phdse_<lookup>_<secret>``.

Every endpoint states who may call it with one of the dependencies below (``Admin``, ``AnyUser``,
``NodeCaller``, ``RequesterCaller``, ``Caller``), and scoping to an organisation goes through
:func:`ensure_sees_organisation`, :func:`ensure_sees_study` and the ``*_scope`` helpers, so the rules
live in this file only. A node may read and answer only its own tasks (:mod:`phds.hub.runner` checks
the task's node against the caller and answers 404 otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from phds.errors import AuthenticationError, NotFound, PermissionDenied
from phds.hub.notify import Notifier
from phds.hub.runner import StudyRunner
from phds.hub.settings import HubSettings
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.protocol.organisations import OrganisationKind
from phds.protocol.studies import StudyView
from phds.protocol.tokens import PrincipalKind
from phds.protocol.users import Role

log = logging.getLogger(__name__)

API_PREFIX = "phds"
ENROLMENT_PREFIX = "phdse"
_TOKEN = re.compile(r"^(phdse?)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

Actor = Literal["admin", "requester", "steward", "node"]


def hash_secret(secret: str) -> str:
    """SHA-256 of a token's secret part, hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_token(prefix: str = API_PREFIX) -> tuple[str, str, str]:
    """A fresh token: ``(id, secret_sha256, full_token)``; show ``full_token`` once, store the rest."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return token_id, hash_secret(secret), f"{prefix}_{token_id}_{secret}"


def parse_token(token: str, prefix: str = API_PREFIX) -> tuple[str, str]:
    """``(id, secret)`` of a token; :class:`AuthenticationError` when it is not one of *prefix* kind."""
    match = _TOKEN.match(token.strip())
    if match is None or match.group(1) != prefix:
        kind = "enrolment token" if prefix == ENROLMENT_PREFIX else "API token"
        raise AuthenticationError(f"malformed {kind}: expected '{prefix}_<id>_<secret>'")
    return match.group(2), match.group(3)


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person with a role, or a node bound to its hospital."""

    kind: PrincipalKind
    id: uuid.UUID
    name: str
    role: Role | None
    organisation_id: uuid.UUID
    organisation_name: str
    organisation_kind: OrganisationKind
    token_id: str

    @property
    def actor(self) -> Actor:
        """``admin``, ``requester``, ``steward`` or ``node``: what authorisation rules key on."""
        if self.kind is PrincipalKind.NODE:
            return "node"
        assert self.role is not None
        return self.role.value

    @property
    def is_admin(self) -> bool:
        return self.actor == "admin"


def authenticate(store: HubStore, token: str, settings: HubSettings) -> Principal:
    """The principal holding *token*; :class:`AuthenticationError` if it is wrong, expired or revoked."""
    token_id, secret = parse_token(token)
    now = utcnow()
    stale = timedelta(seconds=settings.token_touch_seconds)
    touch_token = touch_node = False
    with store.unit(read_only=True) as uow:  # most requests only read; the touches follow, when due
        row = uow.tokens.get(token_id)
        if row is None or not secret_matches(secret, row.secret_sha256):
            raise AuthenticationError("unknown or wrong API token")
        if row.revoked_at is not None:
            raise AuthenticationError(f"API token {token_id} was revoked at {row.revoked_at.isoformat()}")
        if row.expires_at <= now:
            raise AuthenticationError(f"API token {token_id} expired at {row.expires_at.isoformat()}")
        touch_token = row.last_used_at is None or now - row.last_used_at >= stale
        if row.user_id is not None:
            user = uow.users.get(row.user_id)
            assert user is not None, "foreign key guarantees the user"
            org = user.organisation
            principal = Principal(
                PrincipalKind.USER, user.id, user.email, Role(user.role), org.id, org.name,
                OrganisationKind(org.kind), token_id,
            )  # fmt: skip
        else:
            assert row.node_id is not None, "check constraint guarantees user or node"
            node = uow.nodes.get(row.node_id)
            assert node is not None
            touch_node = node.last_seen_at is None or now - node.last_seen_at >= stale
            org = node.organisation
            principal = Principal(
                PrincipalKind.NODE, node.id, org.name, None, org.id, org.name,
                OrganisationKind(org.kind), token_id,
            )  # fmt: skip
    if touch_token or touch_node:
        with store.unit() as uow:
            if touch_token:
                uow.tokens.touch(token_id, now)
            if touch_node:
                uow.nodes.touch(principal.id, now)
    return principal


_bearer = HTTPBearer(
    auto_error=False, description="An API token: 'Authorization: Bearer phds_<id>_<secret>'."
)


def get_store(request: Request) -> HubStore:
    """The app's store."""
    store: HubStore = request.app.state.store
    return store


def get_settings(request: Request) -> HubSettings:
    """The app's settings."""
    settings: HubSettings = request.app.state.settings
    return settings


def get_runner(request: Request) -> StudyRunner:
    """The app's study runner."""
    runner: StudyRunner = request.app.state.runner
    return runner


def get_notifier(request: Request) -> Notifier:
    """The app's long-poll notifier."""
    notifier: Notifier = request.app.state.notifier
    return notifier


Store = Annotated[HubStore, Depends(get_store)]
Settings = Annotated[HubSettings, Depends(get_settings)]
Runner = Annotated[StudyRunner, Depends(get_runner)]
Notifications = Annotated[Notifier, Depends(get_notifier)]


def current_principal(
    store: Store,
    settings: Settings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller; 401 without a valid bearer token."""
    if credentials is None:
        raise AuthenticationError("authentication required: send 'Authorization: Bearer <API token>'")
    return authenticate(store, credentials.credentials, settings)


def allow(*actors: Actor) -> Any:
    """A dependency that admits only the given actors (403 for other authenticated callers)."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.actor not in actors:
            raise PermissionDenied(f"{principal.actor} may not do this; allowed: {', '.join(actors)}")
        return principal

    return Depends(dependency)


Caller = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, allow("admin")]
AnyUser = Annotated[Principal, allow("admin", "requester", "steward")]
NodeCaller = Annotated[Principal, allow("node")]
AdminOrSteward = Annotated[Principal, allow("admin", "steward")]
RequesterCaller = Annotated[Principal, allow("requester")]


def ensure_sees_organisation(principal: Principal, organisation_id: uuid.UUID, what: str) -> None:
    """Admins see every organisation's things; everyone else only their own (404 otherwise)."""
    if not principal.is_admin and principal.organisation_id != organisation_id:
        raise NotFound(f"no {what} visible to you")


def organisation_scope(principal: Principal) -> uuid.UUID | None:
    """The one organisation whose things *principal* may list, or None for all (admins)."""
    return None if principal.is_admin else principal.organisation_id


def catalogue_scope(principal: Principal) -> uuid.UUID | None:
    """Requesters and admins browse every hospital's entry; a steward only its own hospital's."""
    return principal.organisation_id if principal.actor == "steward" else None


def study_scope(principal: Principal) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """Which studies *principal* may list: ``(requesting organisation, targeted hospital)`` filters.

    Admins see all; a requester its organisation's studies; a steward the studies that target its
    hospital. Nodes see tasks, never studies (their routes refuse them with 403).
    """
    if principal.is_admin:
        return None, None
    if principal.actor == "steward":
        return None, principal.organisation_id
    return principal.organisation_id, None


def ensure_sees_study(
    principal: Principal, organisation_id: uuid.UUID, target_ids: set[uuid.UUID], study_id: str
) -> None:
    """404 unless *principal* is in :func:`study_scope` of this study."""
    requesting, targeted = study_scope(principal)
    if (requesting is not None and requesting != organisation_id) or (
        targeted is not None and targeted not in target_ids
    ):
        raise NotFound(f"no study {study_id} visible to you")


def redact_for(principal: Principal, view: StudyView) -> StudyView:
    """A steward sees a study that targets its hospital, but not its result: that belongs to the
    requester, and holds other hospitals' released aggregates."""
    if principal.actor == "steward" and view.result is not None:
        return view.model_copy(update={"result": None})
    return view
