"""Helpers of the network benchmarks (``bench_feasibility``, ``bench_noop``): studies timed at the SDK.

A study is timed from just before :meth:`phds.sdk.Client.submit` to the return of
:meth:`~phds.sdk.Client.results` with ``wait=True``, over real HTTP to a hub and node processes
started by :class:`phds.demo.network.LocalNetwork`. Each node measures its own compute time and returns
it with its result (``TaskResult.compute_seconds``); the hub keeps it in its ``results`` table but does
not show it to requesters, so :func:`node_compute` reads it from the hub's database after the timed
runs (never during them). Platform overhead = end-to-end − the slowest node's compute (DESIGN.md,
"Measuring"). To show where the overhead goes, :func:`node_task_seconds` also reads each node's whole
time on a task from its audit log in ``node.db`` (``task_received`` → the last entry of the study:
policy, analysis, disclosure gate and audit writes); end-to-end minus the slowest of those is the time
spent in the hub, HTTP and the long polls.

Sizes come from environment variables; ``PHDS_BENCH_QUICK=1`` switches every default to a smoke-run size.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from phds.demo.network import REQUESTER_ORG, LocalNetwork
from phds.hub.store import HubStore
from phds.hub.store.models import OrganisationRow
from phds.hub.store.study_models import ResultRow, TaskRow
from phds.sdk import Client
from phds.sdk.results import StudyResult

QUICK = os.environ.get("PHDS_BENCH_QUICK", "") not in {"", "0", "false", "no"}


def env_int(name: str, default: int, quick: int) -> int:
    """An integer setting: the environment variable *name*, else *quick* in quick mode, else *default*."""
    value = os.environ.get(name)
    return int(value) if value else (quick if QUICK else default)


def env_ints(name: str, default: Sequence[int], quick: Sequence[int]) -> list[int]:
    """A comma-separated list of integers, as :func:`env_int`."""
    value = os.environ.get(name)
    if value:
        return [int(part) for part in value.split(",") if part.strip()]
    return list(quick if QUICK else default)


def study_spec(
    hospitals: Sequence[str], analysis: str, params: Mapping[str, Any], *, service_type: str, title: str
) -> dict[str, Any]:
    """A study of *analysis* at every hospital in *hospitals*, submitted by the demo's requester."""
    return {
        "title": title,
        "purpose": "PHDS network benchmark: platform latency over real hub and node processes",
        "organisation": REQUESTER_ORG,
        "service_type": service_type,
        "hospitals": list(hospitals),
        "analysis": {"name": analysis, "params": dict(params)},
        "deadline_seconds": 300,
    }


def timed_study(client: Client, spec: Mapping[str, Any]) -> tuple[float, StudyResult]:
    """Submit *spec*, wait for its result; the seconds from submit to result and the result."""
    start = time.perf_counter()
    study = client.submit(spec)
    result = client.results(study.id, wait=True)
    elapsed = time.perf_counter() - start
    answered = sorted(result.attribution.answered)
    if result.study.state.value != "completed" or answered != sorted(result.study.spec.hospitals):
        raise RuntimeError(f"study {study.id} ended {result.study.state.value}: {result.attribution}")
    return elapsed, result


def node_compute(db_url: str, study_ids: Iterable[str]) -> dict[str, dict[str, float]]:
    """Each node's own compute seconds per study, from the hub's ``results`` table: {study: {hospital: s}}."""
    ids = [uuid.UUID(s) for s in study_ids]
    out: dict[str, dict[str, float]] = {str(i): {} for i in ids}
    store = HubStore.open(db_url, migrate=False)
    try:
        with store.unit() as uow:
            rows = uow.session.execute(
                select(ResultRow.study_id, OrganisationRow.name, ResultRow.compute_seconds)
                .join(TaskRow, TaskRow.id == ResultRow.task_id)
                .join(OrganisationRow, OrganisationRow.id == TaskRow.organisation_id)
                .where(ResultRow.study_id.in_(ids))
            ).all()
    finally:
        store.close()
    for study_id, hospital, seconds in rows:
        out[str(study_id)][hospital] = float(seconds)
    return out


def node_task_seconds(node_db: Path, study_ids: Iterable[str]) -> dict[str, float]:
    """Seconds from ``task_received`` to the study's last audit entry at one node, per study."""
    ids = list(study_ids)
    marks = ",".join("?" * len(ids))
    con = sqlite3.connect(f"file:{node_db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            f"SELECT study_id, MIN(ts), MAX(ts) FROM audit_log WHERE study_id IN ({marks}) GROUP BY study_id",
            ids,
        ).fetchall()
    finally:
        con.close()
    return {
        study: (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
        for study, first, last in rows
    }


@dataclass
class StudyRun:
    """One timed study: end-to-end seconds at the SDK, each node's compute and whole-task seconds."""

    study_id: str
    seconds: float
    compute: dict[str, float] = field(default_factory=dict)
    node_task: dict[str, float] = field(default_factory=dict)

    @property
    def slowest_compute(self) -> float:
        return max(self.compute.values(), default=0.0)

    @property
    def overhead(self) -> float:
        return self.seconds - self.slowest_compute

    @property
    def slowest_node_task(self) -> float:
        return max(self.node_task.values(), default=0.0)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["seconds"] = round(self.seconds, 5)
        record["compute"] = {h: round(s, 5) for h, s in sorted(self.compute.items())}
        record["node_task"] = {h: round(s, 5) for h, s in sorted(self.node_task.items())}
        record["slowest_compute"] = round(self.slowest_compute, 5)
        record["overhead"] = round(self.overhead, 5)
        record["slowest_node_task"] = round(self.slowest_node_task, 5)
        return record


def attach_compute(network: LocalNetwork, runs: Sequence[StudyRun]) -> None:
    """Fill every run's per-node compute seconds (hub database) and whole-task seconds (node audit logs)."""
    ids = [r.study_id for r in runs]
    computed = node_compute(network.db_url, ids)
    tasks = {
        name: node_task_seconds(node.folder / "state" / "node.db", ids)
        for name, node in network.nodes.items()
    }
    for run in runs:
        run.compute = computed[run.study_id]
        run.node_task = {name: per[run.study_id] for name, per in tasks.items() if run.study_id in per}
        if not run.compute:
            raise RuntimeError(f"the hub holds no node result for study {run.study_id}")


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (2 shared cores: other work skews the figures)."""
    return [round(x, 2) for x in os.getloadavg()]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def summarise(runs: Sequence[StudyRun]) -> dict[str, Any]:
    """Medians (and p90 when there are enough runs) in milliseconds, and every run."""
    e2e = [r.seconds for r in runs]
    out: dict[str, Any] = {
        "repeats": len(runs),
        "end_to_end_median_ms": ms(statistics.median(e2e)),
        "slowest_node_compute_median_ms": ms(statistics.median(r.slowest_compute for r in runs)),
        "overhead_median_ms": ms(statistics.median(r.overhead for r in runs)),
        "slowest_node_task_median_ms": ms(statistics.median(r.slowest_node_task for r in runs)),
        "hub_and_transport_median_ms": ms(statistics.median(r.seconds - r.slowest_node_task for r in runs)),
        "end_to_end_min_ms": ms(min(e2e)),
        "end_to_end_max_ms": ms(max(e2e)),
    }
    if len(runs) >= 10:
        out["end_to_end_p90_ms"] = ms(statistics.quantiles(e2e, n=10)[-1])
        out["overhead_p90_ms"] = ms(statistics.quantiles([r.overhead for r in runs], n=10)[-1])
    out["runs"] = [r.to_json() for r in runs]
    return out
