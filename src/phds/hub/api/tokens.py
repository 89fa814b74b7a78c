"""``/api/v1/tokens``: people issue, list and revoke their API tokens; admins anyone's."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from phds.errors import NotFound, PermissionDenied
from phds.hub import services, wire
from phds.hub.auth import AnyUser, Settings, Store
from phds.hub.store.models import utcnow
from phds.protocol.tokens import TokenCreate, TokenInfo, TokenIssued

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", response_model=TokenIssued, status_code=201)
def issue_token(spec: TokenCreate, caller: AnyUser, store: Store, settings: Settings) -> TokenIssued:
    """Issue an API token for the caller, or (admins only) for another person. The secret is shown once."""
    user_id = spec.user_id or caller.id
    if user_id != caller.id and not caller.is_admin:
        raise PermissionDenied("only admins issue tokens for other people")
    ttl = timedelta(days=spec.ttl_days or settings.user_token_ttl_days)
    with store.unit() as uow:
        secret, row = services.issue_token(uow, user_id=user_id, name=spec.name, expires_at=utcnow() + ttl)
        return TokenIssued(token=secret, info=wire.token(row))


@router.get("", response_model=list[TokenInfo])
def list_tokens(caller: AnyUser, store: Store) -> list[TokenInfo]:
    """Every token (people's and nodes') for admins; the caller's own for everyone else. No secrets."""
    with store.unit() as uow:
        rows = uow.tokens.list(user_ids=None if caller.is_admin else [caller.id])
        return [wire.token(row) for row in rows]


@router.delete("/{token_id}", response_model=TokenInfo)
def revoke_token(token_id: str, caller: AnyUser, store: Store) -> TokenInfo:
    """Revoke a token at once; people revoke their own, admins any (including nodes' credentials)."""
    with store.unit() as uow:
        row = uow.tokens.get(token_id)
        if row is None or (not caller.is_admin and row.user_id != caller.id):
            raise NotFound(f"no API token {token_id!r} visible to you")
        services.revoke_token(uow, token_id, utcnow())
        return wire.token(row)
