"""Federated binomial GLM: 5 hospitals × 200,000 rows, 10 covariates, against statsmodels pooled.

Data: simulated with a known β (9 numeric covariates, one of them 0/1, and a 3-level factor) into one
Parquet file per hospital, cached in ``$TMPDIR/phds_bench_glm``. Hospitals run in process as real node
runtimes (``phds.analyses.testing.Federation``: policy, gate with its design checks and overlap guard,
audit log, signed envelopes); per round we time every node's whole answer and its analysis's own
compute, and the hub's combine. Figures (medians of ``PHDS_BENCH_GLM_REPEATS`` runs, default 3):

* ``per_iteration_overhead_ms``: per IRLS round, the round's parallel-equivalent time (slowest node's
  local step + gate + JSON hop, then the hub's combine) minus the slowest node's own compute. In process
  the nodes run one after another, but on a network they run in parallel, so ``parallel_equivalent_
  seconds`` (Σ over rounds) is the end-to-end figure to set against the pooled fit.
  ``per_iteration_gates_and_hub_serial_ms`` adds up every gate and the combine (no parallelism).
* ``serial_seconds``: everything one after another on this 2-core machine (an upper bound).
* ``cold`` runs include loading each hospital's file into its DuckDB; ``warm`` runs start with the data
  loaded (a running node) but the GLM's caches cleared.

Then the same study runs over real hub and node processes on loopback (``LocalNetwork``, timed at the
SDK; per-round overhead = end-to-end − Σ over rounds of the slowest node's compute, read from the hub's
results table). It runs only when ``stats.glm`` is registered; ``PHDS_BENCH_GLM_NETWORK=0`` skips it.

Targets (issue): β within 1e-10 of statsmodels, iterations ±1, per-iteration overhead ≤ 30 ms median,
total ≤ 3 × the pooled fit. Anchor: DataSHIELD ``ds.glm`` pays ~115 ms per call through Opal.

    .venv/bin/python -m benchmarks.run glm
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import timed, write_result
from phds.analyses import Final, glm_design
from phds.analyses.testing import Federation

HOSPITALS = 5
ROWS = 200_000
REPEATS = int(os.environ.get("PHDS_BENCH_GLM_REPEATS", "3"))
BETA = {"Intercept": -1.0, "x1": 0.5, "x2": -0.25, "x3": 0.1, "x4": 0.0, "x5": 0.3, "x6": -0.4,
        "x7": 0.2, "x8": -0.1, "x9": 0.7, "C(g)[T.b]": 0.4, "C(g)[T.c]": -0.3}  # fmt: skip
FORMULA = "y ~ x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + C(g)"


def simulate(folder: Path) -> list[Path]:
    """One Parquet file per hospital (cached); hospital-specific covariate shifts, one true β."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"hospital{i}.parquet" for i in range(1, HOSPITALS + 1)]
    if all(p.is_file() for p in paths):
        return paths
    rng = np.random.default_rng(20261127)
    for i, path in enumerate(paths):
        x = rng.normal(loc=0.1 * i, size=(ROWS, 8))
        frame = pd.DataFrame({f"x{j + 1}": x[:, j] for j in range(8)})
        frame["x9"] = rng.binomial(1, 0.3 + 0.05 * i, ROWS).astype(float)
        frame["g"] = rng.choice(["a", "b", "c"], ROWS, p=[0.5, 0.3, 0.2])
        eta = BETA["Intercept"] + sum(BETA[f"x{j}"] * frame[f"x{j}"] for j in range(1, 10))
        eta = eta + frame["g"].map({"a": 0.0, "b": BETA["C(g)[T.b]"], "c": BETA["C(g)[T.c]"]})
        frame["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta.to_numpy())))
        frame.to_parquet(path, index=False)
    return paths


def federation(paths: list[Path], folder: Path) -> Federation:
    """Real node runtimes (policy, gate, overlap guard, audit log, memory) over the simulated hospitals."""
    return Federation({f"h{i}": {"sim": p} for i, p in enumerate(paths, 1)}, folder=folder)


def run_study(network: Federation) -> dict[str, Any]:
    """Drive the study through the real node path; time each node's answer and compute and the combine."""
    glm_design._cache.clear()
    start = time.perf_counter()
    params = {
        "table": {"dataset": "sim"},
        "formula": FORMULA,
        "family": "binomial",
        "levels": {"g": ["a", "b", "c"]},
    }
    run = network.run("stats.glm", params)
    serial = time.perf_counter() - start
    if run.result is None:
        raise RuntimeError(f"the GLM did not finish: {run.error}; refused: {run.refused}")
    outcome = Final(run.result)
    # Nodes run in parallel on a network: the round lasts as long as its slowest node, then the hub.
    rounds = [
        {
            "max_compute": max(t.compute.values()),
            "sum_compute": sum(t.compute.values()),
            "parallel": max(t.answers.values()) + t.combine,
            "gates_and_hub": sum(t.answers.values()) - sum(t.compute.values()) + t.combine,
        }
        for t in run.timings
    ]
    irls = rounds[1:]
    return {
        "result": outcome.result,
        "rounds": len(rounds),
        "serial_seconds": serial,
        "parallel_equivalent_seconds": sum(r["parallel"] for r in rounds),
        "per_iteration_overhead_ms": statistics.median(r["parallel"] - r["max_compute"] for r in irls) * 1e3,
        "per_iteration_gates_and_hub_serial_ms": statistics.median(r["gates_and_hub"] for r in irls) * 1e3,
        "per_iteration_slowest_node_ms": statistics.median(r["max_compute"] for r in irls) * 1e3,
        "round1_parallel_seconds": rounds[0]["parallel"],
    }


def pooled_fit(paths: list[Path]) -> tuple[float, Any]:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    fits = [timed(lambda: smf.glm(FORMULA, data, family=sm.families.Binomial()).fit(maxiter=25))
            for _ in range(REPEATS)]  # fmt: skip
    return statistics.median(t for t, _ in fits), fits[-1][1]


def compare(result: dict[str, Any], ref: Any) -> dict[str, float]:
    ours = {c["term"]: c for c in result["coefficients"]}
    return {
        "max_abs_beta_diff": max(abs(ours[t]["estimate"] - ref.params[t]) for t in ref.params.index),
        "max_rel_se_diff": max(abs(ours[t]["std_error"] / ref.bse[t] - 1) for t in ref.params.index),
        "iterations": result["iterations"],
        "pooled_iterations": int(ref.fit_history["iteration"]),
        "deviance_rel_diff": abs(result["deviance"] / ref.deviance - 1),
        "aic_rel_diff": abs(result["aic"] / ref.aic - 1),
    }


def main() -> dict[str, Any]:
    paths = simulate(Path(tempfile.gettempdir()) / "phds_bench_glm")
    pooled_seconds, ref = pooled_fit(paths)
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(REPEATS):
            with federation(paths, Path(tmp) / f"rep{rep}") as network:
                cold.append(run_study(network))
                warm.append(run_study(network))
    accuracy = compare(warm[-1]["result"], ref)

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    keys = ("serial_seconds", "parallel_equivalent_seconds", "per_iteration_overhead_ms",
            "per_iteration_slowest_node_ms", "per_iteration_gates_and_hub_serial_ms",
            "round1_parallel_seconds", "rounds")  # fmt: skip
    summary: dict[str, Any] = {
        "hospitals": HOSPITALS,
        "rows_per_hospital": ROWS,
        "parameters": len(BETA),
        "pooled_statsmodels_seconds": pooled_seconds,
        "accuracy": accuracy,
        "warm": {k: med(warm, k) for k in keys},
        "cold": {k: med(cold, k) for k in keys},
    }
    for kind in ("warm", "cold"):
        figures = summary[kind]
        figures["parallel_vs_pooled"] = figures["parallel_equivalent_seconds"] / pooled_seconds
        figures["serial_vs_pooled"] = figures["serial_seconds"] / pooled_seconds
    summary["targets_met"] = {
        "beta_1e-10": bool(accuracy["max_abs_beta_diff"] <= 1e-10),
        "iterations_pm1": abs(accuracy["iterations"] - accuracy["pooled_iterations"]) <= 1,
        "overhead_30ms": summary["warm"]["per_iteration_overhead_ms"] <= 30,
        "total_3x_pooled_parallel_equivalent": summary["warm"]["parallel_vs_pooled"] <= 3,
        "total_3x_pooled_serial": summary["warm"]["serial_vs_pooled"] <= 3,
    }
    summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if os.environ.get("PHDS_BENCH_GLM_NETWORK", "1") not in {"", "0", "no"}:
        summary["network"] = network_run(paths, pooled_seconds, ref)
    write_result(
        "glm", {**summary, "runs": {"cold": [_strip(r) for r in cold], "warm": [_strip(r) for r in warm]}}
    )
    return summary


def network_run(paths: list[Path], pooled_seconds: float, ref: Any) -> dict[str, Any]:
    """The same study over real hub and node processes (``LocalNetwork``), timed at the SDK."""
    from sqlalchemy import select

    from benchmarks.federation import load_average, study_spec, timed_study
    from phds.analyses import available_analyses
    from phds.demo.network import DemoHospital, LocalNetwork
    from phds.hub.store import HubStore
    from phds.hub.store.models import OrganisationRow
    from phds.hub.store.study_models import ResultRow, TaskRow

    if "stats.glm" not in available_analyses():
        return {"skipped": "stats.glm is not registered in phds.analyses.registry"}
    demo = [
        DemoHospital(f"hospital-{i}", f"Hospital {i}", tabular={"sim": p}) for i, p in enumerate(paths, 1)
    ]
    params = {
        "table": {"dataset": "sim"},
        "formula": FORMULA,
        "family": "binomial",
        "levels": {"g": ["a", "b", "c"]},
    }
    runs: list[tuple[str, float, dict[str, Any]]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalNetwork(Path(tmp), demo) as network,
        network.client() as client,
    ):
        names = [h.name for h in demo]
        for rep in range(REPEATS + 1):  # the first run loads each node's file into its DuckDB
            spec = study_spec(names, "stats.glm", params, service_type="analytical_study", title=f"glm {rep}")
            seconds, result = timed_study(client, spec)
            runs.append((result.study.id, seconds, result.raw))
        store = HubStore.open(network.db_url, migrate=False)
        try:
            with store.unit() as uow:
                rows = uow.session.execute(
                    select(ResultRow.study_id, TaskRow.round, OrganisationRow.name, ResultRow.compute_seconds)
                    .join(TaskRow, TaskRow.id == ResultRow.task_id)
                    .join(OrganisationRow, OrganisationRow.id == TaskRow.organisation_id)
                ).all()
        finally:
            store.close()
    slowest: dict[str, dict[int, float]] = {}
    for study_id, round_no, _hospital, compute in rows:
        per = slowest.setdefault(str(study_id), {})
        per[round_no] = max(per.get(round_no, 0.0), float(compute))
    measured = []
    for study_id, seconds, _raw in runs[1:]:
        per_round = slowest[study_id]
        overhead = seconds - sum(per_round.values())
        measured.append({"seconds": seconds, "rounds": len(per_round), "overhead": overhead,
                         "overhead_per_round_ms": overhead / len(per_round) * 1e3})  # fmt: skip
    e2e = statistics.median(m["seconds"] for m in measured)
    return {
        "load_average": load_average(),
        "first_run_seconds": runs[0][1],
        "end_to_end_median_seconds": e2e,
        "end_to_end_vs_pooled": e2e / pooled_seconds,
        "per_round_overhead_median_ms": statistics.median(m["overhead_per_round_ms"] for m in measured),
        "rounds": measured[0]["rounds"],
        "accuracy": compare(runs[-1][2], ref),
        "runs": measured,
    }


def _strip(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "result"}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
