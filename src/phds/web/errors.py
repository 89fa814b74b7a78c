"""Error pages: every failure says what went wrong and what to do; none shows a stack trace."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from phds.errors import AuthenticationError, Conflict, InputError, NotFound, PermissionDenied, PhdsError
from phds.web.kit import CsrfRefused

log = logging.getLogger(__name__)

WHAT_TO_DO: dict[type[PhdsError], tuple[str, str]] = {
    CsrfRefused: ("Form refused", "Reload the page, then send the form again from this site."),
    AuthenticationError: ("Please sign in again", "Your session ended or the credentials were wrong."),
    PermissionDenied: (
        "Not allowed",
        "Your role does not allow this. If you need it, ask your organisation's administrator.",
    ),
    NotFound: (
        "Not found",
        "It does not exist, or your organisation cannot see it. Check the link, or go back to the list.",
    ),
    InputError: ("Please correct the form", "Fix the field named below and send it again."),
    Conflict: ("That cannot be done now", "Its state has changed. Reload the page to see the current state."),
}


def install_page_errors(
    app: FastAPI,
    templates: Jinja2Templates,
    sign_in: type[PhdsError] | None = None,
    sign_in_url: Callable[[Any], str] | None = None,
) -> None:
    """Render every error of *app* as an HTML page (or an HTMX fragment) with status and advice.

    An exception of class *sign_in* sends the browser to ``sign_in_url(exc)`` instead.
    """

    async def phds_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PhdsError)
        if sign_in is not None and isinstance(exc, sign_in) and sign_in_url is not None:
            target = sign_in_url(exc)
            if request.headers.get("hx-request"):
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        title, advice = next(
            (text for cls, text in WHAT_TO_DO.items() if isinstance(exc, cls)),
            ("Something went wrong", "Try again; if it keeps failing, tell the network operator."),
        )
        field = getattr(exc, "field", None)
        status = getattr(exc, "status", None) or exc.http_status
        return _page(templates, request, status, title, exc.message, advice, field=field)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'form'}: {e['msg']}" for e in exc.errors()]
        return _page(
            templates,
            request,
            422,
            "Please correct the form",
            "; ".join(problems),
            "Fix the fields named here and send the form again.",
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return _page(
                templates,
                request,
                404,
                "Page not found",
                f"There is no page {request.url.path}.",
                "Use the menu to find what you are looking for.",
            )
        return _page(
            templates, request, exc.status_code, "Request refused", str(exc.detail), "Go back and try again."
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        reference = secrets.token_hex(4)
        log.exception("portal error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
        return _page(
            templates,
            request,
            500,
            "Something went wrong on our side",
            f"The error was logged with reference {reference}.",
            "Try again in a moment; if it keeps failing, give the operator this reference.",
        )

    app.add_exception_handler(PhdsError, phds_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _page(
    templates: Jinja2Templates,
    request: Request,
    status: int,
    title: str,
    message: str,
    advice: str,
    *,
    field: str | None = None,
) -> Response:
    name = "error_fragment.html" if request.headers.get("hx-request") else "error.html"
    context = {"status": status, "title": title, "message": message, "advice": advice, "field": field}
    return templates.TemplateResponse(request, name, context, status_code=status)
