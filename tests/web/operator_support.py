"""The portal over HTTP without a browser: a person's session cookie and the CSRF token their forms carry.

The portal takes any hub bearer token as its session cookie (it asks ``GET /me`` with it), so a person's
API token from :mod:`tests.sdk.billing_support` signs them in; forms carry the token's CSRF value. A form
that succeeds redirects with its notice in a one-time cookie; :meth:`PortalAs.post` follows it, as a
browser does, and :attr:`PortalAs.redirected` says where it went.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from phds.web.kit import CSRF_FIELD, csrf_token_for
from phds.web.pages.outcome import FLASH_COOKIE
from phds.web.session import SESSION_COOKIE


class PortalAs:
    """The portal at *hub_url* as the person holding *token*."""

    def __init__(self, hub_url: str, token: str) -> None:
        self.csrf = csrf_token_for(token)
        self.hub_url = hub_url
        self.session = f"{SESSION_COOKIE}={token}"
        self.redirected: str | None = None
        self.http = httpx.Client(
            base_url=f"{hub_url}/portal",
            headers={"Cookie": f"{SESSION_COOKIE}={token}"},
            timeout=120,
            follow_redirects=False,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(
        self, path: str, data: dict[str, Any] | None = None, files: dict[str, Any] | None = None
    ) -> httpx.Response:
        """POST a form; a redirect (success) is followed with the notice cookie it set."""
        response = self.http.post(path, data={CSRF_FIELD: self.csrf, **(data or {})}, files=files)
        self.redirected = None
        if response.status_code != 303:
            return response
        self.redirected = response.headers["location"]
        flash = next(
            (
                c.split(";", 1)[0]
                for c in response.headers.get_list("set-cookie")
                if c.startswith(FLASH_COOKIE)
            ),
            "",
        )
        cookie = "; ".join(c for c in (self.session, flash) if c)
        return self.http.get(f"{self.hub_url}{self.redirected}", headers={"Cookie": cookie})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PortalAs:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def text_of(response: httpx.Response) -> str:
    """The page's text without tags, whitespace collapsed, entities decoded: what a person reads."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def notice(response: httpx.Response) -> str:
    """The text of the page's success notice (``role="status"``), '' when there is none."""
    found = re.search(r'<p role="status" class="notice"[^>]*>(.*?)</p>', response.text, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", found.group(1))).strip() if found else ""


def alert(response: httpx.Response) -> str:
    """The text of the page's error next to a form (``role="alert"``), '' when there is none."""
    found = re.search(r'<p role="alert" class="error"[^>]*>(.*?)</p>', response.text, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", found.group(1))).strip() if found else ""


def secret(response: httpx.Response) -> str:
    """The secret the page shows once (an issued token)."""
    found = re.search(r'<code class="secret-value">(.*?)</code>', response.text)
    assert found is not None, "the page shows no secret"
    return html.unescape(found.group(1))
