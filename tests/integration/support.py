"""Helpers of the integration tests: wait on conditions, read the hub's store, run ``phds`` commands.

Nothing here fakes a component: the hub and the nodes are real processes (``phds.demo.LocalNetwork``),
the hub's tables are read through its own SQLAlchemy models, and the nodes' audit logs through the
``phds node audit`` commands a hospital runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import httpx
from sqlalchemy import func, select

from phds.demo.network import LocalNetwork, phds_command
from phds.demo.scenario import default_cohort
from phds.hub.store import HubStore
from phds.hub.store.billing_models import EventCursorRow, StudyEventRow, UsageReceiptRow
from phds.hub.store.models import Base
from phds.hub.store.study_models import ResultRow, TaskRow

T = TypeVar("T")

#: Generous: conditions are waited on, never timed. Two shared cores can be slow.
TIMEOUT = 90.0


def wait_until(condition: Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
    """Poll *condition* until it returns something truthy; fail naming *what* after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.05)


@contextmanager
def hub_store(network: LocalNetwork) -> Iterator[HubStore]:
    """The running hub's own database, opened without migrating (the hub process owns the schema)."""
    store = HubStore.open(network.db_url, migrate=False)
    try:
        yield store
    finally:
        store.close()


def tasks_of(network: LocalNetwork, study_id: str) -> list[dict[str, Any]]:
    """The hub's task rows of a study: id, node, round, state, attempt."""
    with hub_store(network) as store, store.engine.connect() as con:
        rows = con.execute(
            select(TaskRow.id, TaskRow.node_id, TaskRow.round, TaskRow.state, TaskRow.attempt).where(
                TaskRow.study_id == uuid.UUID(study_id)
            )
        ).all()
    return [dict(row._mapping) for row in rows]


def results_of(network: LocalNetwork, study_id: str) -> list[dict[str, Any]]:
    """The hub's stored results of a study: task id, status, audit hash."""
    with hub_store(network) as store, store.engine.connect() as con:
        rows = con.execute(
            select(ResultRow.task_id, ResultRow.status, ResultRow.audit_hash).where(
                ResultRow.study_id == uuid.UUID(study_id)
            )
        ).all()
    return [dict(row._mapping) for row in rows]


def metered_receipts(network: LocalNetwork, study_id: str, expected: int) -> list[dict[str, Any]]:
    """The study's usage receipts as the hub metered them, once the hub's runner has metered
    *expected* of them (metering runs on the runner's tick); then checks that no more arrive."""

    def read() -> list[dict[str, Any]]:
        with hub_store(network) as store, store.engine.connect() as con:
            rows = con.execute(
                select(UsageReceiptRow.receipt_id, UsageReceiptRow.task_id, UsageReceiptRow.hospital,
                       UsageReceiptRow.outcome, UsageReceiptRow.receipt)
                .where(UsageReceiptRow.study_id == uuid.UUID(study_id))
            ).all()  # fmt: skip
        return [dict(row._mapping) for row in rows]

    wait_until(lambda: len(read()) >= expected, "the hub to meter the receipts")
    time.sleep(1.0)  # five runner ticks: a second metering of anything would show now
    return read()


def metering_settled(network: LocalNetwork) -> None:
    """Wait until the hub's metering has read every study event (it runs on the runner's tick), so the
    store's rows stop changing by themselves."""

    def settled() -> bool:
        with hub_store(network) as store, store.engine.connect() as con:
            last = con.execute(select(func.max(StudyEventRow.id))).scalar_one_or_none() or 0
            cursor = con.execute(
                select(EventCursorRow.last_event_id).where(EventCursorRow.consumer == "metering")
            ).scalar_one_or_none()
        return (cursor or 0) >= last

    wait_until(settled, "the hub's metering to read every study event")


def hub_row_counts(network: LocalNetwork) -> dict[str, int]:
    """Rows in every table of the hub's schema."""
    with hub_store(network) as store, store.engine.connect() as con:
        return {
            table.name: int(con.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def cdm_row_counts(omop_url: str) -> dict[str, int]:
    """Rows of every table of a DuckDB hospital, opened read-only as its node does (a dropped or added
    table changes the keys)."""
    con = duckdb.connect("/" + omop_url.removeprefix("duckdb:///").lstrip("/"), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        counts = {}
        for name in sorted(names):
            row = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            counts[name] = int(row[0]) if row else -1
        return counts
    finally:
        con.close()


def phds(network: LocalNetwork, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a ``phds`` command as an operator or a steward would, with the network's environment."""
    done = subprocess.run(
        phds_command(*args), capture_output=True, text=True, env=network.env(), check=False, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"phds {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def audit_entries(network: LocalNetwork, hospital: str, study_id: str) -> list[dict[str, Any]]:
    """The node's audit entries of one study (``phds node audit show --json``)."""
    config = str(network.nodes[hospital].config)
    out = phds(network, "node", "audit", "show", "--config", config, "--study", study_id, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def audit_entries_now(network: LocalNetwork, hospital: str, study_id: str) -> list[dict[str, Any]]:
    """The same entries read in process through :mod:`phds.node.audit` (cheap enough to poll)."""
    from phds.node.audit import AuditLog, NodeDatabase
    from phds.node.config import load_node_config

    db = NodeDatabase(load_node_config(network.nodes[hospital].config).db_path)
    try:
        return [entry.to_json() for entry in AuditLog(db).entries(study_id)]
    finally:
        db.close()


def audit_verify(network: LocalNetwork, hospital: str) -> subprocess.CompletedProcess[str]:
    """``phds node audit verify`` of the node of *hospital*; exits 1 on a broken chain."""
    return phds(network, "node", "audit", "verify", "--config", str(network.nodes[hospital].config))


def approve(network: LocalNetwork, hospital: str, study_id: str) -> None:
    """The hospital's steward approves the study at the node (``phds node approve``)."""
    config = str(network.nodes[hospital].config)
    phds(network, "node", "approve", study_id, "--config", config, "--as", f"steward@{hospital}")


def feasibility_spec(network: LocalNetwork, hospitals: list[str], **fields: Any) -> dict[str, Any]:
    """A feasibility study of the demo cohort (asthma and salbutamol, 2-11), by sex."""
    spec: dict[str, Any] = {
        "title": "Integration: asthma and salbutamol",
        "purpose": "Integration test of the federated network",
        "organisation": "acme-pharma",
        "service_type": "feasibility",
        "hospitals": hospitals,
        "analysis": {
            "name": "feasibility.count",
            "params": {"cohort": default_cohort(), "breakdowns": ["sex"]},
        },
        "deadline_seconds": 300,
    }
    spec.update(fields)
    return spec


def api(network: LocalNetwork, token: str | None = None) -> httpx.Client:
    """A plain HTTP client of the hub's API, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{network.hub_url}/api/v1", headers=headers, timeout=60)


def tracebacks(log: Path) -> list[str]:
    """Lines of a process log that start a Python traceback or report a 500."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return [
        line for line in text.splitlines() if "Traceback (most recent call last)" in line or '" 500 ' in line
    ]


def credential(network: LocalNetwork, hospital: str) -> dict[str, Any]:
    """The node's credential file (JSON: ``credential``, ``node_id``, ``expires_at``, …)."""
    node = network.nodes[hospital]
    data: dict[str, Any] = json.loads((node.folder / "node.credential").read_text(encoding="utf-8"))
    return data


def task_of(network: LocalNetwork, study_id: str, hospital: str) -> dict[str, Any] | None:
    """The hub's (round-1) task of *hospital* in a study, or None before it exists."""
    node_id = uuid.UUID(credential(network, hospital)["node_id"])
    mine = [t for t in tasks_of(network, study_id) if t["node_id"] == node_id]
    return mine[0] if mine else None


def released_for(entries: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """The ``value_released`` audit entries of one task."""
    return [e for e in entries if e["kind"] == "value_released" and e.get("task_id") == task_id]


def pause_while_polling(
    network: LocalNetwork, hospital: str, poll_wait: float, fresh_for: float = 15.0
) -> None:
    """SIGSTOP *hospital*'s node (long-polling *poll_wait* s) at a moment its poll for tasks is open at
    the hub with at least *fresh_for* s left, so a task submitted next is leased into a poll the node
    never reads. A node caught between polls, or late in one, is resumed and tried again."""
    process = network.nodes[hospital].process
    assert process is not None and process.poll() is None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        process.send_signal(signal.SIGSTOP)
        with api(network, network.admin_token) as http:
            since = http.get(f"/nodes/{hospital}").raise_for_status().json()["polling_since"]
        if since is not None:
            age = (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds()
            if age < poll_wait - fresh_for:
                return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.5)
    raise AssertionError(f"{hospital}'s node never held a fresh long poll in {TIMEOUT:.0f} s")
