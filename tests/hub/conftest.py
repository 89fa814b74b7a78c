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
