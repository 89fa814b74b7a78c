"""Integration fixtures: small synthetic hospitals (generated once) and networks of real processes.

Networks are package-scoped (one per kind, shared by the modules that use it) and started through
:func:`running_network`, which always stops every process it started, even when a test fails or a
start-up step breaks.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from phds.demo.network import DemoHospital, LocalNetwork
from phds.hub import services
from phds.hub.store import HubStore
from phds.hub.store.models import utcnow
from phds.omop.simulator import HospitalResult, generate

#: Children per synthetic hospital: enough for non-trivial counts, small enough for 2 shared cores.
PATIENTS = 600

#: Short leases and a fast sweep, so redelivery and deadlines happen within seconds.
FAST_HUB = {
    "PHDS_HUB_TASK_LEASE_SECONDS": "2",
    "PHDS_HUB_RUNNER_TICK_SECONDS": "0.2",
    "PHDS_HUB_POLL_RECHECK_SECONDS": "1",
    "PHDS_HUB_TOKEN_TOUCH_SECONDS": "0",
}
#: Nodes long-poll for 3 s, so a node stopped with SIGTERM (which finishes its poll) exits soon.
FAST_NODE = ("--poll-wait", "3", "--catalogue-minutes", "0")


@pytest.fixture(scope="session")
def synthetic_hospitals(tmp_path_factory: pytest.TempPathFactory) -> list[HospitalResult]:
    """Three synthetic children's hospitals as DuckDB files, shared read-only by every network."""
    out = tmp_path_factory.mktemp("hospitals")
    return generate(out, hospitals=3, patients=PATIENTS, seed=11)


def hospital(data: HospitalResult, name: str, **fields: Any) -> DemoHospital:
    """A network hospital named *name* that serves the synthetic CDM *data*."""
    return DemoHospital(name, name.title(), omop_url=f"duckdb:///{data.path.resolve()}", **fields)


@contextmanager
def running_network(workdir: Path, hospitals: list[DemoHospital], **options: Any) -> Iterator[LocalNetwork]:
    """A started :class:`LocalNetwork` with fast leases; every process is stopped on the way out."""
    options.setdefault("hub_env", FAST_HUB)
    options.setdefault("node_args", FAST_NODE)
    with LocalNetwork(workdir, hospitals, **options) as network:
        yield network


@pytest.fixture(scope="package")
def resilience_network(
    tmp_path_factory: pytest.TempPathFactory, synthetic_hospitals: list[HospitalResult]
) -> Iterator[LocalNetwork]:
    """alpha and beta answer feasibility studies at once; gamma's steward approves each by hand."""
    a, b, c = synthetic_hospitals
    hospitals = [hospital(a, "alpha"), hospital(b, "beta"), hospital(c, "gamma", approval="manual")]
    with running_network(tmp_path_factory.mktemp("resilience"), hospitals) as network:
        yield network


@pytest.fixture
def network(resilience_network: LocalNetwork) -> Iterator[LocalNetwork]:
    """The resilience network, put back together after each test: paused processes resumed, stopped
    ones restarted, so one test's broken node does not break the next."""
    yield resilience_network
    revive(resilience_network)


def revive(network: LocalNetwork) -> None:
    """Resume paused processes and restart any that exited."""
    processes = [network.hub] + [n.process for n in network.nodes.values()]
    for process in processes:
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
    since = datetime.now(UTC)
    restarted = network.hub is None or network.hub.poll() is not None
    if restarted:
        network.start_hub()
    for name, node in network.nodes.items():
        if node.process is None or node.process.poll() is not None:
            network.start_node(name)
            restarted = True
    if restarted:
        for name in network.nodes:
            network.wait_for_node(name, since=since)


@dataclass(frozen=True)
class Principals:
    """Extra people of the guarded network: a rival requester organisation and unusable tokens."""

    rival_requester: str  # a requester of rival-labs, another requester organisation
    expired_requester: str  # acme-pharma's researcher, expired yesterday
    revoked_requester: str  # acme-pharma's researcher, revoked
    expired_node: str  # a credential of north's node that expired yesterday


@pytest.fixture(scope="package")
def guarded_network(
    tmp_path_factory: pytest.TempPathFactory, synthetic_hospitals: list[HospitalResult]
) -> Iterator[LocalNetwork]:
    """north and south answer at once; exiled is there to have its node's credential revoked."""
    a, b, c = synthetic_hospitals
    hospitals = [hospital(a, "north"), hospital(b, "south"), hospital(c, "exiled")]
    with running_network(tmp_path_factory.mktemp("guarded"), hospitals) as network:
        yield network


@pytest.fixture(scope="package")
def principals(guarded_network: LocalNetwork) -> Principals:
    """Issue the extra organisations and tokens through the hub's service layer (as ``phds hub`` does)."""
    from phds.hub.testing import add_org, add_user

    now = utcnow()
    store = HubStore.open(guarded_network.db_url, migrate=False)
    try:
        add_org(store, "rival-labs", "requester", category="academic")
        _, rival = add_user(store, "someone@rival.example", "requester", "rival-labs")
        with store.unit() as uow:
            researcher = uow.users.by_email("researcher@acme.example")
            assert researcher is not None
            expired, _ = services.issue_token(uow, user_id=researcher.id, expires_at=now - timedelta(days=1))
            revoked, row = services.issue_token(
                uow, user_id=researcher.id, expires_at=now + timedelta(days=1)
            )
            services.revoke_token(uow, row.id, now)
            org = uow.organisations.by_name("north")
            north = uow.nodes.by_organisation(org.id) if org else None
            assert north is not None
            expired_node, _ = services.issue_token(uow, node_id=north.id, expires_at=now - timedelta(days=1))
    finally:
        store.close()
    return Principals(rival, expired, revoked, expired_node)
