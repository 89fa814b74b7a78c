"""ASGI middleware: refuse request bodies over the configured size before anything parses them."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phds.errors import PayloadTooLarge
from phds.hub.errors import error_response


class BodySizeLimit:
    """413 when ``Content-Length`` or the streamed body exceeds *max_bytes*.

    A declared length is refused before the app runs. A streamed body (no length) is counted as the app
    reads it; crossing the limit raises a 413 ``HTTPException`` there, which FastAPI lets through to the
    error handlers (any other exception from ``receive`` it would turn into a 400).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = PayloadTooLarge(f"request body larger than {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(refusal)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(refusal.http_status, detail=refusal.message)
            return message

        await self.app(scope, limited_receive, send)
