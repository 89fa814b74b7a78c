"""People's passwords: argon2id hashes, the length rule, and lockout after repeated failures.

Hashing is argon2-cffi's :class:`~argon2.PasswordHasher` with its defaults, which follow the RFC 9106
"second recommended option" (argon2id, t=3, 64 MiB, p=4; about 50 ms here). A stored hash with older
parameters is re-hashed at the next successful sign-in (:func:`check_password`).

The length rule is NIST SP 800-63B-4 §3.1.1.2: a password that is the only factor is at least 15
characters, at least 64 are accepted, and no composition rules are imposed. Lockout follows the same
section's rate-limiting requirement and the OWASP Authentication Cheat Sheet: after
``sign_in_max_failures`` consecutive failures the account is locked for ``sign_in_lock_minutes``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from phds.errors import AuthenticationError, InputError
from phds.hub.store.models import UserRow

MIN_LENGTH = 15
MAX_LENGTH = 128

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("phds: a password no account has, hashed once to even out timing")


def check_password_rule(password: str, *, email: str, field: str = "password") -> None:
    """:class:`InputError` naming *field* when *password* breaks the length rule or is the email."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"a password has at least {MIN_LENGTH} characters (NIST SP 800-63B-4)", field=field)
    if len(password) > MAX_LENGTH:
        raise InputError(f"a password has at most {MAX_LENGTH} characters", field=field)
    if password.strip().lower() == email.strip().lower() or len(set(password)) == 1:
        raise InputError(
            "the password is too easy to guess (it is the email, or one repeated character)", field=field
        )


def set_password(user: UserRow, password: str, now: datetime, *, field: str = "password") -> None:
    """Hash and store *password* on *user* (after :func:`check_password_rule`); unlocks the account."""
    check_password_rule(password, email=user.email, field=field)
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = now
    user.failed_sign_ins = 0
    user.locked_until = None


def check_password(
    user: UserRow | None, password: str, now: datetime, *, max_failures: int, lock: timedelta
) -> UserRow:
    """*user* when *password* is theirs; otherwise count the failure and raise one vague error.

    The message is the same for an unknown email, a wrong password and an account without a password,
    and an unknown email still costs one hash, so neither reveals who has an account. A locked account
    is refused without looking at the password, and says until when.
    """
    vague = AuthenticationError("wrong email or password")
    if user is None or user.password_hash is None:
        _verify(_DUMMY_HASH, password)
        raise vague
    if user.locked_until is not None and user.locked_until > now:
        raise AuthenticationError(
            f"this account is locked after {max_failures} failed sign-ins until "
            f"{user.locked_until:%Y-%m-%d %H:%M} UTC; try again then, or ask the network admin"
        )
    if not _verify(user.password_hash, password):
        user.failed_sign_ins = (user.failed_sign_ins or 0) + 1
        if user.failed_sign_ins >= max_failures:
            user.locked_until = now + lock
            user.failed_sign_ins = 0
        raise vague
    user.failed_sign_ins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
