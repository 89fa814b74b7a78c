"""Who may use the console: one-time sign-in links, sessions kept in this process's memory, CSRF.

There are no passwords. At start-up (and on request from the sign-in page) the console prints a link
with a 256-bit random token to its own terminal, as Jupyter does; whoever can read that terminal may
sign in. Opening the link spends the token and starts a session: a random id, kept only in memory (a
restart signs everyone out), in a cookie that is ``__Host-`` prefixed, ``Secure``, ``HttpOnly`` and
``SameSite=Strict``, ending 8 hours after sign-in or after 30 minutes without a request, whichever is
first (OWASP Session Management Cheat Sheet: idle and absolute timeouts).

Cookies are not isolated by port (RFC 6265 §8.5), so on a machine that also runs the hub's portal the
console's cookies carry names of their own and never collide with the portal's.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from phds.errors import PhdsError
from phds.web.kit import check_csrf, cookie_flags, csrf_token_for

SESSION_COOKIE = "__Host-phds_console"
PRESESSION_COOKIE = "__Host-phds_console_presession"
SESSION_SECONDS = 8 * 3600
IDLE_SECONDS = 30 * 60
LINK_SECONDS = 15 * 60
TOKEN_BYTES = 32  # 256 bits


class SignInRequired(PhdsError):
    """No valid console session: the browser goes to the sign-in page."""

    http_status = 401


def session_cookie_flags(max_age: int | None = SESSION_SECONDS) -> dict[str, Any]:
    """The portal's cookie flags with ``SameSite=Strict``: a console link followed from another site
    (an email, a chat) arrives without the session, so no decision starts outside the console."""
    return {**cookie_flags(max_age), "samesite": "strict"}


@dataclass
class _Session:
    started: float
    seen: float


@dataclass
class Sessions:
    """The one-time sign-in token and the open sessions of one console process (thread-safe)."""

    clock: Callable[[], float] = time.monotonic
    _token: tuple[str, float] | None = None
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_link_token(self) -> str:
        """A fresh sign-in token, valid once for :data:`LINK_SECONDS`; any earlier unused one is void."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            self._token = (token, self.clock() + LINK_SECONDS)
        return token

    def redeem(self, token: str) -> str | None:
        """Spend *token* for a new session id; None when it is wrong, used or expired."""
        with self._lock:
            current, expiry = self._token or ("", 0.0)
            if not current or not hmac.compare_digest(token.encode(), current.encode()):
                return None
            self._token = None  # works once, even when it had expired
            now = self.clock()
            if now > expiry:
                return None
            session_id = secrets.token_urlsafe(TOKEN_BYTES)
            self._sessions[session_id] = _Session(now, now)
            return session_id

    def touch(self, session_id: str) -> bool:
        """True when the session is open (and note this request); ends an expired one."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return False
            now = self.clock()
            if now - session.started > SESSION_SECONDS or now - session.seen > IDLE_SECONDS:
                del self._sessions[session_id]
                return False
            session.seen = now
            return True

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)


@dataclass(frozen=True)
class Steward:
    """The signed-in steward: the name decisions are recorded under, and their forms' CSRF token."""

    name: str
    session_id: str
    csrf: str


async def current_steward(request: Request) -> Steward:
    """The steward of a valid session (:class:`SignInRequired` otherwise); checks CSRF on writes."""
    session_id = request.cookies.get(SESSION_COOKIE)
    sessions: Sessions = request.app.state.sessions
    if not session_id or not sessions.touch(session_id):
        raise SignInRequired("please sign in with the link the console printed")
    await check_csrf(request, session_id)
    return Steward(name=request.app.state.steward, session_id=session_id, csrf=csrf_token_for(session_id))


CurrentSteward = Annotated[Steward, Depends(current_steward)]


def announce_link(app: FastAPI) -> str:
    """Make a new one-time sign-in link, hand it to the console's ``announce`` (the CLI prints it to
    the terminal that started the console), and return it."""
    sessions: Sessions = app.state.sessions
    link = f"{app.state.base_url}/sign-in?token={sessions.new_link_token()}"
    app.state.announce(link)
    return link


__all__ = [
    "IDLE_SECONDS",
    "LINK_SECONDS",
    "PRESESSION_COOKIE",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "CurrentSteward",
    "Sessions",
    "SignInRequired",
    "Steward",
    "announce_link",
    "current_steward",
    "session_cookie_flags",
]
