"""The steward console over a real node folder, for tests/node/test_console*.py: a node whose own
executor filed two signed studies, and an in-process browser of the real console app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fastapi import FastAPI

from phds.demo.scenario import default_cohort
from phds.node.config import NodeConfig, load_node_config
from phds.node.console import announce_link, create_console
from phds.node.executor import NodeRuntime, execute_task
from phds.protocol.tasks import ResultStatus, Task
from phds.trust import KeyPair, NetworkTrust, sign_spec

STEWARD = "Dr Console"
POLICY = """
[policy]
min_cell_count = 5

[[policy.rules]]
name = "pharma feasibility by hand"
analyses = ["feasibility.*"]
categories = ["industry"]
approval = "manual"

[[policy.rules]]
name = "academic feasibility"
analyses = ["feasibility.*"]
approval = "auto"
"""


@dataclass
class NodeFolder:
    """A node's folder with two signed studies of pharma-y waiting for its steward."""

    config_path: Path
    config: NodeConfig
    studies: list[str] = field(default_factory=list)


def signed_task(study_id: str, title: str, trust: NetworkTrust, key: KeyPair) -> Task:
    attestation = trust.sign_organisation("pharma-y", "industry", key.public_key_b64)
    params = {"cohort": default_cohort(), "breakdowns": ["sex", "age_group"]}
    spec = {
        "title": title,
        "purpose": "How many children with asthma take salbutamol?",
        "organisation": "pharma-y",
        "service_type": "feasibility",
        "hospitals": ["gosh", "alder"],
        "analysis": {"name": "feasibility.count", "version": "1", "params": params},
    }
    return Task.model_validate(
        {
            "id": f"task-{study_id}",
            "study_id": study_id,
            "study_title": "(the hub's title)",
            "study_purpose": "(the hub's purpose)",
            "service_type": "feasibility",
            # The hub claims "academic"; the node takes the attested "industry".
            "requester": {"organisation": "pharma-y", "category": "academic"},
            "hospital": "gosh",
            "analysis": "feasibility.count",
            "analysis_version": "1",
            "params": params,
            "round": 1,
            "state": {},
            "attempt": 1,
            "lease_expires_at": datetime.now(UTC) + timedelta(minutes=5),
            "signed_spec": sign_spec(spec, key, attestation).model_dump(mode="json"),
        }
    )


@pytest.fixture
def console_node(tmp_path: Path, small_omop: Path) -> NodeFolder:
    """A node folder whose own executor filed two signed pharma-y studies for its steward."""
    trust = NetworkTrust.init(tmp_path / "trust")
    key = KeyPair.generate()
    keys = ", ".join(f'"{k}" = "{v}"' for k, v in trust.public_keys().items())
    folder = tmp_path / "node"
    folder.mkdir()
    path = folder / "node.toml"
    path.write_text(
        "\n".join(
            [
                "[node]",
                'name = "gosh"',
                'hub_url = "http://127.0.0.1:9"',
                'credential_file = "secrets/node.credential"',
                'state_dir = "state"',
                'environment = "development"',
                "",
                "[[sources.omop]]",
                'name = "cdm"',
                f'url = "duckdb:///{small_omop}"',
                "",
                "[trust]",
                f"network_keys = {{ {keys} }}",
                "",
            ]
        )
        + POLICY,
        encoding="utf-8",
    )
    config = load_node_config(path)
    runtime = NodeRuntime.open(config)
    try:  # filed by the node's own executor, as `phds node run` files them
        for study_id, title in (("study-1", "Asthma and salbutamol"), ("study-2", "A second look")):
            result = execute_task(signed_task(study_id, title, trust, key), runtime)
            assert result.status is ResultStatus.AWAITING_APPROVAL, result.reason
    finally:
        runtime.close()
    return NodeFolder(path, config, ["study-1", "study-2"])


class Browser:
    """A synchronous httpx client of the console app in-process (ASGI), over https so that it keeps and
    sends the console's Secure cookies as a browser does."""

    def __init__(self, app: FastAPI, portal: anyio.from_thread.BlockingPortal) -> None:
        self.portal = portal
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://127.0.0.1")

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self._client.get, path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self._client.post, path, **kwargs))

    def close(self) -> None:
        self.portal.call(self._client.aclose)


@dataclass
class Console:
    app: FastAPI
    http: Browser
    links: list[str]

    def link_token(self) -> str:
        return announce_link(self.app).rsplit("token=", 1)[1]

    def sign_in(self) -> None:
        response = self.http.get(f"/sign-in?token={self.link_token()}")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/approvals"

    def csrf(self, path: str = "/approvals") -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.http.get(path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)


@pytest.fixture(scope="module")
def console_portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    """An event loop in a thread, so synchronous tests can drive the ASGI app."""
    with anyio.from_thread.start_blocking_portal() as blocking_portal:
        yield blocking_portal


def make_console(config: NodeConfig, portal: anyio.from_thread.BlockingPortal) -> Console:
    """The real console app of *config*, and a browser of it; its links are collected, not printed."""
    links: list[str] = []
    app = create_console(config, steward=STEWARD, base_url="https://127.0.0.1:8765", announce=links.append)
    return Console(app, Browser(app, portal), links)


@pytest.fixture
def console(console_node: NodeFolder, console_portal: anyio.from_thread.BlockingPortal) -> Iterator[Console]:
    c = make_console(console_node.config, console_portal)
    yield c
    c.http.close()
