"""What the PICU ground truth costs the simulator: one hospital with and without PICU admissions.

The baseline is the same hospital profile with ``PicuMix(rate=0)``: no PICU row, every other row the same
(tests/omop/test_simulator_picu.py). The profile is the tertiary centre, which has the most admissions (4%).
Each run is a fresh process pinned to one CPU, alternating with and without; medians of ``REPEATS`` runs
each. CPU time (user + system) is reported besides wall time because the machine is shared. A second
part times building ``PICU_SEPSIS_TABLE`` from the written CDM.

    python -m benchmarks.run picu
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

PATIENTS = 100_000
REPEATS = 3


def _run(with_picu: bool) -> dict[str, Any]:
    """One hospital generated in this (child) process, pinned to one CPU; then its PICU table built."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from phds.omop.simulator import generate_hospital
    from phds.omop.simulator.casemix import PROFILES
    from phds.omop.simulator.picu_truth import PicuMix
    from phds.omop.simulator.writers import open_sink
    from phds.omop.store import open_store

    profile = PROFILES[1]
    if not with_picu:
        profile = dataclasses.replace(profile, picu=PicuMix(rate=0.0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.duckdb"
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        sink = open_sink(path, "duckdb")
        try:
            rows = generate_hospital(sink, profile, index=1, patients=PATIENTS, seed=1)
        finally:
            sink.close()
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        table_seconds, admissions = None, 0
        if with_picu:
            # imported after generating: importing ibis first broke DuckDB's Arrow appends in this process
            from phds.analyses.omop_table import PICU_SEPSIS_TABLE, omop_table_arrow
            from phds.analyses.tables import TableSpec

            start = time.perf_counter()
            with open_store(f"duckdb:///{path}", read_only=True) as store:
                admissions = omop_table_arrow(store, TableSpec.model_validate(PICU_SEPSIS_TABLE)).num_rows
            table_seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rows": sum(rows.values()),
        "row_counts": rows,
        "table_seconds": table_seconds,
        "admissions": admissions,
    }


def _in_child(with_picu: bool) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, (with_picu,))


def main() -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"with_picu": [], "without_picu": []}
    for _ in range(REPEATS):  # alternate, so drifting load hits both alike
        runs["with_picu"].append(_in_child(True))
        runs["without_picu"].append(_in_child(False))
    summary: dict[str, Any] = {"patients": PATIENTS, "profile": "central-tertiary", "repeats": REPEATS}
    for name, rs in runs.items():
        summary[name] = {
            "median_seconds": round(statistics.median(r["seconds"] for r in rs), 3),
            "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in rs), 3),
            "rows": rs[0]["rows"],
        }
    with_, without = summary["with_picu"], summary["without_picu"]
    summary["cpu_ratio"] = round(with_["median_cpu_seconds"] / without["median_cpu_seconds"], 3)
    summary["wall_ratio"] = round(with_["median_seconds"] / without["median_seconds"], 3)
    summary["extra_rows"] = with_["rows"] - without["rows"]
    counts = runs["with_picu"][0]["row_counts"]
    base = runs["without_picu"][0]["row_counts"]
    summary["extra_rows_by_table"] = {
        t: counts[t] - base.get(t, 0) for t in counts if counts[t] != base.get(t, 0)
    }
    summary["picu_admissions"] = runs["with_picu"][0]["admissions"]
    summary["picu_table_median_seconds"] = round(
        statistics.median(r["table_seconds"] for r in runs["with_picu"]), 3
    )
    write_result("picu", summary)
    return summary


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
