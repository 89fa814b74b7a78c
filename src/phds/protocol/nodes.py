"""Nodes: one per hospital, pulling work from the hub."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from phds.protocol.common import WireModel


class NodeMetadata(WireModel):
    """What a node tells the hub about itself; public, never secret."""

    software_version: str = Field(default="", max_length=50)
    description: str = Field(default="", max_length=500)
    extra: dict[str, Any] = Field(default_factory=dict, description="Further public facts, small.")


class NodeInfo(WireModel):
    """A node as the hub sees it. ``name`` is the hospital's slug."""

    id: uuid.UUID
    name: str
    hospital: str
    metadata: NodeMetadata
    enrolled_at: datetime
    last_seen_at: datetime | None
    public_key: str | None = Field(default=None, description="Pinned at enrolment; signs every release")
    polling_since: datetime | None = Field(
        default=None, description="When the node's open long poll for tasks began; None when it has none"
    )
