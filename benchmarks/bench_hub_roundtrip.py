"""Study round trip through the hub, in process: submit → node's long poll → result → requester's wait.

The hub runs in process over ``httpx.ASGITransport`` on a SQLite file (WAL) or, with
``PHDS_BENCH_HUB_PG_DSN``, a PostgreSQL database. The node answers at once with a hand-made gate
payload, so every second measured is platform overhead: HTTP handling, authentication, the runner's
transactions and the long-poll wake-ups. Targets: ``system.noop`` ≤ 50 ms median, ``feasibility.count``
≤ 100 ms median. Median of ``PHDS_BENCH_HUB_REPEATS`` runs (default 50) after 5 warm-up runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio.from_thread

from benchmarks.common import write_result
from phds.hub.app import create_app
from phds.hub.notify import Notifier
from phds.hub.store import HubStore
from phds.hub.testing import (
    HubClient,
    add_org,
    add_user,
    enrol,
    gate_payload,
    hub_settings,
    released_count,
    study_spec,
)

REPEATS = int(os.environ.get("PHDS_BENCH_HUB_REPEATS", "50"))
PG_DSN = os.environ.get("PHDS_BENCH_HUB_PG_DSN")
COHORT = "name: Asthma\nentry: {condition: {concepts: [317009], descendants: true}}\n"
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "noop": ("system.noop", {}, gate_payload("system.noop", {})),
    "feasibility": (
        "feasibility.count",
        {"cohort": COHORT},
        gate_payload("feasibility.count", {"persons": {"type": "count", **released_count(42)}}),
    ),
}


def _round_trip(client: HubClient, tokens: dict[str, str], node_id: Any, case: str) -> float:
    analysis, params, payload = CASES[case]
    notifier: Notifier = client.app.state.notifier
    polling = client.start("GET", "/api/v1/nodes/me/tasks", token=tokens["node"], params={"wait": 30})
    while notifier.waiting(node_id) == 0:  # the node is already waiting, as a real agent would be
        client.portal.call(anyio.sleep, 0.001)
    start = time.perf_counter()
    spec = study_spec("uni", ["h1"], analysis, params)
    study = client.post("/api/v1/studies", token=tokens["requester"], json=spec).json()
    waiting = client.start(
        "GET",
        f"/api/v1/studies/{study['id']}/wait",
        token=tokens["requester"],
        params={"after_version": study["version"], "timeout": 30},
    )
    [task] = polling.result(timeout=30).json()
    body = {"task_id": task["id"], "status": "ok", "payload": payload}
    client.post(f"/api/v1/tasks/{task['id']}/result", token=tokens["node"], json=body)
    view = waiting.result(timeout=30).json()
    elapsed = time.perf_counter() - start
    assert view["state"] == "completed", view
    return elapsed


def _measure(url: str) -> dict[str, Any]:
    store = HubStore.open(url)
    add_org(store, "uni", "requester", category="academic")
    add_org(store, "h1", "hospital")
    tokens = {"requester": add_user(store, "r@uni.example", "requester", "uni")[1]}
    node_id, tokens["node"] = enrol(store, "h1", url)
    out: dict[str, Any] = {}
    with anyio.from_thread.start_blocking_portal() as portal:
        client = HubClient(create_app(hub_settings(url), store=store), portal)
        try:
            for case in CASES:
                for _ in range(5):
                    _round_trip(client, tokens, node_id, case)
                runs = [_round_trip(client, tokens, node_id, case) for _ in range(REPEATS)]
                out[case] = {
                    "median_ms": round(statistics.median(runs) * 1000, 2),
                    "p90_ms": round(statistics.quantiles(runs, n=10)[-1] * 1000, 2),
                    "runs": len(runs),
                }
        finally:
            client.close()
            store.close()
    return out


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        results = {"sqlite": _measure(f"sqlite:///{Path(tmp) / 'hub.sqlite'}")}
    if PG_DSN:
        import uuid

        import psycopg

        name = f"phds_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        try:
            results["postgresql"] = _measure(PG_DSN.rsplit("/", 1)[0] + f"/{name}")
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as con:
                con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    summary = {
        "what": "in-process study round trip (submit → node long poll → result → requester wait), "
        "platform overhead only (the node computes nothing)",
        "targets_ms": {"noop": 50, "feasibility": 100},
        "results": results,
    }
    write_result("hub_roundtrip", summary)
    return summary


if __name__ == "__main__":
    print(main())
