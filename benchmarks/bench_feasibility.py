"""Federated feasibility count on N node processes against the same count on all the data pooled.

The cohort is the demo's (children 2-11 with asthma and salbutamol, ``phds.demo.asthma_salbutamol.yaml``),
breakdowns none by default (``PHDS_BENCH_FEAS_BREAKDOWNS=sex`` for one by sex). Each node serves one
synthetic hospital (``phds simulate``, seed fixed; hospitals 6-10 repeat the five profiles with ``-2``
slugs) from its own DuckDB file; the pooled baseline is one DuckDB file holding every table of the N
hospitals (UNION ALL, every person/event/site id offset by hospital), counted in process with the same
code the nodes run (:func:`phds.cohorts.count_cohort`). The federated network total must equal the
pooled count (asserted).

For each N: one warm-up study (each node compiles the cohort with circepy: the cold figure), then
``repeats`` studies timed at the SDK (submit → result). Nodes cache the compiled cohort, so a warm
study's node compute is counting only; the pooled figure is likewise the warm count (one untimed build
first), and the cold pooled figure (fresh build + count, median of ``repeats``) stands beside the single
cold federated study. Figures: end-to-end median vs pooled median, slowest-node compute median and
platform overhead median (end-to-end − slowest node's compute, per run). Targets: overhead ≤ 100 ms at
N = 5; overhead at N = 10 ≤ 1.5 × overhead at N = 2.

Environment: ``PHDS_BENCH_FEAS_NODES`` (``2,5,10``), ``PHDS_BENCH_FEAS_PATIENTS`` (100000 per hospital),
``PHDS_BENCH_FEAS_REPEATS`` (7), ``PHDS_BENCH_FEAS_SEED`` (1), ``PHDS_BENCH_FEAS_BREAKDOWNS`` (empty),
``PHDS_BENCH_CACHE`` (synthetic data, reused between runs; default ``$TMPDIR/phds-bench``).
``PHDS_BENCH_QUICK=1``: N = 2, 3; 2,000 patients; 3 repeats.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import duckdb

from benchmarks.common import write_result
from benchmarks.federation import (
    StudyRun,
    attach_compute,
    env_int,
    env_ints,
    load_average,
    ms,
    study_spec,
    summarise,
    timed_study,
)
from phds.cohorts import CohortBuilder, count_cohort, parse_cohort
from phds.cohorts.count import Breakdown
from phds.demo.network import DemoHospital, LocalNetwork
from phds.demo.scenario import default_cohort
from phds.omop.simulator import generate
from phds.omop.store import open_store
from phds.sdk import Client
from phds.sdk.results import FeasibilityResult

OVERHEAD_TARGET_MS = 100.0
SCALING_TARGET = 1.5
# Identical in every synthetic hospital: taken once from the first into the pooled file.
SHARED_TABLES = frozenset(
    {
        "concept",
        "concept_ancestor",
        "concept_class",
        "concept_relationship",
        "concept_synonym",
        "domain",
        "drug_strength",
        "relationship",
        "source_to_concept_map",
        "vocabulary",
        "cdm_source",
        "metadata",
        "cohort_definition",
    }
)
ID_OFFSET = 10**10  # per hospital; far above any id a 1M-patient hospital uses


@dataclass(frozen=True)
class Hospital:
    slug: str
    name: str
    path: Path


def synthetic_hospitals(cache: Path, count: int, patients: int, seed: int) -> list[Hospital]:
    """*count* synthetic hospitals of *patients* children, generated once and kept under *cache*."""
    folder = cache / f"synth-p{patients}-s{seed}"
    marker = folder / f"complete-{count}.json"
    if not marker.exists():
        done = [int(p.stem.split("-")[1]) for p in folder.glob("complete-*.json")]
        if done and max(done) >= count:
            marker = folder / f"complete-{max(done)}.json"
        else:
            made = generate(folder, hospitals=count, patients=patients, seed=seed, overwrite=True)
            listing = [{"slug": h.slug, "name": h.name, "path": str(h.path)} for h in made]
            marker.write_text(json.dumps(listing), encoding="utf-8")
    listing = json.loads(marker.read_text(encoding="utf-8"))
    return [Hospital(h["slug"], h["name"], Path(h["path"])) for h in listing[:count]]


def pooled_file(hospitals: list[Hospital]) -> Path:
    """One DuckDB file with all of *hospitals*' rows, ids offset per hospital; built once, beside them."""
    folder = hospitals[0].path.parent
    path = folder / f"pooled-{len(hospitals)}.duckdb"
    marker = path.with_suffix(".complete")
    if marker.exists():
        return path
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        for i, hospital in enumerate(hospitals):
            con.execute(f"ATTACH '{hospital.path}' AS h{i} (READ_ONLY)")
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'h0' ORDER BY 1"
            ).fetchall()
        ]
        for table in tables:
            columns = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = 'h0' AND table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            ids = [
                c for c, t in columns if c.endswith("_id") and not c.endswith("concept_id") and t == "BIGINT"
            ]
            sources = [0] if table in SHARED_TABLES else range(len(hospitals))
            parts = []
            for i in sources:
                replace = ", ".join(f"{c} + {i * ID_OFFSET} AS {c}" for c in ids)
                star = f"* REPLACE ({replace})" if replace and i else "*"
                parts.append(f"SELECT {star} FROM h{i}.main.{table}")
            con.execute(f"CREATE TABLE main.{table} AS {' UNION ALL '.join(parts)}")
    finally:
        con.close()
    marker.touch()
    return path


def pooled_timings(path: Path, cohort: str, breakdowns: list[str], repeats: int) -> dict[str, Any]:
    """The count on the pooled file: cold (fresh circepy build + count) and warm (cached build) medians."""
    definition = parse_cohort(cohort)
    dims = cast(list[Breakdown], breakdowns)
    with open_store(f"duckdb:///{path}", read_only=True) as store:
        cold = []
        for _ in range(repeats):
            builder = CohortBuilder(store)
            start = time.perf_counter()
            counts = count_cohort(store, definition, breakdowns=dims, builder=builder)
            cold.append(time.perf_counter() - start)
            builder.clear()
        builder = CohortBuilder(store)
        count_cohort(store, definition, breakdowns=dims, builder=builder)
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            again = count_cohort(store, definition, breakdowns=dims, builder=builder)
            warm.append(time.perf_counter() - start)
            assert again.total == counts.total and again.cache_hit
    return {
        "count": counts.total,
        "cells": [c.model_dump() for c in counts.cells],
        "warm_median_ms": ms(statistics.median(warm)),
        "warm_runs_ms": [ms(s) for s in warm],
        "cold_median_ms": ms(statistics.median(cold)),
        "cold_runs_ms": [ms(s) for s in cold],
    }


def wait_for_catalogue(client: Client, slugs: list[str], timeout: float = 600.0) -> None:
    """Wait until every node has published its dataset profile: its start-up work is then done."""
    deadline = time.monotonic() + timeout
    while not set(slugs) <= set(client.catalogue()["hospital"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the nodes did not publish their catalogue within {timeout:.0f} s")
        time.sleep(0.5)
    time.sleep(1.0)  # let the last node's main thread return to its task queue


def federated_timings(
    workdir: Path, hospitals: list[Hospital], cohort: str, breakdowns: list[str], repeats: int
) -> dict[str, Any]:
    """A network of one node process per hospital: one cold study, then *repeats* warm studies."""
    demo = [DemoHospital(h.slug, h.name, omop_url=f"duckdb:///{h.path}") for h in hospitals]
    params = {"cohort": cohort, "breakdowns": breakdowns}
    totals: set[int] = set()
    with LocalNetwork(workdir, demo) as network, network.client() as client:
        spec = study_spec(
            [h.slug for h in hospitals],
            "feasibility.count",
            params,
            service_type="feasibility",
            title="Children 2-11 with asthma and salbutamol",
        )
        wait_for_catalogue(client, [h.slug for h in hospitals])
        seconds, result = timed_study(client, spec)
        cold = StudyRun(result.study_id, seconds)
        runs = []
        for _ in range(repeats):
            seconds, result = timed_study(client, spec)
            assert isinstance(result, FeasibilityResult)
            if not result.total.exact:
                raise RuntimeError(f"the network total is an interval ({result.total}): too few patients")
            totals.add(result.total.lower)
            runs.append(StudyRun(result.study_id, seconds))
        attach_compute(network, [cold, *runs])
    if len(totals) != 1:
        raise RuntimeError(f"the network total changed between identical studies: {sorted(totals)}")
    summary = summarise(runs)
    summary["network_total"] = totals.pop()
    summary["cold_first_study"] = cold.to_json()
    return summary


def measure(
    sizes: list[int],
    *,
    patients: int,
    repeats: int,
    seed: int,
    breakdowns: list[str],
    cache: Path,
    workdir: Path,
) -> dict[str, Any]:
    """The benchmark's core: for each N, the pooled and the federated figures, checked equal counts."""
    cohort = default_cohort()
    started = time.perf_counter()
    everyone = synthetic_hospitals(cache, max(sizes), patients, seed)
    prepare = time.perf_counter() - started
    results = []
    for n in sizes:
        hospitals = everyone[:n]
        load_before = load_average()
        pooled = pooled_timings(pooled_file(hospitals), cohort, breakdowns, repeats)
        federated = federated_timings(workdir / f"net-{n}", hospitals, cohort, breakdowns, repeats)
        if federated["network_total"] != pooled["count"]:
            raise AssertionError(
                f"N={n}: network total {federated['network_total']} != pooled count {pooled['count']}"
            )
        ratio = federated["end_to_end_median_ms"] / pooled["warm_median_ms"]
        results.append(
            {
                "nodes": n,
                "hospitals": [h.slug for h in hospitals],
                "persons": pooled["count"],
                "federated": federated,
                "pooled": pooled,
                "ratio_end_to_end_over_pooled": round(ratio, 1),
                "load_average_before_after": [load_before, load_average()],
            }
        )
    by_n = {r["nodes"]: r["federated"]["overhead_median_ms"] for r in results}
    targets: dict[str, Any] = {}
    if 5 in by_n:
        targets["overhead_median_le_100ms_at_5_nodes"] = {
            "target_ms": OVERHEAD_TARGET_MS,
            "measured_ms": by_n[5],
            "pass": by_n[5] <= OVERHEAD_TARGET_MS,
        }
    if 2 in by_n and 10 in by_n:
        targets["overhead_10_nodes_le_1.5x_2_nodes"] = {
            "target_ratio": SCALING_TARGET,
            "measured_ratio": round(by_n[10] / by_n[2], 2),
            "pass": by_n[10] <= SCALING_TARGET * by_n[2],
        }
    return {
        "what": "feasibility.count of the demo cohort (children 2-11, asthma + salbutamol) on N node "
        "processes, timed at the SDK (submit → results), against count_cohort on the pooled DuckDB file",
        "cohort": cohort,
        "breakdowns": breakdowns,
        "patients_per_hospital": patients,
        "seed": seed,
        "repeats": repeats,
        "data_prepare_seconds": round(prepare, 1),
        "fairness": "warm vs warm: after one warm-up study every node has the compiled cohort cached, and "
        "the pooled count also runs on a cached build, so neither median includes the circepy build; the "
        "cold figures (the first federated study, and the pooled fresh build + count) include it",
        "results": results,
        "targets": targets,
    }


def main() -> dict[str, Any]:
    sizes = env_ints("PHDS_BENCH_FEAS_NODES", [2, 5, 10], [2, 3])
    patients = env_int("PHDS_BENCH_FEAS_PATIENTS", 100_000, 2_000)
    repeats = env_int("PHDS_BENCH_FEAS_REPEATS", 7, 3)
    seed = env_int("PHDS_BENCH_FEAS_SEED", 1, 1)
    breakdowns = [b for b in os.environ.get("PHDS_BENCH_FEAS_BREAKDOWNS", "").split(",") if b.strip()]
    cache = Path(os.environ.get("PHDS_BENCH_CACHE") or Path(tempfile.gettempdir()) / "phds-bench")
    with tempfile.TemporaryDirectory(prefix="phds-bench-feas-") as tmp:
        payload = measure(
            sizes,
            patients=patients,
            repeats=repeats,
            seed=seed,
            breakdowns=breakdowns,
            cache=cache,
            workdir=Path(tmp),
        )
    write_result("feasibility", payload)
    table = {
        f"N={r['nodes']}": {
            "persons": r["persons"],
            "end_to_end_median_ms": r["federated"]["end_to_end_median_ms"],
            "pooled_median_ms": r["pooled"]["warm_median_ms"],
            "ratio": r["ratio_end_to_end_over_pooled"],
            "slowest_node_compute_median_ms": r["federated"]["slowest_node_compute_median_ms"],
            "overhead_median_ms": r["federated"]["overhead_median_ms"],
            "slowest_node_task_median_ms": r["federated"]["slowest_node_task_median_ms"],
            "hub_and_transport_median_ms": r["federated"]["hub_and_transport_median_ms"],
        }
        for r in payload["results"]
    }
    return {"feasibility": table, "targets": {k: v["pass"] for k, v in payload["targets"].items()}}


if __name__ == "__main__":
    print(main())
