"""``LocalNetwork``: start a hub and hospital nodes as real processes on loopback, and stop them.

The hub runs ``phds hub serve`` on a free port with a SQLite store in the work folder; each hospital
gets a ``node.toml``, is enrolled with a one-time token through ``phds node enrol`` and runs
``phds node run``. Organisations, people and tokens are created through the hub's service layer, as
``phds hub`` admin commands do. Everything is written under one work folder, logs included.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

from phds.errors import PhdsError
from phds.hub import services
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.protocol.organisations import OrganisationCreate
from phds.protocol.users import UserCreate

log = logging.getLogger(__name__)

REQUESTER_ORG = "acme-pharma"
REQUESTER_CATEGORY = "industry"


@dataclass
class DemoHospital:
    """A hospital of the demo network and the data its node serves."""

    name: str
    display_name: str
    omop_url: str | None = None
    tabular: dict[str, Path] = field(default_factory=dict)
    approval: Literal["auto", "manual"] = "auto"
    country: str = "GB"
    min_cell_count: int = 5


@dataclass
class RunningNode:
    """A node process and where its files are."""

    hospital: DemoHospital
    folder: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None
    steward_token: str = ""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phds_command(*args: str) -> list[str]:
    """The command line running this installation's ``phds`` with *args*."""
    return [sys.executable, "-m", "phds.cli.main", *args]


class LocalNetwork:
    """A hub and its hospitals' nodes as processes on loopback; a context manager that cleans up."""

    def __init__(self, workdir: Path, hospitals: list[DemoHospital]) -> None:
        self.workdir = workdir.resolve()
        self.hospitals = hospitals
        self.port = free_port()
        self.hub_url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{self.workdir / 'hub.sqlite'}"
        self.admin_token = ""
        self.requester_token = ""
        self.nodes: dict[str, RunningNode] = {}
        self.hub: subprocess.Popen[bytes] | None = None
        self._logs = self.workdir / "logs"

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> LocalNetwork:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bootstrap the hub's organisations and people, start the hub, enrol and start every node."""
        self._logs.mkdir(parents=True, exist_ok=True)
        self._bootstrap()
        self.hub = self._spawn("hub", "hub", "serve", "--db", self.db_url, "--port", str(self.port))
        self._wait_for_hub()
        for hospital in self.hospitals:
            self._enrol(hospital)
        for node in self.nodes.values():
            node.process = self._spawn(
                f"node-{node.hospital.name}", "node", "run", "--config", str(node.config)
            )

    def stop(self) -> None:
        """Stop the nodes, then the hub: SIGTERM, and SIGKILL for a process that does not exit."""
        processes = [n.process for n in self.nodes.values() if n.process is not None]
        if self.hub is not None:
            processes.append(self.hub)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- pieces ----------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PHDS_HUB_ENVIRONMENT": "development",
                "PHDS_HUB_DATABASE_URL": self.db_url,
                "PHDS_HUB_PUBLIC_URL": self.hub_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _spawn(self, log_name: str, *args: str) -> subprocess.Popen[bytes]:
        log_file = (self._logs / f"{log_name}.log").open("ab")
        return subprocess.Popen(
            phds_command("--verbose", *args),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env(),
            cwd=self.workdir,
        )

    def _bootstrap(self) -> None:
        store = HubStore.open(self.db_url)
        expires = utcnow() + timedelta(days=7)
        try:
            with store.unit() as uow:
                operator = OrganisationCreate(name="operator", display_name="PHDS operator", kind="operator")
                self.admin_token, _ = services.bootstrap_admin(
                    uow, operator=operator, email="admin@phds.local", display_name="Admin", expires_at=expires
                )
                services.create_organisation(
                    uow,
                    OrganisationCreate(
                        name=REQUESTER_ORG,
                        display_name="Acme Paediatric Pharma",
                        kind="requester",
                        category=REQUESTER_CATEGORY,
                    ),
                )
                requester = services.create_user(
                    uow,
                    UserCreate(
                        email="researcher@acme.example",
                        display_name="A. Researcher",
                        role="requester",
                        organisation=REQUESTER_ORG,
                    ),
                )
                self.requester_token, _ = services.issue_token(uow, user_id=requester.id, expires_at=expires)
                for hospital in self.hospitals:
                    services.create_organisation(
                        uow,
                        OrganisationCreate(
                            name=hospital.name,
                            display_name=hospital.display_name,
                            kind="hospital",
                            country=hospital.country,
                        ),
                    )
                    steward = services.create_user(
                        uow,
                        UserCreate(
                            email=f"steward@{hospital.name}.example",
                            display_name=f"Data steward, {hospital.display_name}",
                            role="steward",
                            organisation=hospital.name,
                        ),
                    )
                    token, _ = services.issue_token(uow, user_id=steward.id, expires_at=expires)
                    folder = self.workdir / "nodes" / hospital.name
                    self.nodes[hospital.name] = RunningNode(
                        hospital, folder, folder / "node.toml", steward_token=token
                    )
        finally:
            store.close()

    def _enrolment_token(self, hospital: str) -> str:
        store = HubStore.open(self.db_url, migrate=False)
        try:
            with store.unit() as uow:
                token, _ = services.issue_enrolment_token(
                    uow, hospital=hospital, expires_at=utcnow() + timedelta(hours=1), created_by=None
                )
                return token
        finally:
            store.close()

    def _enrol(self, hospital: DemoHospital) -> None:
        node = self.nodes[hospital.name]
        node.folder.mkdir(parents=True, exist_ok=True)
        node.config.write_text(node_toml(hospital, self.hub_url), encoding="utf-8")
        token = self._enrolment_token(hospital.name)
        done = subprocess.run(
            phds_command("node", "enrol", "--config", str(node.config), "--token", token),
            capture_output=True,
            env=self._env(),
            check=False,
        )
        if done.returncode != 0:
            raise PhdsError(
                f"enrolling {hospital.name} failed: {done.stderr.decode(errors='replace').strip()}"
            )

    def _wait_for_hub(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hub is not None and self.hub.poll() is not None:
                raise PhdsError(f"the hub exited at start; see {self._logs / 'hub.log'}")
            try:
                if httpx.get(f"{self.hub_url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise PhdsError(f"the hub did not answer within {timeout:.0f} s; see {self._logs / 'hub.log'}")


def node_toml(hospital: DemoHospital, hub_url: str) -> str:
    """The ``node.toml`` of a demo hospital: its data, and a policy with its approval mode."""
    lines = [
        "[node]",
        f'name = "{hospital.name}"',
        f'hub_url = "{hub_url}"',
        'credential_file = "node.credential"',
        'state_dir = "state"',
        'environment = "development"',
        "",
    ]
    if hospital.omop_url:
        lines += ["[[sources.omop]]", 'name = "cdm"', f'url = "{hospital.omop_url}"', ""]
    for name, path in hospital.tabular.items():
        lines += ["[[sources.tabular]]", f'name = "{name}"', f'path = "{path.resolve()}"', ""]
    lines += [
        "[policy]",
        f"min_cell_count = {hospital.min_cell_count}",
        "",
        "[[policy.rules]]",
        'name = "feasibility counts"',
        'analyses = ["feasibility.*"]',
        f'approval = "{hospital.approval}"',
        "",
        "[[policy.rules]]",
        'name = "statistics and platform checks"',
        'analyses = ["stats.*", "system.*"]',
        f'approval = "{hospital.approval}"',
        "",
    ]
    return "\n".join(lines)
