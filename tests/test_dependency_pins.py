"""Pins that DESIGN.md records as measured facts, checked so that nobody lifts them by accident."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def test_duckdb_is_pinned_below_2_for_circepy() -> None:
    # ohdsi-circepy 0.3 builds cohorts through ibis 12 and fails under duckdb 2.x ("connection has an
    # unfinished result", fetch_arrow_table errors, broken descendant expansion): DESIGN.md, Known details.
    assert any(r.replace(" ", "").startswith("duckdb>=") and "<2" in r for r in _requirements())
    assert int(version("duckdb").split(".")[0]) < 2
