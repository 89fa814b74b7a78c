"""Hub fixtures: stores on a real SQLite file and a real PostgreSQL database, an in-process HTTP client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
from sqlalchemy import text

from phds.hub.app import create_app
from phds.hub.store import HubStore
from phds.hub.store.models import Base
from phds.hub.testing import ClientFactory, HubClient, hub_settings


@pytest.fixture(scope="session")
def hub_pg_url(pg_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once and dropped at the end."""
    import psycopg

    name = f"phds_hub_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    base = pg_dsn.rsplit("/", 1)[0]
    url = f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    HubStore.open(url).close()
    yield url
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_tables(store: HubStore) -> None:
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with store.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A hub database in a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'hub.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty hub database on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.sqlite'}"
        return
    url = request.getfixturevalue("hub_pg_url")
    yield url
    store = HubStore.open(url, migrate=False)
    try:
        _empty_tables(store)
    finally:
        store.close()


@pytest.fixture
def store(hub_url: str) -> Iterator[HubStore]:
    """A hub store on each backend in turn."""
    hub_store = HubStore.open(hub_url)
    yield hub_store
    hub_store.close()


@pytest.fixture(scope="session")
def portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    """An event loop in a thread, so synchronous tests can drive the ASGI app."""
    with anyio.from_thread.start_blocking_portal() as blocking_portal:
        yield blocking_portal


@pytest.fixture
def make_client(portal: anyio.from_thread.BlockingPortal) -> Iterator[ClientFactory]:
    """Build clients for apps over a given store with given settings overrides."""
    clients: list[HubClient] = []

    def factory(store: HubStore, url: str, **overrides: Any) -> HubClient:
        client = HubClient(create_app(hub_settings(url, **overrides), store=store), portal)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(store: HubStore, hub_url: str, make_client: ClientFactory) -> HubClient:
    """An in-process client of a hub on each backend in turn."""
    return make_client(store, hub_url)


class Network:
    """A small network for study tests: requesters of uni-a and pharma-b, hospitals h1..h3 with nodes."""

    HOSPITALS = ("h1", "h2", "h3")

    def __init__(self, store: HubStore, url: str, client: HubClient) -> None:
        from phds.hub.testing import add_org, add_user, enrol

        self.store, self.url, self.client = store, url, client
        add_org(store, "operator", "operator")
        add_org(store, "uni-a", "requester", category="academic")
        add_org(store, "pharma-b", "requester", category="industry")
        for hospital in (*self.HOSPITALS, "h-unenrolled"):
            add_org(store, hospital, "hospital")
        self.tokens: dict[str, str] = {
            "admin": add_user(store, "admin@op.example", "admin", "operator")[1],
            "requester": add_user(store, "r@uni-a.example", "requester", "uni-a")[1],
            "requester_other": add_user(store, "r@pharma-b.example", "requester", "pharma-b")[1],
            "steward": add_user(store, "s@h1.example", "steward", "h1")[1],
            "steward_h3": add_user(store, "s@h3.example", "steward", "h3")[1],
        }
        self.node_ids: dict[str, uuid.UUID] = {}
        for hospital in self.HOSPITALS:
            self.node_ids[hospital], self.tokens[hospital] = enrol(store, hospital, url)

    def use(self, client: HubClient) -> None:
        """Talk to another app (e.g. after a restart) from now on."""
        self.client = client

    def submit(self, spec: dict[str, Any], actor: str = "requester") -> dict[str, Any]:
        response = self.client.post("/api/v1/studies", token=self.tokens[actor], json=spec)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def study(self, study_id: str, actor: str = "requester") -> dict[str, Any]:
        response = self.client.get(f"/api/v1/studies/{study_id}", token=self.tokens[actor])
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def poll(self, hospital: str, wait: float = 0, limit: int = 10) -> list[dict[str, Any]]:
        response = self.client.get(
            "/api/v1/nodes/me/tasks", token=self.tokens[hospital], params={"wait": wait, "limit": limit}
        )
        assert response.status_code == 200, response.text
        tasks: list[dict[str, Any]] = response.json()
        return tasks

    def answer(
        self,
        hospital: str,
        task: dict[str, Any],
        status: str = "ok",
        payload: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        body = {"task_id": task["id"], "status": status, "payload": payload or {}, "reason": reason}
        response = self.client.post(
            f"/api/v1/tasks/{task['id']}/result", token=self.tokens[hospital], json=body
        )
        assert response.status_code == 200, response.text
        ack: dict[str, Any] = response.json()
        return ack


@pytest.fixture
def network(store: HubStore, hub_url: str, client: HubClient) -> Network:
    """A network on each backend in turn, with an in-process client (no lifespan: tests sweep by hand)."""
    return Network(store, hub_url, client)


@pytest.fixture
def network_class() -> type[Network]:
    """The :class:`Network` builder, for tests that manage their own apps (restarts)."""
    return Network
