"""The portal's client of the hub's ``/api/v1``: every page reads and writes through it.

The portal holds no store and calls no hub service: it sends the signed-in person's session token to
the hub's own API in process (an ASGI transport, so no socket and no second TLS hop), and gets exactly
the answers, the errors and the authorisation that person would get with the SDK. An error comes back
as the :class:`~phds.errors.PhdsError` the hub raised (:func:`~phds.sdk.http_errors.error_from_response`).
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp

from phds import __version__
from phds.sdk.http_errors import error_from_response

API_BASE = "http://hub.internal/api/v1"


class HubApi:
    """One connection pool to the hub's API; :meth:`as_person` binds a token for one request."""

    def __init__(self, app: ASGIApp, *, timeout: float = 70.0) -> None:
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 0)),
            base_url=API_BASE,
            headers={"User-Agent": f"phds-portal/{__version__}"},
            timeout=timeout,
        )

    def as_person(self, token: str | None) -> PersonApi:
        """Calls made with *token* (``None``: anonymous, e.g. signing in)."""
        return PersonApi(self._http, token)

    async def close(self) -> None:
        await self._http.aclose()


class PersonApi:
    """The API as one person: ``get``/``post``/``put``/``delete`` return the decoded JSON body."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.request("POST", path, json=body)

    async def put(self, path: str, body: Any = None) -> Any:
        return await self.request("PUT", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response itself (for downloads); raises the hub's error like the others."""
        response = await self._http.request(method, path, headers=self._headers, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.raw(method, path, **kwargs)
        return None if response.status_code == 204 or not response.content else response.json()
