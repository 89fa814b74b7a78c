"""Shared fixtures: the real public data in ../shared/data and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PG_DSN = os.environ.get("PHDS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only folder of real public datasets beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}; tests read it from ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A reachable PostgreSQL server; under CI=true an unreachable one fails the test, elsewhere skips."""
    import psycopg

    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as con:
            con.execute("SELECT 1")
    except psycopg.Error as exc:
        message = f"PostgreSQL at {PG_DSN} is unreachable ({exc}); set PHDS_TEST_PG_DSN"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PG_DSN


@pytest.fixture
def pg_schema_url(pg_dsn: str) -> Iterator[str]:
    """A CDM store URL on a fresh PostgreSQL schema, dropped after the test."""
    import psycopg

    schema = f"phds_t_{uuid.uuid4().hex[:12]}"
    yield f"{pg_dsn}?schema={schema}"
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
