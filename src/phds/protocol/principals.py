"""Who is calling: ``GET /api/v1/me``."""

from __future__ import annotations

import uuid

from phds.protocol.common import WireModel
from phds.protocol.organisations import OrganisationKind
from phds.protocol.tokens import PrincipalKind
from phds.protocol.users import Role


class Me(WireModel):
    """The authenticated principal: a person (with a role) or a node."""

    kind: PrincipalKind
    id: uuid.UUID
    name: str
    role: Role | None
    organisation: str
    organisation_kind: OrganisationKind
    token_id: str
