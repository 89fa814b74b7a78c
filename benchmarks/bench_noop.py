"""``system.noop`` round trip over real processes: SDK submit → hub → node process(es) → hub → SDK result.

A hub (``phds hub serve``, SQLite) and 1 or 3 node processes (``phds node run``, policy auto-approving
``system.*``) run on loopback (:class:`phds.demo.network.LocalNetwork`). The node computes nothing, so
the end-to-end time is platform latency: HTTP, authentication, the runner's transactions, the node's
long poll and its audit/gate writes to ``node.db``. Target: ≤ 50 ms at the median. The in-process
figure of ``bench_hub_roundtrip`` (no processes, no sockets) is quoted beside it when present.

Environment: ``PHDS_BENCH_NOOP_NODES`` (default ``1,3``), ``PHDS_BENCH_NOOP_REPEATS`` (50),
``PHDS_BENCH_NOOP_WARMUP`` (5); ``PHDS_BENCH_QUICK=1`` makes them ``1``, 5 and 1.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, write_result
from benchmarks.federation import (
    StudyRun,
    attach_compute,
    env_int,
    env_ints,
    load_average,
    study_spec,
    summarise,
    timed_study,
)
from phds.demo.network import DemoHospital, LocalNetwork

TARGET_MS = 50.0


def measure_network(workdir: Path, nodes: int, *, repeats: int, warmup: int) -> dict[str, Any]:
    """Time *repeats* no-op studies (after *warmup*) on a fresh network of *nodes* node processes."""
    hospitals = [DemoHospital(f"noop-{i + 1}", f"No-op hospital {i + 1}") for i in range(nodes)]
    load_before = load_average()
    with (
        LocalNetwork(workdir, hospitals) as network,
        network.client() as client,
    ):
        spec = study_spec(
            [h.name for h in hospitals], "system.noop", {}, service_type="feasibility", title="no-op"
        )
        for _ in range(warmup):
            timed_study(client, spec)
        runs = []
        for _ in range(repeats):
            seconds, result = timed_study(client, spec)
            runs.append(StudyRun(result.study_id, seconds))
        attach_compute(network, runs)
    summary = summarise(runs)
    summary.update(
        {"nodes": nodes, "warmup": warmup, "load_average_before_after": [load_before, load_average()]}
    )
    return summary


def in_process_noop_ms() -> float | None:
    """The median no-op round trip of ``bench_hub_roundtrip`` (in process, SQLite), if it was run."""
    path = RESULTS / "hub_roundtrip.json"
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["results"]["sqlite"]["noop"]["median_ms"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def measure(nodes: list[int], *, repeats: int, warmup: int, workdir: Path) -> dict[str, Any]:
    """The benchmark's core: one network per entry of *nodes*; medians, runs and the target's verdict."""
    results = []
    for n in nodes:
        results.append(measure_network(workdir / f"noop-{n}", n, repeats=repeats, warmup=warmup))
    targets = {
        f"noop_median_le_{TARGET_MS:g}ms_{r['nodes']}_node{'s' if r['nodes'] > 1 else ''}": {
            "target_ms": TARGET_MS,
            "measured_ms": r["end_to_end_median_ms"],
            "figure": "end-to-end median (the node computes nothing, so this is all platform overhead)",
            "pass": r["end_to_end_median_ms"] <= TARGET_MS,
        }
        for r in results
    }
    return {
        "what": "system.noop study round trip at the SDK (submit → results) over real HTTP with real hub and "
        "node processes on loopback, hub on SQLite",
        "repeats": repeats,
        "warmup": warmup,
        "results": results,
        "in_process_noop_median_ms": in_process_noop_ms(),
        "targets": targets,
    }


def main() -> dict[str, Any]:
    nodes = env_ints("PHDS_BENCH_NOOP_NODES", [1, 3], [1])
    repeats = env_int("PHDS_BENCH_NOOP_REPEATS", 50, 5)
    warmup = env_int("PHDS_BENCH_NOOP_WARMUP", 5, 1)
    with tempfile.TemporaryDirectory(prefix="phds-bench-noop-") as tmp:
        payload = measure(nodes, repeats=repeats, warmup=warmup, workdir=Path(tmp))
    write_result("noop", payload)
    short = {
        f"{r['nodes']} node(s)": {
            "end_to_end_median_ms": r["end_to_end_median_ms"],
            "overhead_median_ms": r["overhead_median_ms"],
            "slowest_node_task_median_ms": r["slowest_node_task_median_ms"],
            "hub_and_transport_median_ms": r["hub_and_transport_median_ms"],
        }
        for r in payload["results"]
    }
    return {
        "noop": short,
        "in_process_noop_median_ms": payload["in_process_noop_median_ms"],
        "targets": {k: v["pass"] for k, v in payload["targets"].items()},
    }


if __name__ == "__main__":
    print(main())
