"""Fixtures for the node's governance core: a state database in a temporary folder and a node.toml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phds.node.audit import AuditLog, NodeDatabase

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
