"""``GET /api/v1/me``: who the caller's token belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from phds.hub.auth import Caller
from phds.protocol.principals import Me

router = APIRouter(tags=["principals"])


@router.get("/me", response_model=Me)
def me(caller: Caller) -> Me:
    """The authenticated person or node."""
    return Me(
        kind=caller.kind,
        id=caller.id,
        name=caller.name,
        role=caller.role,
        organisation=caller.organisation_name,
        organisation_kind=caller.organisation_kind,
        token_id=caller.token_id,
    )
