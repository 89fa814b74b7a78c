"""API tokens: bearer secrets for people and nodes, shown once and stored hashed."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import Field

from phds.protocol.common import WireModel


class PrincipalKind(enum.StrEnum):
    """Who holds a credential."""

    USER = "user"
    NODE = "node"


class TokenCreate(WireModel):
    """Issue an API token. ``user_id`` defaults to the caller; only admins issue for others."""

    user_id: uuid.UUID | None = None
    name: str = Field(default="", max_length=100, description="A label to recognise the token by.")
    ttl_days: int | None = Field(
        default=None, ge=1, le=3650, description="Lifetime in days; the hub's default when omitted."
    )


class TokenInfo(WireModel):
    """A token's metadata; never the secret."""

    id: str
    name: str
    purpose: str = Field(default="api", description="'api' for machines, 'session' for a portal sign-in.")
    principal_kind: PrincipalKind
    user_id: uuid.UUID | None
    node_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenIssued(WireModel):
    """A newly issued token; ``token`` is the secret and is never shown again."""

    token: str
    info: TokenInfo
