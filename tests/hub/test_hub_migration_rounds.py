"""Migration 0008 moves round state out of the tasks: a running study keeps its round's state."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, select, text

from phds.hub.store import HubStore
from phds.hub.store.study_models import StudyRow
from phds.hub.testing import add_org


def _insert(store: HubStore, table: str, **values: Any) -> None:
    """Insert raw column values, as a hub at the older revision would have stored them."""
    columns = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    with store.engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), values)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend, with no schema yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.sqlite'}"
        return
    import psycopg

    dsn: str = request.getfixturevalue("pg_dsn")
    name = f"phds_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{dsn.rsplit('/', 1)[0].split('://', 1)[1]}/{name}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_study_migrated_mid_round_keeps_its_state_and_tasks_no_longer_copy_it(unmigrated_url: str) -> None:
    store = HubStore.open(unmigrated_url, migrate=False)
    try:
        store.migrate("0007")
        org = add_org(store, "uni", "requester")
        study_id, now = uuid.uuid4(), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        state = {"beta": [0.5, -1.25], "phase": "irls"}
        _insert(
            store, "studies", id=study_id.hex, organisation_id=org.hex, spec='{"title": "t"}',
            analysis="stats.glm", analysis_version="1", state="running", round=3,
            round_state=json.dumps(state), version=4, submitted_at=f"{now:%Y-%m-%d %H:%M:%S}",
            deadline_at=f"{now + timedelta(hours=1):%Y-%m-%d %H:%M:%S}",
        )  # fmt: skip
        store.migrate()
        assert store.revision() == "0008"
        with store.unit() as uow:
            study = uow.studies.get(study_id)
            assert isinstance(study, StudyRow)
            assert uow.studies.round_state(study) == state
        with store.engine.connect() as connection:
            tasks = Table("tasks", MetaData(), autoload_with=connection)
            studies = Table("studies", MetaData(), autoload_with=connection)
            assert "round_state" not in tasks.columns and "round_state" not in studies.columns
            assert connection.execute(select(studies.c.round)).scalar_one() == 3
    finally:
        store.close()
