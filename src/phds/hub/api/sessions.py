"""``/api/v1/sessions`` and passwords: people sign in with email and password and get a session token.

A session token is an ordinary API token with ``purpose = "session"`` and a lifetime of
``session_ttl_hours``; every endpoint treats it like any other token of that person, so the portal has
exactly the rights the person has over the API. Signing out revokes it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from fastapi import APIRouter

from phds.errors import AuthenticationError, Conflict, InputError, NotFound
from phds.hub import services, wire
from phds.hub.auth import Admin, AnyUser, Settings, Store
from phds.hub.passwords import check_password, set_password
from phds.hub.store.models import utcnow
from phds.protocol.sessions import PasswordChange, SignIn
from phds.protocol.tokens import TokenInfo, TokenIssued
from phds.protocol.users import User

log = logging.getLogger(__name__)

router = APIRouter(tags=["sessions"])


@router.post("/sessions", response_model=TokenIssued, status_code=201)
def sign_in(form: SignIn, store: Store, settings: Settings) -> TokenIssued:
    """Exchange email and password for a session token. Failures count toward the account's lockout."""
    now = utcnow()
    failure: AuthenticationError | None = None
    issued: TokenIssued | None = None
    with store.unit() as uow:  # a failure is committed too: it counts toward the lockout
        user = uow.users.by_email(form.email)
        try:
            check_password(
                user,
                form.password,
                now,
                max_failures=settings.sign_in_max_failures,
                lock=timedelta(minutes=settings.sign_in_lock_minutes),
            )
        except AuthenticationError as exc:
            failure = exc
        else:
            assert user is not None
            secret, row = services.issue_token(
                uow,
                user_id=user.id,
                name="portal sign-in",
                purpose="session",
                expires_at=now + timedelta(hours=settings.session_ttl_hours),
            )
            issued = TokenIssued(token=secret, info=wire.token(row))
    if failure is not None:
        log.info("failed sign-in for %s", form.email)
        raise failure
    assert issued is not None
    log.info("%s signed in (session %s)", form.email, issued.info.id)
    return issued


@router.delete("/sessions/current", response_model=TokenInfo)
def sign_out(caller: AnyUser, store: Store) -> TokenInfo:
    """Revoke the session token this request was made with (sign out). An API token is refused
    (409), so a script cannot end its own credential by mistake; revoke those with DELETE /tokens/{id}."""
    with store.unit() as uow:
        current = uow.tokens.get(caller.token_id)
        if current is None or current.purpose != "session":
            raise Conflict("this is an API token, not a sign-in session; revoke it with DELETE /tokens/{id}")
        services.revoke_token(uow, caller.token_id, utcnow())
        row = uow.tokens.get(caller.token_id)
        assert row is not None
        return wire.token(row)


@router.put("/me/password", response_model=User)
def change_own_password(change: PasswordChange, caller: AnyUser, store: Store, settings: Settings) -> User:
    """Change one's own password; the current one must be given when one is set."""
    now = utcnow()
    with store.unit() as uow:
        user = uow.users.get(caller.id)
        assert user is not None
        if user.password_hash is not None:
            if not change.current_password:
                raise InputError("give your current password to change it", field="current_password")
            try:
                check_password(
                    user,
                    change.current_password,
                    now,
                    max_failures=settings.sign_in_max_failures,
                    lock=timedelta(minutes=settings.sign_in_lock_minutes),
                )
            except AuthenticationError as exc:
                raise InputError("the current password is wrong", field="current_password") from exc
        set_password(user, change.new_password, now, field="new_password")
        return wire.user(user)


@router.put("/users/{user_id}/password", response_model=User)
def set_user_password(user_id: uuid.UUID, change: PasswordChange, _admin: Admin, store: Store) -> User:
    """Set (or reset) a person's password; it also unlocks a locked account. Admins only."""
    with store.unit() as uow:
        user = uow.users.get(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        set_password(user, change.new_password, utcnow(), field="new_password")
        return wire.user(user)
