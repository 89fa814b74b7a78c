"""The core flow with PostgreSQL on both sides: the hub's store and one hospital's CDM.

The hub serves from a fresh PostgreSQL database (created and dropped by this module). Hospital
``pg-general`` has its CDM in a PostgreSQL schema, loaded with ``phds omop load`` from the CSV export
of the same synthetic hospital that ``duck-general`` serves from DuckDB, so the two must count alike.
A cohort whose names carry SQL runs there too, and the PostgreSQL CDM keeps every row.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from phds.demo.network import LocalNetwork, phds_command
from phds.omop.simulator import HospitalResult, generate
from phds.sdk import FeasibilityResult

from .conftest import PATIENTS, hospital, running_network
from .support import feasibility_spec, hub_row_counts, metering_settled, results_of

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]  # ~50 s

ATLAS = Path(__file__).resolve().parents[1] / "cohorts" / "data" / "asthma_atlas.json"


@pytest.fixture(scope="module")
def hub_database(pg_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the hub, dropped afterwards."""
    name = f"phds_it_hub_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cdm_schema(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The first synthetic hospital as CSV, loaded into a fresh schema with ``phds omop load``."""
    schema = f"phds_it_cdm_{uuid.uuid4().hex[:10]}"
    url = f"{pg_dsn}?schema={schema}"
    [made] = generate(tmp_path_factory.mktemp("csv"), hospitals=1, patients=PATIENTS, seed=11, fmt="csv")
    try:
        done = subprocess.run(
            phds_command("omop", "load", str(made.path), "--into", url),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        yield url
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def pg_network(
    tmp_path_factory: pytest.TempPathFactory,
    synthetic_hospitals: list[HospitalResult],
    hub_database: str,
    cdm_schema: str,
) -> Iterator[LocalNetwork]:
    pg = hospital(synthetic_hospitals[0], "pg-general")
    pg.omop_url = cdm_schema
    duck = hospital(synthetic_hospitals[0], "duck-general")
    with running_network(tmp_path_factory.mktemp("pg"), [pg, duck], db_url=hub_database) as network:
        yield network


def _pg_counts(url: str) -> dict[str, int]:
    dsn, schema = url.split("?schema=")
    with psycopg.connect(dsn) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
        ]
        return {
            t: int(con.execute(f'SELECT count(*) FROM "{schema}"."{t}"').fetchone()[0])  # type: ignore[index]
            for t in sorted(tables)
        }


def _run(network: LocalNetwork, spec: dict[str, object]) -> FeasibilityResult:
    with network.client() as client:
        study = client.submit(spec)
        view = client.wait(study.id, timeout=120)
        assert view.state.value == "completed", view
        result = client.results(study.id)
    assert isinstance(result, FeasibilityResult)
    return result


def test_a_feasibility_study_on_a_postgresql_hub_and_cdm(pg_network: LocalNetwork, cdm_schema: str) -> None:
    assert pg_network.db_url.startswith("postgresql://")
    before = _pg_counts(cdm_schema)
    assert before["person"] == PATIENTS

    result = _run(pg_network, feasibility_spec(pg_network, ["pg-general", "duck-general"]))
    on_pg, on_duck = result.hospitals["pg-general"], result.hospitals["duck-general"]
    assert on_pg["persons"]["value"] > 0
    assert on_pg["persons"] == on_duck["persons"], "the same children on PostgreSQL and on DuckDB"
    assert on_pg["breakdowns"] == on_duck["breakdowns"]
    assert result.total.exact and result.total.lower == 2 * on_pg["persons"]["value"]
    assert len(results_of(pg_network, result.study.id)) == 2

    cohort = json.loads(ATLAS.read_text(encoding="utf-8"))
    cohort["Title"] = "'); DROP TABLE person; --"
    for concept_set in cohort["ConceptSets"]:
        concept_set["name"] = 'x" OR 1=1 --'
    spec = feasibility_spec(pg_network, ["pg-general"])
    spec["analysis"] = {"name": "feasibility.count", "params": {"cohort": cohort}}
    named = _run(pg_network, spec)
    assert named.hospitals["pg-general"]["persons"]["value"] > 0
    assert _pg_counts(cdm_schema) == before, "the PostgreSQL CDM kept every table and row"


def test_the_postgresql_hub_survives_a_kill(pg_network: LocalNetwork) -> None:
    metering_settled(pg_network)  # else a receipt metered on the next tick would change the counts
    counts = hub_row_counts(pg_network)
    assert counts["studies"] >= 2
    assert pg_network.stop_hub(signal.SIGKILL) == -signal.SIGKILL
    pg_network.start_hub()
    assert hub_row_counts(pg_network) == counts
    result = _run(pg_network, feasibility_spec(pg_network, ["pg-general", "duck-general"]))
    assert set(result.hospitals) == {"pg-general", "duck-general"}
