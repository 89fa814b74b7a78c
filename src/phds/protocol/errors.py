"""The one error body every hub response with status >= 400 carries."""

from __future__ import annotations

from pydantic import Field

from phds.protocol.common import WireModel


class ErrorDetail(WireModel):
    """One problem with the request, e.g. one invalid field."""

    field: str | None = None
    message: str


class ErrorBody(WireModel):
    """``{"code": "AuthenticationError", "status": 401, "message": "...", "details": []}``.

    ``code`` is the name of the :class:`phds.errors.PhdsError` subclass, so a client can raise the same
    class it would have raised locally.
    """

    code: str
    status: int
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
