"""``/api/v1/users``: admins add people; people see the members of their own organisation."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from phds.errors import NotFound
from phds.hub import services, wire
from phds.hub.auth import Admin, AnyUser, Store, ensure_sees_organisation, organisation_scope
from phds.protocol.users import User, UserCreate

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", response_model=User, status_code=201)
def create_user(spec: UserCreate, _admin: Admin, store: Store) -> User:
    """Add a person; the role must fit the organisation (steward→hospital, requester→requester)."""
    with store.unit() as uow:
        return wire.user(services.create_user(uow, spec))


@router.get("", response_model=list[User])
def list_users(caller: AnyUser, store: Store) -> list[User]:
    """Every person for admins; the members of the caller's organisation for everyone else."""
    with store.unit() as uow:
        return [wire.user(row) for row in uow.users.list(organisation_id=organisation_scope(caller))]


@router.get("/{user_id}", response_model=User)
def get_user(user_id: uuid.UUID, caller: AnyUser, store: Store) -> User:
    """One person; people of other organisations are invisible (404) to non-admins."""
    with store.unit() as uow:
        row = uow.users.get(user_id)
        if row is None:
            raise NotFound(f"no user {user_id}")
        ensure_sees_organisation(caller, row.organisation_id, f"user {user_id}")
        return wire.user(row)
