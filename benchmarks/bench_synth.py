"""Synthetic hospital generator speed: patients/s and rows/s, DuckDB and CSV, pinned to one core.

Every run is a fresh process pinned to a single CPU (``os.sched_setaffinity``), so the numbers mean
"one core" even for DuckDB's own threads, and its peak RSS shows whether memory stays bounded as the
patient count grows. Wall time on a shared machine includes waiting for the CPU, so the process's CPU
time (user + system) is reported too: it is what the run costs on an idle core.
The small size is repeated (median); the 1,000,000-patient target runs
``SYNTH_BENCH_BIG_REPEATS`` times (default 1).

    python -m benchmarks.run synth
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

SMALL = 100_000
BIG = 1_000_000
SMALL_REPEATS = 3
TARGET_SECONDS = 60.0


def _run(patients: int, fmt: str) -> dict[str, Any]:
    """One generation in this (child) process, pinned to one CPU."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from phds.omop.simulator import generate

    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        [result] = generate(Path(tmp), hospitals=1, patients=patients, seed=1, fmt=fmt)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    rows = sum(result.rows.values())
    return {
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rows": rows,
        "bytes": size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "row_counts": result.rows,
    }


def _in_child(patients: int, fmt: str) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, (patients, fmt))


def _summary(patients: int, fmt: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    rows = runs[0]["rows"]
    return {
        "patients": patients,
        "format": fmt,
        "runs_seconds": [round(r["seconds"], 2) for r in runs],
        "median_seconds": round(seconds, 2),
        "runs_cpu_seconds": [round(r["cpu_seconds"], 2) for r in runs],
        "median_cpu_seconds": round(cpu, 2),
        "patients_per_s": round(patients / seconds),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "output_mb": round(runs[0]["bytes"] / 2**20, 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "row_counts": runs[0]["row_counts"],
    }


def main() -> dict[str, Any]:
    big_repeats = int(os.environ.get("SYNTH_BENCH_BIG_REPEATS", "1"))
    results = []
    for fmt in ("duckdb", "csv"):
        results.append(_summary(SMALL, fmt, [_in_child(SMALL, fmt) for _ in range(SMALL_REPEATS)]))
        results.append(_summary(BIG, fmt, [_in_child(BIG, fmt) for _ in range(big_repeats)]))
    payload = {
        "description": "phds simulate, 1 hospital (north-general), seed 1, one process pinned to one CPU",
        "target": f"{BIG:,} patients in at most {TARGET_SECONDS:.0f} s on one core",
        "small_repeats": SMALL_REPEATS,
        "big_repeats": big_repeats,
        "results": results,
        "meets_target": all(r["median_seconds"] <= TARGET_SECONDS for r in results if r["patients"] == BIG),
    }
    write_result("synth", payload)
    return {
        "meets_target": payload["meets_target"],
        **{
            f"{r['format']}_{r['patients']}": {
                k: r[k]
                for k in (
                    "median_seconds",
                    "median_cpu_seconds",
                    "patients_per_s",
                    "rows_per_s",
                    "peak_rss_mb",
                )
            }
            for r in results
        },
    }


if __name__ == "__main__":
    print(main())
