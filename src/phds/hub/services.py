"""The hub's operations and their rules, shared by the HTTP API and the ``phds hub`` CLI.

Each function works inside a caller's unit of work and leaves authorisation to the caller
(:mod:`phds.hub.auth` for the API; the CLI runs with the database's own authority).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from phds.errors import AuthenticationError, Conflict, InputError, NotFound, PayloadTooLarge, SignatureInvalid
from phds.hub.auth import ENROLMENT_PREFIX, new_token, parse_token, secret_matches
from phds.hub.settings import HubSettings
from phds.hub.store import UnitOfWork
from phds.hub.store.models import (
    ApiTokenRow,
    AuditHeadRow,
    CatalogueEntryRow,
    EnrolmentTokenRow,
    NodeRow,
    OrganisationRow,
    RevocationListRow,
    UserRow,
)
from phds.protocol.enrolment import EnrolRequest
from phds.protocol.organisations import OrganisationCreate, OrganisationKind
from phds.protocol.trust import RevocationList, SignedAuditHead
from phds.protocol.users import Role, UserCreate
from phds.trust.envelopes import verify_audit_head
from phds.trust.keys import PublicKey

log = logging.getLogger(__name__)

RESERVED_NAMES = frozenset({"me", "enrol", "keys"})
"""Slugs that would shadow API paths such as ``/nodes/me``."""


def create_organisation(uow: UnitOfWork, spec: OrganisationCreate) -> OrganisationRow:
    """Add an organisation; :class:`Conflict` if its name is taken."""
    if spec.name in RESERVED_NAMES:
        raise InputError(f"{spec.name!r} is reserved", field="name")
    if uow.organisations.by_name(spec.name) is not None:
        raise Conflict(f"organisation {spec.name!r} already exists")
    row = uow.organisations.add(
        OrganisationRow(
            name=spec.name,
            display_name=spec.display_name,
            kind=spec.kind.value,
            country=spec.country,
            category=spec.category.value if spec.category else None,
        )
    )
    log.info("organisation %s (%s) created", row.name, row.kind)
    return row


def get_organisation(uow: UnitOfWork, name: str) -> OrganisationRow:
    """The organisation called *name*; :class:`NotFound` otherwise."""
    row = uow.organisations.by_name(name)
    if row is None:
        raise NotFound(f"no organisation {name!r}")
    return row


def create_user(uow: UnitOfWork, spec: UserCreate) -> UserRow:
    """Add a person; the role must fit the organisation's kind (admin→operator, steward→hospital...)."""
    org = uow.organisations.by_name(spec.organisation)
    if org is None:
        raise InputError(f"no organisation {spec.organisation!r}", field="organisation")
    wanted = spec.role.organisation_kind
    if org.kind != wanted.value:
        raise InputError(
            f"a {spec.role.value} belongs to a {wanted.value} organisation; {org.name!r} is a {org.kind}",
            field="role",
        )
    if uow.users.by_email(spec.email) is not None:
        raise Conflict(f"a user with email {spec.email!r} already exists")
    row = uow.users.add(
        UserRow(
            organisation_id=org.id, email=spec.email, display_name=spec.display_name, role=spec.role.value
        )
    )
    log.info("user %s (%s of %s) created", row.id, row.role, org.name)
    return row


def issue_token(
    uow: UnitOfWork,
    *,
    expires_at: datetime,
    user_id: uuid.UUID | None = None,
    node_id: uuid.UUID | None = None,
    name: str = "",
    purpose: str = "api",
) -> tuple[str, ApiTokenRow]:
    """A new API token for a person or a node: ``(secret token, stored row)``."""
    if (user_id is None) == (node_id is None):
        raise ValueError("a token belongs to exactly one of a user and a node")
    if user_id is not None and uow.users.get(user_id) is None:
        raise NotFound(f"no user {user_id}")
    token_id, digest, token = new_token()
    row = uow.tokens.add(
        ApiTokenRow(
            id=token_id,
            secret_sha256=digest,
            name=name,
            user_id=user_id,
            node_id=node_id,
            expires_at=expires_at,
            purpose=purpose,
        )
    )
    log.info("API token %s issued to %s %s", token_id, "user" if user_id else "node", user_id or node_id)
    return token, row


def revoke_token(uow: UnitOfWork, token_id: str, now: datetime) -> ApiTokenRow:
    """Revoke a token; :class:`NotFound` if unknown, :class:`Conflict` if already revoked."""
    row = uow.tokens.get(token_id)
    if row is None:
        raise NotFound(f"no API token {token_id!r}")
    if not uow.tokens.revoke(token_id, now):
        raise Conflict(f"API token {token_id} is already revoked")
    log.info("API token %s revoked", token_id)
    return row


def bootstrap_admin(
    uow: UnitOfWork, *, operator: OrganisationCreate, email: str, display_name: str, expires_at: datetime
) -> tuple[str, UserRow]:
    """The first network admin and its operator organisation; :class:`Conflict` if an admin exists."""
    if uow.users.count(role=Role.ADMIN.value) > 0:
        raise Conflict("the hub already has a network admin")
    if operator.kind is not OrganisationKind.OPERATOR:
        raise InputError("the first organisation must be the network operator", field="kind")
    org = uow.organisations.by_name(operator.name) or create_organisation(uow, operator)
    user = create_user(
        uow, UserCreate(email=email, display_name=display_name, role=Role.ADMIN, organisation=org.name)
    )
    token, _ = issue_token(uow, user_id=user.id, name="bootstrap", expires_at=expires_at)
    return token, user


def issue_enrolment_token(
    uow: UnitOfWork, *, hospital: str, expires_at: datetime, created_by: uuid.UUID | None
) -> tuple[str, EnrolmentTokenRow]:
    """A one-time enrolment token for *hospital*'s node: ``(secret token, stored row)``."""
    org = uow.organisations.by_name(hospital)
    if org is None or org.kind != OrganisationKind.HOSPITAL.value:
        raise InputError(f"no hospital {hospital!r}", field="hospital")
    lookup, digest, token = new_token(ENROLMENT_PREFIX)
    row = uow.enrolments.add(
        EnrolmentTokenRow(
            lookup=lookup,
            secret_sha256=digest,
            organisation_id=org.id,
            created_by=created_by,
            expires_at=expires_at,
        )
    )
    log.info("enrolment token %s issued for hospital %s", row.id, hospital)
    return token, row


def enrol_node(
    uow: UnitOfWork, request: EnrolRequest, settings: HubSettings, now: datetime
) -> tuple[str, ApiTokenRow, NodeRow]:
    """Exchange a one-time enrolment token for the node's credential: ``(credential, token row, node)``.

    The token is claimed with one conditional UPDATE, so of two concurrent uses exactly one wins. A
    hospital has one node: re-enrolling it (with a new enrolment token) revokes its old credentials.
    """
    lookup, secret = parse_token(request.enrolment_token, ENROLMENT_PREFIX)
    enrolment = uow.enrolments.by_lookup(lookup)
    if enrolment is None or not secret_matches(secret, enrolment.secret_sha256):
        raise AuthenticationError("unknown or wrong enrolment token")
    if enrolment.used_at is not None:
        raise AuthenticationError(f"enrolment token was already used at {enrolment.used_at.isoformat()}")
    if enrolment.expires_at <= now:
        raise AuthenticationError(f"enrolment token expired at {enrolment.expires_at.isoformat()}")
    if not uow.enrolments.claim(enrolment.id, now):
        raise AuthenticationError("enrolment token was already used")
    metadata = request.metadata.model_dump(mode="json")
    if request.public_key is not None:
        try:
            PublicKey.from_b64(request.public_key)
        except InputError as exc:
            raise InputError(exc.message, field="public_key") from None
    node = uow.nodes.by_organisation(enrolment.organisation_id)
    if node is None:
        node = uow.nodes.add(
            NodeRow(
                organisation_id=enrolment.organisation_id,
                node_metadata=metadata,
                enrolled_at=now,
                public_key=request.public_key,
            )
        )
    else:
        revoked = uow.tokens.revoke_all_of_node(node.id, now)
        node.node_metadata = metadata
        node.public_key = request.public_key  # a new enrolment token (from an admin) pins a new key
        node.enrolled_at = now
        log.warning("node %s re-enrolled; %d old credential(s) revoked", enrolment.organisation.name, revoked)
    enrolment.used_by_node_id = node.id
    credential, token = issue_token(
        uow,
        node_id=node.id,
        name="node credential",
        expires_at=now + timedelta(days=settings.node_token_ttl_days),
    )
    log.info("node of %s enrolled (node %s)", enrolment.organisation.name, node.id)
    return credential, token, node


def publish_catalogue(
    uow: UnitOfWork, *, node_id: uuid.UUID, profile: dict[str, Any], max_bytes: int, now: datetime
) -> CatalogueEntryRow:
    """Store a node's dataset profile as its hospital's newest catalogue entry."""
    try:
        size = len(json.dumps(profile, allow_nan=False, separators=(",", ":")).encode())
    except ValueError as exc:
        raise InputError(f"not valid JSON for the catalogue: {exc}", field="profile") from exc
    if size > max_bytes:
        raise PayloadTooLarge(
            f"profile is {size} bytes; the hub accepts at most {max_bytes}", field="profile"
        )
    node = uow.nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id}")
    return uow.catalogue.add(
        CatalogueEntryRow(
            organisation_id=node.organisation_id,
            node_id=node.id,
            published_at=now,
            size_bytes=size,
            profile=profile,
        )
    )


def record_audit_head(uow: UnitOfWork, *, node_id: uuid.UUID, head: SignedAuditHead, now: datetime) -> None:
    """Keep a node's signed audit head; one that goes backwards means the node's log was truncated."""
    node = uow.nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id}")
    if node.public_key is None:
        raise Conflict("this node enrolled without a key; it cannot report signed audit heads")
    if head.hospital != node.organisation.name:
        raise InputError("the audit head names another hospital", field="hospital")
    try:
        verify_audit_head(head, node.public_key)
    except SignatureInvalid as exc:
        raise InputError(exc.message, field="signature") from None
    last = uow.session.scalars(
        select(AuditHeadRow).where(AuditHeadRow.node_id == node_id).order_by(AuditHeadRow.seq.desc()).limit(1)
    ).first()
    if last is not None and (head.seq < last.seq or (head.seq == last.seq and head.hash != last.hash)):
        log.error(
            "node %s reported audit head %d after %d: its audit log was truncated or rewritten",
            node.organisation.name, head.seq, last.seq,
        )  # fmt: skip
        raise Conflict(
            f"audit head {head.seq} does not extend the last reported head {last.seq}: the node's audit "
            "log was truncated or rewritten"
        )
    if last is not None and head.seq == last.seq:
        return
    uow.session.add(
        AuditHeadRow(node_id=node_id, seq=head.seq, hash=head.hash, head=head.model_dump(mode="json"),
                     received_at=now)
    )  # fmt: skip


def audit_heads(uow: UnitOfWork, *, organisation_id: uuid.UUID, limit: int = 100) -> list[SignedAuditHead]:
    """The newest signed audit heads a hospital's node reported, newest first."""
    node = uow.nodes.by_organisation(organisation_id)
    if node is None:
        return []
    rows = uow.session.scalars(
        select(AuditHeadRow)
        .where(AuditHeadRow.node_id == node.id)
        .order_by(AuditHeadRow.seq.desc())
        .limit(limit)
    )
    return [SignedAuditHead.model_validate(r.head) for r in rows]


def publish_revocations(uow: UnitOfWork, revocations: RevocationList, now: datetime) -> None:
    """Keep a signed revocation list for nodes to fetch; the hub cannot sign one, only relay it (nodes
    verify it against their pinned network keys and ignore anything not newer than what they have)."""
    if uow.session.get(RevocationListRow, revocations.sequence) is not None:
        raise Conflict(f"revocation list {revocations.sequence} was already published")
    uow.session.add(
        RevocationListRow(
            sequence=revocations.sequence, body=revocations.model_dump(mode="json"), published_at=now
        )
    )


def latest_revocations(uow: UnitOfWork) -> RevocationList | None:
    """The newest published revocation list, if any."""
    row = uow.session.scalars(
        select(RevocationListRow).order_by(RevocationListRow.sequence.desc()).limit(1)
    ).first()
    return RevocationList.model_validate(row.body) if row is not None else None
