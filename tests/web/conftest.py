"""Portal fixtures: a real hub app (its portal mounted) in process, people who sign in with passwords, and
nodes that publish catalogue profiles and answer tasks through the hub's API, as real nodes do.

:class:`Browserless` is a cookie-keeping client over ``httpx.ASGITransport`` on ``https://hub.test`` (the
portal's cookies are ``Secure``), which signs in through the sign-in form and sends each form's CSRF
token, as a browser would. Chromium journeys are in ``tests/browser``; these are the fast checks.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest

from phds.hub.app import create_app
from phds.hub.passwords import set_password
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.hub.testing import HubClient, add_org, add_user, enrol, hub_settings
from phds.omop.profile import build_profile
from phds.omop.simulator import generate
from phds.omop.store import open_store

PASSWORD = "portal-tests-password-2026"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browserless:
    """A signed-in person's browser without a browser: cookies, forms with their CSRF token."""

    def __init__(self, app: Any, portal: anyio.from_thread.BlockingPortal) -> None:
        self.portal = portal
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://hub.test")
        self.csrf = ""

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.portal.call(partial(self.http.request, method, path, **kwargs))
        found = CSRF.search(response.text) if "html" in response.headers.get("content-type", "") else None
        if found:
            self.csrf = found.group(1)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> httpx.Response:
        """A form post with the CSRF token of the last page seen (*data* as a list of pairs or a dict)."""
        pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
        fields: dict[str, list[str]] = {"csrf_token": [self.csrf]}
        for name, value in pairs:
            fields.setdefault(name, []).append(str(value))
        return self.request("POST", path, data=fields, **kwargs)

    def sign_in(self, email: str) -> None:
        self.get("/portal/sign-in")
        answer = self.post("/portal/sign-in", {"email": email, "password": PASSWORD, "next": "/portal/"})
        assert answer.status_code == 303, answer.text
        self.get("/portal/")

    def close(self) -> None:
        self.portal.call(self.http.aclose)


@dataclass
class World:
    """acme-pharma and rival-labs (requesters), hospitals north (GB) and south (FR) with catalogue
    entries, east (DE) with a node but none; ``tokens`` by person or node, for API calls."""

    store: HubStore
    url: str
    hub: HubClient
    portal: anyio.from_thread.BlockingPortal
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[Browserless] = field(default_factory=list)

    def browser(self, email: str | None = "researcher@acme.example") -> Browserless:
        """A fresh browser, signed in as *email* (None: signed out)."""
        client = Browserless(self.hub.app, self.portal)
        self.clients.append(client)
        if email is not None:
            client.sign_in(email)
        return client

    def api(self, method: str, path: str, who: str, **kwargs: Any) -> Any:
        response = self.hub.request(method, f"/api/v1{path}", token=self.tokens[who], **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def answer(
        self, hospital: str, study_id: str, values: dict[str, Any], budget: list[dict[str, Any]] | None = None
    ) -> None:
        """The node of *hospital* takes its task of *study_id* and answers with the released *values*
        (and, under differential privacy, the requester's remaining *budget*)."""
        tasks = self.api("GET", "/nodes/me/tasks", hospital, params={"wait": 0, "limit": 100})
        [task] = [t for t in tasks if t["study_id"] == study_id]
        payload: dict[str, Any] = {
            "analysis": task["analysis"],
            "min_cell_count": 5,
            "values": values,
            "notes": [],
        }
        if budget is not None:
            payload["budget"] = budget
        body = {"task_id": task["id"], "status": "ok", "payload": payload, "reason": None}
        self.api("POST", f"/tasks/{task['id']}/result", hospital, json=body)


@pytest.fixture(scope="session")
def blocking_portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    with anyio.from_thread.start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="session")
def real_profile() -> dict[str, Any]:
    """A synthetic hospital's published profile (HealthDCAT-AP camelCase JSON, as nodes publish it)."""
    [hospital] = generate(Path(tempfile.mkdtemp(prefix="phds-portal-")), hospitals=1, patients=120, seed=2)
    with open_store(f"duckdb:///{hospital.path}", read_only=True) as store:
        profile: dict[str, Any] = build_profile(store).model_dump(mode="json", by_alias=True)
    return profile


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    blocking_portal: anyio.from_thread.BlockingPortal,
    real_profile: dict[str, Any],
) -> Iterator[World]:
    """One world per test module (passwords are argon2-hashed: slow on purpose); tests add studies."""
    url = f"sqlite:///{tmp_path_factory.mktemp('portal') / 'hub.sqlite'}"
    store = HubStore.open(url)
    add_org(store, "operator", "operator")
    add_org(store, "acme-pharma", "requester", category="industry")
    add_org(store, "rival-labs", "requester", category="academic")
    for name, country in (("north", "GB"), ("south", "FR"), ("east", "DE")):
        add_org(store, name, "hospital", country=country, display_name=f"{name.title()} Children's")
    hub = HubClient(create_app(hub_settings(url), store=store), blocking_portal)
    w = World(store, url, hub, blocking_portal)
    people = [
        ("admin@op.example", "admin", "operator"),
        ("researcher@acme.example", "requester", "acme-pharma"),
        ("someone@rival.example", "requester", "rival-labs"),
        ("steward@north.example", "steward", "north"),
    ]
    for email, role, org in people:
        w.tokens[email] = add_user(store, email, role, org)[1]
    with store.unit() as uow:
        for email, _, _ in people:
            user = uow.users.by_email(email)
            assert user is not None
            set_password(user, PASSWORD, utcnow())
    for name in ("north", "south", "east"):
        w.tokens[name] = enrol(store, name, url)[1]
    south = {
        **real_profile,
        "numberOfUniqueIndividuals": 40,
        "minTypicalAge": 12,
        "maxTypicalAge": 17,
        "title": "South adolescent clinic (synthetic)",
        "description": "Cystic fibrosis follow-up.",
    }
    w.api("PUT", "/nodes/me/catalogue", "north", json=real_profile)
    w.api("PUT", "/nodes/me/catalogue", "south", json=south)
    yield w
    for client in w.clients:
        client.close()
    hub.close()
    store.close()
