"""The one place errors become HTTP responses: every body is a :class:`phds.protocol.ErrorBody`.

A :class:`~phds.errors.PhdsError` answers with its class's ``http_status`` and its class name as
``code``. Request validation errors become :class:`~phds.errors.InputError` (422, naming each field);
Starlette's own errors (unknown route, wrong method) and unexpected exceptions keep the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from phds.errors import (
    AuthenticationError,
    InputError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PhdsError,
)
from phds.protocol.errors import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)

_STATUS_CODES: dict[int, str] = {
    400: InputError.__name__,
    401: AuthenticationError.__name__,
    403: PermissionDenied.__name__,
    404: NotFound.__name__,
    405: "MethodNotAllowed",
    413: PayloadTooLarge.__name__,
}


def error_response(exc: PhdsError, details: list[ErrorDetail] | None = None) -> JSONResponse:
    """The response for a PHDS error; 401 also tells the client to use a bearer token."""
    body = ErrorBody(
        code=type(exc).__name__, status=exc.http_status, message=exc.message, details=details or []
    )
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(body.model_dump(mode="json"), status_code=exc.http_status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _phds_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PhdsError)
    if exc.http_status >= 500:
        log.error("request failed: %s", exc.message, exc_info=exc)
    if isinstance(exc, InputError) and exc.field:
        return error_response(exc, [ErrorDetail(field=exc.field, message=exc.message)])
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "malformed JSON")
            details.append(ErrorDetail(field="body", message=f"malformed JSON: {reason}"))
        else:
            details.append(ErrorDetail(field=_field(error.get("loc", ())), message=str(error.get("msg", ""))))
    summary = "; ".join(f"{d.field}: {d.message}" if d.field else d.message for d in details)
    return error_response(InputError(f"invalid request: {summary}"), details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = ErrorBody(
        code=_STATUS_CODES.get(exc.status_code, "HTTPError"), status=exc.status_code, message=str(exc.detail)
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(PhdsError("internal error; the hub's log has the details"))


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one body shape."""
    app.add_exception_handler(PhdsError, _phds_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
