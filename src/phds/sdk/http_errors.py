"""The :class:`~phds.errors.PhdsError` a hub's error response stands for (SDK, CLI and portal share it).

The hub answers every error with one body (:class:`~phds.protocol.errors.ErrorBody`) whose ``code`` is
the class name of the error it raised; this turns it back into that class, with the hub's message, the
HTTP ``status``, and for a 422 the ``field`` and every ``details`` entry.
"""

from __future__ import annotations

import re

import httpx

from phds import errors
from phds.errors import InputError, PhdsError
from phds.protocol.errors import ErrorBody

_FIELD_PREFIX = re.compile(r"^(?:.*?, )?field ([^\s:]+): ")


def _error_classes() -> dict[str, type[PhdsError]]:
    found: dict[str, type[PhdsError]] = {"PhdsError": PhdsError}
    stack: list[type[PhdsError]] = [PhdsError]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.__module__ == errors.__name__:
                found[sub.__name__] = sub
                stack.append(sub)
    return found


def error_from_response(response: httpx.Response) -> PhdsError:
    """The :class:`PhdsError` an error response stands for: by the body's ``code``, else by status."""
    try:
        body: ErrorBody | None = ErrorBody.model_validate(response.json())
    except ValueError:
        body = None
    if body is None:
        text = response.text.strip()[:200] or response.reason_phrase
        message = f"the hub answered {response.status_code}: {text}"
        code = None
    else:
        message, code = body.message, body.code
    classes = _error_classes()
    status = response.status_code
    cls = classes.get(code or "") or next(
        (c for c in classes.values() if c.http_status == status and c.__bases__ == (PhdsError,)),
        InputError if 400 <= response.status_code < 500 else PhdsError,
    )
    if issubclass(cls, InputError):
        exc: PhdsError = cls(message)
        assert isinstance(exc, InputError)
        details = body.details if body else []
        match = _FIELD_PREFIX.match(message)
        exc.field = next((d.field for d in details if d.field), None) or (match.group(1) if match else None)
    else:
        exc = cls(message)
    setattr(exc, "status", response.status_code)  # noqa: B010 - PhdsError declares neither
    setattr(exc, "details", [d.model_dump() for d in body.details] if body else [])  # noqa: B010
    return exc
