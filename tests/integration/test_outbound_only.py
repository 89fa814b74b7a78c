"""DESIGN.md invariant 1 on a real network path: nodes are outbound-only, and a study completes anyway.

Each hospital's node enrols and runs inside a network namespace of its own, behind an nftables input
policy that drops every packet not belonging to a connection the namespace opened
(:mod:`.netns_support`). The hub runs in the test's namespace and each node reaches it over its own
veth pair. The test checks four things:

1. A feasibility study and a 2-round GLM complete at both hospitals, counts equal to the in-process
   count.
2. Nothing listens in a node's namespace, so there is nothing to connect to.
3. The firewall is real: a listener started in a node's namespace cannot be reached from the hub's
   side, while the same port answers from inside.
4. The only connections a node holds are the ones it opened to the hub.

*Attack it stops*: a compromised hub, or anyone on the hospital network, that tries to push a task to
a node, or to reach a node's state, over an inbound connection.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phds.omop.simulator import HospitalResult

from .conftest import hospital
from .netns_support import HospitalHost, NamespacedNetwork, hospital_hosts, missing_tools, run
from .support import feasibility_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAMES = ["alpha", "beta"]


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, HospitalHost]]:
    why_not = missing_tools()  # checked here, not at collection: it makes (and removes) a namespace
    if why_not is not None:
        pytest.skip(why_not)
    with hospital_hosts(NAMES) as built:
        yield built


@pytest.fixture(scope="module")
def network(
    tmp_path_factory: pytest.TempPathFactory,
    synthetic_hospitals: list[HospitalResult],
    hosts: dict[str, HospitalHost],
    shared_data: Path,
) -> Iterator[NamespacedNetwork]:
    """alpha and beta: a synthetic CDM each, and DataSHIELD's CNSIM1 and CNSIM2 as a tabular dataset."""
    cnsim = shared_data / "tabular" / "datashield" / "CNSIM"
    hospitals = [
        hospital(data, name, tabular={"cnsim": cnsim / f"CNSIM{i}.csv"})
        for i, (data, name) in enumerate(zip(synthetic_hospitals, NAMES, strict=False), start=1)
    ]
    with NamespacedNetwork(tmp_path_factory.mktemp("netns"), hospitals, hosts) as built:
        yield built


def test_a_feasibility_study_completes_with_nodes_that_accept_no_connection(
    network: NamespacedNetwork,
) -> None:
    with network.client() as client:
        study = client.submit(feasibility_spec(network, NAMES))
        result = client.results(study.id, wait=True)
    assert result.study.state.value == "completed", result.study
    assert sorted(result.attribution.answered) == NAMES
    for name in NAMES:
        assert network.node_hub_url(name).startswith(f"https://{network.hosts[name].hub_address}:")


def test_a_multi_round_glm_completes_behind_the_firewall(network: NamespacedNetwork) -> None:
    params = {"table": {"dataset": "cnsim"}, "formula": "DIS_DIAB ~ GENDER + LAB_HDL", "family": "binomial"}
    spec = {
        "title": "GLM behind a firewall",
        "purpose": "outbound-only test",
        "organisation": "acme-pharma",
        "service_type": "analytical_study",
        "hospitals": NAMES,
        "deadline_seconds": 300,
        "analysis": {"name": "stats.glm", "params": params},
    }
    with network.client() as client:
        study = client.submit(spec)
        result = client.results(study.id, wait=True)
    assert result.study.state.value == "completed", result.study
    assert result.raw["iterations"] >= 2 and sorted(result.raw["n_by_hospital"]) == NAMES


def test_nothing_listens_in_a_node_namespace(network: NamespacedNetwork) -> None:
    for name, host in network.hosts.items():
        listening = run("ss", "-Htln", namespace=host.namespace).stdout.strip()
        assert listening == "", f"{name}'s namespace listens: {listening}"


def test_the_only_connections_a_node_holds_are_the_ones_it_opened_to_the_hub(
    network: NamespacedNetwork,
) -> None:
    for host in network.hosts.values():
        rows = run("ss", "-Htn", "state", "established", namespace=host.namespace).stdout.split("\n")
        peers = {line.split()[-1] for line in rows if line.strip()}
        assert peers and peers <= {f"{host.hub_address}:{network.port}"}, peers


def test_the_firewall_drops_an_inbound_connection_to_a_listener_in_the_node_namespace(
    network: NamespacedNetwork,
) -> None:
    """A listener on every interface of alpha's namespace answers from inside it, and is unreachable
    from the hub's side: the connection times out (dropped), it is not refused (no firewall would
    answer with a reset, which would also fail the connect, so the test tells the two apart)."""
    host = network.hosts["alpha"]
    listener = (
        "import socket\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 8765))\n"
        "s.listen()\n"
        "print('up', flush=True)\n"
        "while True:\n"
        "    s.accept()[0].close()\n"
    )
    command = ["ip", "netns", "exec", host.namespace, sys.executable, "-c", listener]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "up"
        probe = f"import socket; socket.create_connection(({host.address!r}, 8765), 5).close()"
        inside = run(sys.executable, "-c", probe, namespace=host.namespace, check=False)
        assert inside.returncode == 0, inside.stderr
        with pytest.raises(TimeoutError):
            socket.create_connection((host.address, 8765), timeout=3)
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
