"""People: network admins, requesters (researchers) and hospitals' data stewards."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints

from phds.protocol.common import DisplayName, Slug, WireModel
from phds.protocol.organisations import OrganisationKind

Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"),
]


class Role(enum.StrEnum):
    """A person's role; it fixes which kind of organisation the person belongs to."""

    ADMIN = "admin"
    REQUESTER = "requester"
    STEWARD = "steward"

    @property
    def organisation_kind(self) -> OrganisationKind:
        """The kind of organisation a person with this role must belong to."""
        return {
            Role.ADMIN: OrganisationKind.OPERATOR,
            Role.REQUESTER: OrganisationKind.REQUESTER,
            Role.STEWARD: OrganisationKind.HOSPITAL,
        }[self]


class UserCreate(WireModel):
    """A person to add to an organisation (named by its slug)."""

    email: Email
    display_name: DisplayName
    role: Role
    organisation: Slug


class User(WireModel):
    """A person as the hub stores it."""

    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    organisation: str
    created_at: datetime
