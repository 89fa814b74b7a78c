"""A real hub served by uvicorn on loopback in this process, with a small network, and nodes to answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from phds.hub.app import create_app
from phds.hub.store import HubStore
from phds.hub.testing import add_org, add_user, enrol, hub_settings

HOSPITALS = ("north-general", "central-tertiary", "west-respiratory")


@dataclass
class Network:
    """A running hub: its URL, people's tokens and each hospital's node credential."""

    url: str
    requester: str
    other_requester: str
    steward: str
    nodes: dict[str, str] = field(default_factory=dict)

    def answer(self, hospital: str, status: str = "ok", payload: dict[str, Any] | None = None) -> int:
        """As *hospital*'s node: lease its queued tasks and answer each one; how many were answered."""
        headers = {"Authorization": f"Bearer {self.nodes[hospital]}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as node:
            tasks = node.get("/api/v1/nodes/me/tasks", params={"wait": 0}).raise_for_status().json()
            for task in tasks:
                body = {"task_id": task["id"], "status": status, "payload": payload or {}}
                if status != "ok":
                    body["reason"] = f"{hospital} says {status}"
                node.post(f"/api/v1/tasks/{task['id']}/result", json=body).raise_for_status()
        return len(tasks)

    @contextmanager
    def nodes_answering(self, *hospitals: str) -> Iterator[None]:
        """Run a node per hospital in a thread: each long-polls for tasks and answers ``ok``."""
        stop = threading.Event()

        def node(hospital: str) -> None:
            headers = {"Authorization": f"Bearer {self.nodes[hospital]}"}
            with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
                while not stop.is_set():
                    tasks = http.get("/api/v1/nodes/me/tasks", params={"wait": 1}).raise_for_status().json()
                    for task in tasks:
                        body = {"task_id": task["id"], "status": "ok", "payload": {}}
                        http.post(f"/api/v1/tasks/{task['id']}/result", json=body).raise_for_status()

        threads = [threading.Thread(target=node, args=(h,), daemon=True) for h in hospitals]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join()


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:  # startup, not a measurement
        if not thread.is_alive():
            pytest.fail("the hub did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """A hub on a fresh SQLite file with acme-pharma (requester), three hospitals with enrolled nodes."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    store = HubStore.open(url)
    add_org(store, "acme-pharma", "requester")
    add_org(store, "other-uni", "requester", category="academic")
    for hospital in HOSPITALS:
        add_org(store, hospital, "hospital")
    _, requester = add_user(store, "ana@acme.example", "requester", "acme-pharma")
    _, other = add_user(store, "olu@uni.example", "requester", "other-uni")
    _, steward = add_user(store, "sam@north.example", "steward", "north-general")
    nodes = {hospital: enrol(store, hospital, url)[1] for hospital in HOSPITALS}
    app = create_app(hub_settings(url), store=store)
    try:
        with _serve(app) as base:
            yield Network(base, requester, other, steward, nodes)
    finally:
        store.close()
