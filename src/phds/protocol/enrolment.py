"""Node enrolment: a one-time token issued by an admin, exchanged by the node for its credential."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from phds.protocol.common import Slug, WireModel
from phds.protocol.nodes import NodeInfo, NodeMetadata


class EnrolmentTokenCreate(WireModel):
    """Ask for an enrolment token for a hospital (named by its slug)."""

    hospital: Slug
    ttl_hours: int | None = Field(
        default=None, ge=1, le=24 * 30, description="Lifetime in hours; the hub's default when omitted."
    )


class EnrolmentTokenIssued(WireModel):
    """A one-time enrolment token; ``token`` is shown once and works once."""

    id: uuid.UUID
    hospital: str
    token: str
    expires_at: datetime


class EnrolRequest(WireModel):
    """What a node sends to enrol: the one-time token and its public metadata."""

    enrolment_token: str = Field(max_length=200)
    metadata: NodeMetadata = NodeMetadata()
    public_key: str | None = Field(
        default=None, max_length=64, description="The node's Ed25519 public key; the hub pins it at enrolment"
    )


class EnrolResponse(WireModel):
    """The node's own long-lived credential (shown once) and how the hub sees the node."""

    credential: str
    credential_expires_at: datetime
    node: NodeInfo
