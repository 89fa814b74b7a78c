"""What the operator's and the money pages share: the outcome of a form, safe path segments, months, money.

A form's handler renders its page again with an :class:`Outcome`: the hub's error next to the form (and
the field) it belongs to. Errors a person can fix (bad input, a state that forbids the action, something
that is not there) stay on the page; any other error is the portal's error page.

A success redirects (:func:`done`, POST/redirect/GET), so reloading the page does not send the form
again; its notice travels in a one-time cookie signed with the session (:func:`with_flash` shows and
clears it). Only a page that shows a secret once (an issued token) answers its POST directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from phds.billing.money import format_money
from phds.errors import Conflict, InputError, NotFound, PhdsError
from phds.web.kit import cookie_flags
from phds.web.render import templates
from phds.web.session import SESSION_COOKIE

FIXABLE: tuple[type[PhdsError], ...] = (InputError, Conflict, NotFound)
"""Errors shown next to the form that caused them (everything else is an error page)."""

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Outcome:
    """What a form did: *notice* on success, else *error* (and the *field* it names), for form *form*."""

    form: str = ""
    notice: str = ""
    error: str = ""
    field: str | None = None
    status: int = 200
    secret: str = ""
    """A secret shown once (an API or enrolment token), with *command*: how to use it."""
    command: str = ""

    @classmethod
    def done(cls, form: str, notice: str, *, secret: str = "", command: str = "") -> Outcome:
        return cls(form=form, notice=notice, secret=secret, command=command)

    @classmethod
    def failed(cls, form: str, exc: PhdsError) -> Outcome:
        field = getattr(exc, "field", None)
        status = getattr(exc, "status", None) or exc.http_status
        return cls(form=form, error=exc.message, field=field, status=int(status))


NO_OUTCOME = Outcome()

FLASH_COOKIE = "__Host-phds_flash"
FLASH_SECONDS = 120


def _flash_signature(request: Request, value: str) -> str:
    key = (request.cookies.get(SESSION_COOKIE) or "").encode()
    return hmac.new(key, b"phds-flash-v1:" + value.encode(), hashlib.sha256).hexdigest()


def done(request: Request, target: str, form: str, notice: str) -> Response:
    """Redirect (303) to the portal page *target*, which shows *notice* above form *form* once."""
    value = base64.urlsafe_b64encode(json.dumps({"form": form, "notice": notice}).encode()).decode()
    response = RedirectResponse(target, status_code=303)
    signed = f"{value}.{_flash_signature(request, value)}"
    response.set_cookie(FLASH_COOKIE, signed, **cookie_flags(max_age=FLASH_SECONDS))
    return response


def take_flash(request: Request) -> Outcome:
    """The notice a redirect left for this page (none if absent, altered or from another session)."""
    value, _, signature = (request.cookies.get(FLASH_COOKIE) or "").partition(".")
    if not value or not hmac.compare_digest(signature, _flash_signature(request, value)):
        return NO_OUTCOME
    try:
        data = json.loads(base64.urlsafe_b64decode(value.encode()))
        return Outcome.done(str(data["form"]), str(data["notice"]))
    except (ValueError, KeyError, TypeError):
        return NO_OUTCOME


async def with_flash(request: Request, render: Callable[[Outcome], Awaitable[Response]]) -> Response:
    """*render* the page with the notice a redirect left for it, and clear that notice."""
    outcome = take_flash(request)
    response = await render(outcome)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def segment(value: str, field: str) -> str:
    """*value* as one path segment of a hub URL (ids, numbers, slugs): no '/', no '..', nothing else."""
    if not _SEGMENT.fullmatch(value) or ".." in value:
        raise InputError(f"not a valid {field.replace('_', ' ')}: {value!r}", field=field)
    return value


def month(value: str, field: str = "period") -> str:
    """*value* if it is a month ``YYYY-MM``."""
    if not _MONTH.fullmatch(value):
        raise InputError(f"{value!r} is not a month (YYYY-MM)", field=field)
    return value


def this_month(today: date | None = None) -> str:
    return (today or datetime.now(UTC).date()).strftime("%Y-%m")


def recent_months(count: int = 13, today: date | None = None) -> list[str]:
    """The running month and the *count* - 1 before it, newest first (the periods one may invoice)."""
    day = today or datetime.now(UTC).date()
    year, mon = day.year, day.month
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{mon:02d}")
        year, mon = (year, mon - 1) if mon > 1 else (year - 1, 12)
    return found


def money(value: Any, currency: str = "EUR") -> str:
    """A Jinja filter: a Decimal amount (or its string) in *currency*, e.g. '€1,234.50'; never a float."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        raise TypeError("amounts are Decimal, never float")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return format_money(amount, currency)


templates.env.filters["money"] = money
