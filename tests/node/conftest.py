"""Fixtures for the node's governance core: a state database in a temporary folder and a node.toml."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phds.node.audit import AuditLog, NodeDatabase
from phds.node.config import load_node_config
from phds.node.executor import NodeRuntime
from phds.protocol.tasks import Task

from .console_support import console, console_node, console_portal  # noqa: F401 (fixtures)

NODE_TOML = """
[node]
name = "gosh"
hub_url = "https://hub.phds.example"
credential_file = "secrets/node.credential"
state_dir = "state"

[[sources.omop]]
name = "cdm"
url = "duckdb://data/cdm.duckdb"

[[sources.tabular]]
name = "registry"
path = "data/registry.parquet"

[policy]
min_cell_count = 5

[[policy.rules]]
name = "feasibility for everyone"
analyses = ["feasibility.*"]
service_types = ["feasibility"]
approval = "auto"

[[policy.rules]]
name = "studies for academia"
analyses = ["stats.*"]
categories = ["academic", "public", "non-profit"]

[trust]
network_keys = { "4a75205151a8e942" = "GETtpwFtAcShHYDk6kbp_bPnT9q4r1lpDZDaui4Fi6g" }
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[NodeDatabase]:
    database = NodeDatabase(tmp_path / "state" / "node.db")
    yield database
    database.close()


@pytest.fixture
def audit(db: NodeDatabase) -> AuditLog:
    return AuditLog(db)


@pytest.fixture
def node_toml_text() -> str:
    """A valid node.toml, to edit in tests."""
    return NODE_TOML


@pytest.fixture
def node_toml(tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(NODE_TOML, encoding="utf-8")
    return path


# -- executor and agent fixtures -------------------------------------------------------------------------

RUNTIME_POLICY = """
[policy]
min_cell_count = 5

[[policy.rules]]
name = "blocked"
effect = "deny"
analyses = ["*"]
organisations = ["pharma-x"]

[[policy.rules]]
name = "round trips"
analyses = ["system.noop"]
approval = "auto"

[[policy.rules]]
name = "feasibility"
analyses = ["feasibility.*"]
approval = "auto"

[[policy.rules]]
name = "academic statistics"
analyses = ["stats.*"]
categories = ["academic"]
approval = "auto"

[[policy.rules]]
name = "industry statistics"
analyses = ["stats.*"]
categories = ["industry"]

[[policy.rules]]
name = "synthetic datasets"
analyses = ["synthetic.*"]
service_types = ["synthetic_dataset"]
approval = "auto"
"""

ASTHMA, BRONCHITIS, FEMALE, MALE, EHR = 317009, 260139, 8532, 8507, 32817
#: Persons 1-8 have asthma (8 is male), 9-12 bronchitis: "asthma" (8) and "asthma in girls" (7) differ by one.
SMALL_OMOP_ASTHMA = set(range(1, 9))


def write_small_omop(path: Path) -> None:
    """A 12-person OMOP CDM in a DuckDB file, written through the store interface."""
    import datetime as dt

    import pyarrow as pa

    from phds.omop.store import open_store

    day = dt.date
    persons, periods, conditions = [], [], []
    for pid in range(1, 13):
        persons.append(
            {"person_id": pid, "gender_concept_id": MALE if pid in (8, 12) else FEMALE,
             "year_of_birth": 2012, "month_of_birth": 3, "day_of_birth": pid,
             "race_concept_id": 0, "ethnicity_concept_id": 0}
        )  # fmt: skip
        periods.append(
            {"observation_period_id": pid, "person_id": pid, "observation_period_start_date": day(2015, 1, 1),
             "observation_period_end_date": day(2022, 12, 31), "period_type_concept_id": EHR}
        )  # fmt: skip
        conditions.append(
            {"condition_occurrence_id": pid, "person_id": pid,
             "condition_concept_id": ASTHMA if pid in SMALL_OMOP_ASTHMA else BRONCHITIS,
             "condition_start_date": day(2019, 5, pid), "condition_end_date": day(2019, 5, pid),
             "condition_type_concept_id": EHR}
        )  # fmt: skip
    concepts = [
        {"concept_id": c, "concept_name": n, "domain_id": "Condition", "vocabulary_id": "SNOMED",
         "concept_class_id": "Clinical Finding", "standard_concept": "S", "concept_code": code,
         "valid_start_date": day(1970, 1, 1), "valid_end_date": day(2099, 12, 31), "invalid_reason": None}
        for c, n, code in [(ASTHMA, "Asthma", "195967001"), (BRONCHITIS, "Acute bronchitis", "10509002")]
    ]  # fmt: skip
    ancestry = [
        {"ancestor_concept_id": c, "descendant_concept_id": c, "min_levels_of_separation": 0,
         "max_levels_of_separation": 0}
        for c in (ASTHMA, BRONCHITIS)
    ]  # fmt: skip
    with open_store(f"duckdb:///{path}") as store:
        store.create_tables()
        for name, rows in [
            ("person", persons), ("observation_period", periods), ("condition_occurrence", conditions),
            ("concept", concepts), ("concept_ancestor", ancestry),
        ]:  # fmt: skip
            store.append_arrow(name, pa.Table.from_pylist(rows))


def cnsim_path(shared_data: Path, site: int) -> Path:
    return shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{site}.csv"


def write_node_toml(
    folder: Path,
    *,
    name: str = "gosh",
    hub_url: str = "http://127.0.0.1:9",
    tabular: dict[str, Path] | None = None,
    omop: dict[str, Path] | None = None,
) -> Path:
    """A development node.toml in *folder* with the test policy and the given sources."""
    lines = [
        "[node]", f'name = "{name}"', f'hub_url = "{hub_url}"', 'credential_file = "secrets/node.credential"',
        'state_dir = "state"', 'environment = "development"', "",
    ]  # fmt: skip
    for source, path in (omop or {}).items():
        lines += ["[[sources.omop]]", f'name = "{source}"', f'url = "duckdb:///{path}"', ""]
    for source, path in (tabular or {}).items():
        lines += ["[[sources.tabular]]", f'name = "{source}"', f'path = "{path}"', ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "node.toml"
    path.write_text("\n".join(lines) + RUNTIME_POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_omop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12-person OMOP CDM, written once per session (nodes open it read-only)."""
    path = tmp_path_factory.mktemp("omop") / "small.duckdb"
    write_small_omop(path)
    return path


@pytest.fixture
def runtime(tmp_path: Path, shared_data: Path, small_omop: Path) -> Iterator[NodeRuntime]:
    """A node runtime with CNSIM1 (``cnsim``), a 3-row CSV (``tiny``) and the small OMOP (``cdm``)."""
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("age,weight\n3,14.5\n4,16.0\n5,18.25\n", encoding="utf-8")
    toml = write_node_toml(
        tmp_path / "node",
        tabular={"cnsim": cnsim_path(shared_data, 1), "tiny": tiny},
        omop={"cdm": small_omop},
    )
    rt = NodeRuntime.open(load_node_config(toml))
    yield rt
    rt.close()


def make_task(**fields: Any) -> Task:
    """A task as the hub would deliver it; keyword arguments override the defaults."""
    base: dict[str, Any] = {
        "id": "task-1",
        "study_id": "study-1",
        "study_title": "Cholesterol in the cohort",
        "study_purpose": "testing",
        "service_type": "analytical_study",
        "requester": {"organisation": "uni-a", "category": "academic"},
        "hospital": "gosh",
        "analysis": "stats.mean_variance",
        "analysis_version": "1",
        "params": {"dataset": "cnsim", "variable": "LAB_TSC"},
        "round": 1,
        "state": {},
        "attempt": 1,
        "lease_expires_at": "2030-01-01T00:00:00Z",
    }
    base.update(fields)
    return Task.model_validate(base)


@pytest.fixture
def task_factory() -> Callable[..., Task]:
    """:func:`make_task`: a task with defaults, overridden by keyword arguments."""
    return make_task


@pytest.fixture
def node_toml_factory() -> Callable[..., Path]:
    """:func:`write_node_toml`: a development node.toml with the test policy."""
    return write_node_toml


# -- a real hub on a loopback port ----------------------------------------------------------------------

FINAL_STUDY_STATES = {"completed", "partially_completed", "rejected", "failed"}


class LiveHub:
    """The hub app served by uvicorn in a thread on a loopback port bound up front (not yet listening).

    Until :meth:`start`, connections to :attr:`url` are refused, as with a hub that is down.
    """

    def __init__(self, db_url: str) -> None:
        import socket

        from phds.hub.store import HubStore

        self.db_url = db_url
        self.store = HubStore.open(db_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock: socket.socket | None = sock
        self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.tokens: dict[str, str] = {}

    def start(self) -> None:
        """Serve on the port (again, after :meth:`stop_serving`)."""
        import socket

        import uvicorn

        from phds.hub.app import create_app
        from phds.hub.testing import hub_settings

        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port))
        settings = hub_settings(self.db_url, task_lease_seconds=30.0, poll_recheck_seconds=1.0)
        app = create_app(settings, store=self.store)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._sock]}, name="live-hub", daemon=True
        )
        self._thread.start()
        wait_for(lambda: bool(server.started), what="the hub to start")

    def stop_serving(self) -> None:
        """Stop answering (connections are refused again); the database stays."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the hub did not stop"
        self._server = self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def stop(self) -> None:
        self.stop_serving()
        self.store.close()

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=70)

    def network(self, hospitals: list[str]) -> None:
        """Hospitals and requesters ``uni-a`` (academic) and ``pharma-y`` (industry), with tokens."""
        from phds.hub.testing import add_org, add_user

        add_org(self.store, "uni-a", "requester", category="academic")
        add_org(self.store, "pharma-y", "requester", category="industry")
        for hospital in hospitals:
            add_org(self.store, hospital, "hospital")
        self.tokens = {
            "uni-a": add_user(self.store, "ana@uni-a.example", "requester", "uni-a")[1],
            "pharma-y": add_user(self.store, "bo@pharma-y.example", "requester", "pharma-y")[1],
        }

    def submit(self, org: str, hospitals: list[str], name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Submit a study as requester organisation *org*; the hub's view of it."""
        spec = {
            "title": f"{name} study", "purpose": "testing the node agent", "organisation": org,
            "service_type": "analytical_study", "hospitals": hospitals,
            "analysis": {"name": name, "params": params},
        }  # fmt: skip
        with self.http(self.tokens[org]) as http:
            response = http.post("/api/v1/studies", json=spec)
            assert response.status_code == 201, response.text
            view: dict[str, Any] = response.json()
            return view

    def await_study(
        self, org: str, study_id: str, until: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """Long-poll the study until *until* holds (default: a final state)."""
        check = until or (lambda v: v["state"] in FINAL_STUDY_STATES)
        version = 0
        with self.http(self.tokens[org]) as http:
            for _ in range(200):
                response = http.get(
                    f"/api/v1/studies/{study_id}/wait", params={"after_version": version, "timeout": 5}
                )
                assert response.status_code == 200, response.text
                view: dict[str, Any] = response.json()
                if check(view):
                    return view
                version = view["version"]
        pytest.fail(f"study {study_id} never reached the expected state")


def wait_for(check: Callable[[], object], *, what: str, timeout: float = 120.0) -> Any:
    """Poll *check* until it returns something truthy; fail (not a timing assertion) after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """A hub on a fresh SQLite file, bound to a loopback port but not started (call ``start()``)."""
    hub = LiveHub(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    yield hub
    hub.stop()


@pytest.fixture
def wait() -> Callable[..., Any]:
    """:func:`wait_for`."""
    return wait_for


@pytest.fixture
def node_cli_app() -> Any:
    """The ``phds node`` command group under a stand-in root, for ``CliRunner``."""
    import typer

    from phds.cli import node as node_cli

    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Stand-in for the phds root."""

    node_cli.register(root)
    return root
