"""``LocalNetwork``: start a hub and hospital nodes as real processes on loopback, and stop them.

The hub runs ``phds hub serve`` on a free port with a SQLite store in the work folder; each hospital
gets a ``node.toml``, is enrolled with a one-time token through ``phds node enrol`` and runs
``phds node run``. Organisations, people and tokens are created through the hub's service layer, as
``phds hub`` admin commands do. Everything is written under one work folder, logs included.

``start`` returns once every node has called the hub. For tests that break things, the hub and each
node can also be stopped with any signal and started again on the same port, database and credential
(``stop_hub``/``start_hub``, ``stop_node``/``start_node``, ``wait_for_node``); ``db_url`` puts the hub on
PostgreSQL, ``hub_env`` passes it settings (e.g. short task leases) and ``node_args`` adds options to
``phds node run``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from sqlalchemy import select

from phds.demo.hospital import DemoHospital, node_toml
from phds.demo.network_people import REQUESTER_CATEGORY, REQUESTER_ORG, create_people
from phds.errors import PhdsError
from phds.hub import services
from phds.hub.store import HubStore
from phds.hub.store.models import NodeRow, OrganisationRow, utcnow
from phds.protocol.trust import OrganisationAttestation
from phds.sdk import Client
from phds.trust import KeyPair, NetworkTrust, sign_spec

log = logging.getLogger(__name__)

__all__ = [
    "REQUESTER_ORG",
    "DemoHospital",
    "LocalNetwork",
    "RunningNode",
    "free_port",
    "node_toml",
    "phds_command",
]


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

    def __init__(
        self,
        workdir: Path,
        hospitals: list[DemoHospital],
        *,
        db_url: str | None = None,
        hub_env: dict[str, str] | None = None,
        node_args: tuple[str, ...] = (),
    ) -> None:
        """*db_url* is the hub's store (default: ``hub.sqlite`` in *workdir*); *hub_env* adds environment
        variables for the hub process only (e.g. ``PHDS_HUB_TASK_LEASE_SECONDS``); *node_args* are extra
        options of every ``phds node run`` (e.g. ``("--poll-wait", "5")``)."""
        self.workdir = workdir.resolve()
        self.hospitals = hospitals
        self.port = free_port()
        self.hub_url = f"http://127.0.0.1:{self.port}"
        # A subclass may listen wider, serve HTTPS (hub_args, ca_bundle): tests/integration/netns_support.py
        self.hub_host = "127.0.0.1"
        self.hub_args: tuple[str, ...] = ()
        self.ca_bundle: Path | None = None
        self.db_url = db_url or f"sqlite:///{self.workdir / 'hub.sqlite'}"
        self.hub_env = dict(hub_env or {})
        self.node_args = tuple(node_args)
        self.admin_token = ""
        self.requester_token = ""
        self.trust_dir = self.workdir / "network-trust"
        self.requester_key_path = self.workdir / "requester.key"
        self.attestation_path = self.workdir / "requester-attestation.json"
        self.network_keys: dict[str, str] = {}
        self.nodes: dict[str, RunningNode] = {}
        self.hub: subprocess.Popen[bytes] | None = None
        self._logs = self.workdir / "logs"

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> LocalNetwork:
        try:
            self.start()
        except BaseException:
            self.stop()  # no orphans when a node fails to enrol or the hub to start
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bootstrap the hub's organisations and people, start the hub, enrol and start every node."""
        self._logs.mkdir(parents=True, exist_ok=True)
        self._bootstrap()
        self.start_hub()
        enrolling: list[tuple[str, subprocess.Popen[bytes]]] = []
        try:
            for hospital in self.hospitals:  # the enrolments run side by side
                enrolling.append((hospital.name, self._enrol(hospital)))
            for name, process in enrolling:
                _, stderr = process.communicate(timeout=120)
                if process.returncode != 0:
                    raise PhdsError(f"enrolling {name} failed: {stderr.decode(errors='replace').strip()}")
        finally:
            for _, process in enrolling:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        for name in self.nodes:
            self.start_node(name)
        for name in self.nodes:
            self.wait_for_node(name)

    def start_hub(self) -> None:
        """Start (or restart) the hub process on the same port and database; wait until it answers."""
        if self.hub is not None and self.hub.poll() is None:
            raise PhdsError("the hub is already running")
        args = (
            "serve",
            "--db",
            self.db_url,
            "--host",
            self.hub_host,
            "--port",
            str(self.port),
            *self.hub_args,
        )
        self.hub = self._spawn("hub", "hub", *args, extra_env=self.hub_env)
        self._wait_for_hub()

    def stop_hub(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send *sig* to the hub and wait for it to exit (SIGKILL after *timeout*); its exit code."""
        if self.hub is None:
            raise PhdsError("the hub was never started")
        return _stop_process(self.hub, sig, timeout)

    def start_node(
        self, name: str, *, extra_env: dict[str, str] | None = None, node_args: tuple[str, ...] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) the agent of hospital *name* with its existing config and credential;
        *extra_env* adds environment variables to this process (e.g. a fault-injection point), and
        *node_args* replaces the network's ``phds node run`` options for it."""
        node = self.nodes[name]
        if node.process is not None and node.process.poll() is None:
            raise PhdsError(f"the node of {name} is already running")
        args = self.node_args if node_args is None else node_args
        command = ("node", "run", "--config", str(node.config), *args)
        node.process = self._spawn(
            f"node-{name}", *command, extra_env=extra_env, prefix=self.node_prefix(name)
        )
        return node.process

    def wait_for_node(self, name: str, *, since: datetime | None = None, timeout: float = 60.0) -> None:
        """Wait until the hub has seen the node of *name* call it (after *since*, when given).

        The hub records ``last_seen_at`` at most every ``PHDS_HUB_TOKEN_TOUCH_SECONDS`` (60 s by default),
        so waiting for a restarted node with *since* needs that setting at 0 in ``hub_env``."""
        node = self.nodes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise PhdsError(f"the node of {name} exited; see {self.log_path(f'node-{name}')}")
            seen = self._last_seen(name)
            if seen is not None and (since is None or seen >= since):
                return
            time.sleep(0.1)
        raise PhdsError(f"the node of {name} did not reach the hub within {timeout:.0f} s")

    def _last_seen(self, name: str) -> datetime | None:
        store = HubStore.open(self.db_url, migrate=False)
        try:
            with store.engine.connect() as con:
                seen = con.execute(
                    select(NodeRow.last_seen_at)
                    .join(OrganisationRow, NodeRow.organisation_id == OrganisationRow.id)
                    .where(OrganisationRow.name == name)
                ).scalar_one_or_none()
        finally:
            store.close()
        if seen is not None and seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        return seen

    def stop_node(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send *sig* to the node of *name*, wait for it to exit (SIGKILL after *timeout*); its exit code."""
        process = self.nodes[name].process
        if process is None:
            raise PhdsError(f"the node of {name} was never started")
        return _stop_process(process, sig, timeout)

    def stop(self) -> None:
        """Stop the nodes, then the hub: SIGTERM, and SIGKILL for a process that does not exit."""
        processes = [n.process for n in self.nodes.values() if n.process is not None]
        if self.hub is not None:
            processes.append(self.hub)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.send_signal(signal.SIGCONT)  # a process paused with SIGSTOP must run to exit
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- pieces ----------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of the network's processes (and of ``phds`` commands run against it, which sign
        their studies with the requester's key and attestation)."""
        env = dict(os.environ)
        env.update(
            {
                "PHDS_HUB_ENVIRONMENT": "development",
                "PHDS_HUB_DATABASE_URL": self.db_url,
                "PHDS_HUB_PUBLIC_URL": self.hub_url,
                "PHDS_REQUESTER_KEY": str(self.requester_key_path),
                "PHDS_ATTESTATION": str(self.attestation_path),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def client(self, **options: Any) -> Client:
        """The requester's SDK client: its token, and its key and attestation to sign studies."""
        key, attestation = self.requester_key_path, self.attestation_path
        if self.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_bundle))
            options.setdefault("transport", httpx.HTTPTransport(verify=verify))
        return Client(self.hub_url, self.requester_token, key=key, attestation=attestation, **options)

    def signed(self, spec: dict[str, Any]) -> dict[str, Any]:
        """*spec* signed by the requester, as ``POST /studies/signed`` takes it (for raw HTTP clients)."""
        key = KeyPair.load(self.requester_key_path)
        attestation = OrganisationAttestation.model_validate_json(
            self.attestation_path.read_text(encoding="utf-8")
        )
        return sign_spec(spec, key, attestation).model_dump(mode="json")

    def _trust(self) -> None:
        """The operator's network trust key (kept off the hub), and the requester's key and attestation."""
        trust = NetworkTrust.init(self.trust_dir)
        key = KeyPair.generate()
        key.save(self.requester_key_path)
        attestation = trust.sign_organisation(REQUESTER_ORG, REQUESTER_CATEGORY, key.public_key_b64)
        self.attestation_path.write_text(attestation.model_dump_json(indent=2), encoding="utf-8")
        self.network_keys = trust.public_keys()

    def log_path(self, log_name: str) -> Path:
        """Where the output of process *log_name* (``hub``, ``node-<hospital>``) is appended."""
        return self._logs / f"{log_name}.log"

    def node_prefix(self, hospital: str) -> list[str]:
        """What a node's commands run under (e.g. ``ip netns exec …``); nothing here."""
        return []

    def node_hub_url(self, hospital: str) -> str:
        """The hub's URL as *hospital*'s node reaches it."""
        return self.hub_url

    def _spawn(
        self,
        log_name: str,
        *args: str,
        extra_env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = self.env()
        env.update(extra_env or {})
        with self.log_path(log_name).open("ab") as log_file:
            return subprocess.Popen(
                [*(prefix or []), *phds_command("--verbose", *args)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
            )

    def _bootstrap(self) -> None:
        self._trust()
        store = HubStore.open(self.db_url)
        try:
            people = create_people(store, self.hospitals, utcnow() + timedelta(days=7))
        finally:
            store.close()
        self.admin_token, self.requester_token = people.admin_token, people.requester_token
        for hospital in self.hospitals:
            folder = self.workdir / "nodes" / hospital.name
            token = people.steward_tokens[hospital.name]
            self.nodes[hospital.name] = RunningNode(
                hospital, folder, folder / "node.toml", steward_token=token
            )

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

    def _enrol(self, hospital: DemoHospital) -> subprocess.Popen[bytes]:
        """Start ``phds node enrol`` for *hospital* with a fresh one-time token."""
        node = self.nodes[hospital.name]
        node.folder.mkdir(parents=True, exist_ok=True)
        hub_url = self.node_hub_url(hospital.name)
        node.config.write_text(
            node_toml(hospital, hub_url, self.network_keys, self.ca_bundle), encoding="utf-8"
        )
        token = self._enrolment_token(hospital.name)
        return subprocess.Popen(
            [
                *self.node_prefix(hospital.name),
                *phds_command("node", "enrol", "--config", str(node.config), "--token", token),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=self.env(),
        )

    def _wait_for_hub(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hub is not None and self.hub.poll() is not None:
                raise PhdsError(f"the hub exited at start; see {self._logs / 'hub.log'}")
            try:
                verify = ssl.create_default_context(cafile=str(self.ca_bundle)) if self.ca_bundle else True
                if httpx.get(f"{self.hub_url}/api/v1/health", timeout=1, verify=verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise PhdsError(f"the hub did not answer within {timeout:.0f} s; see {self._logs / 'hub.log'}")


def _stop_process(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        process.send_signal(signal.SIGCONT)  # a process paused with SIGSTOP must run to act on it
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
