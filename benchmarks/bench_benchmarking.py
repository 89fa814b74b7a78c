"""A risk-adjusted benchmarking indicator over 5 hospitals, end to end, against the same pooled computation.

Data: the simulator's five case mixes (``phds.omop.simulator.generate``, ``PHDS_BENCH_BENCHMARKING_PATIENTS``
children each, default 20,000; seed 3), cached in ``$TMPDIR/phds_bench_benchmarking``. The indicator is the
generator's ground-truth outcome (asthma admission within a year, adjusted for age, sex, BMI SDS and
inhaled corticosteroids; tests/analyses/benchmark_support.py).

* **Federated:** ``benchmarking.indicators`` over real hub and node processes on loopback
  (:class:`~phds.demo.network.LocalNetwork`), timed at the SDK from submit to the typed result. The first
  run builds each node's cohort table (DuckDB) and is reported apart; the median is over the next
  ``PHDS_BENCH_BENCHMARKING_REPEATS`` (default 5). Platform overhead = end-to-end − Σ over rounds of the
  slowest node's own compute (from the hub's results table; DESIGN.md, "Measuring").
* **Baseline, side by side:** the same computation pooled in one process: statsmodels' binomial GLM on
  every hospital's rows, then per hospital O, E = Σ fitted probabilities, n, O/E with its exact Poisson
  interval and the crude Clopper–Pearson interval (statsmodels). Timed on rows already in memory
  (``pooled_compute``) and, to be fair to the nodes, including building the same cohort tables from the
  CDMs (``pooled_with_extraction``).

``PHDS_BENCH_QUICK=1`` runs a smoke size (6,000 children: at fewer, small cells refuse some hospitals).
Run: ``python -m benchmarks.run benchmarking``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.common import timed, write_result
from benchmarks.federation import env_int, load_average, study_spec, timed_study

SEED = 3
HOSPITALS = 5
REPO = Path(__file__).resolve().parents[1]


def _support() -> Any:
    """The indicator and its pooled rows, shared with the tests (tests/analyses/benchmark_support.py)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.analyses import benchmark_support

    return benchmark_support


def simulate(folder: Path, patients: int) -> list[Path]:
    """The five simulated CDMs (cached by size)."""
    from phds.omop.simulator import generate

    where = folder / f"p{patients}"
    found = sorted(where.glob("*.duckdb"))
    if len(found) == HOSPITALS:
        return found
    return [
        r.path for r in generate(where, hospitals=HOSPITALS, patients=patients, seed=SEED, overwrite=True)
    ]


def pooled_rows(cdms: list[Path], work: Path) -> tuple[float, Any]:
    """Every hospital's cohort table with its covariates, built from the CDMs as the nodes build it, and
    the seconds that took (the baseline's extraction)."""
    from phds.analyses.testing import node_runtime

    support = _support()
    variables = ["admitted", *support.ADMISSION_RISKS]
    runtimes = {p.stem: node_runtime(p.stem, work / p.stem, omop={"cdm": f"duckdb:///{p}"}) for p in cdms}
    try:
        start = time.perf_counter()
        rows = support.pooled_rows(
            {h: r.data for h, r in runtimes.items()}, support.BINARY["table"], variables
        )
        return time.perf_counter() - start, rows
    finally:
        for runtime in runtimes.values():
            runtime.close()


def pooled_indicators(rows: Any) -> dict[str, dict[str, float]]:
    """The baseline computation on the pooled rows: statsmodels' GLM, then O, E, n and the exact intervals."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    from statsmodels.stats.proportion import proportion_confint
    from statsmodels.stats.rates import confint_poisson

    formula = "admitted ~ " + " + ".join(_support().ADMISSION_RISKS)
    fit = smf.glm(formula, rows, family=sm.families.Binomial()).fit()
    frame = rows.assign(mu=fit.fittedvalues)
    out = {}
    for hospital, part in frame.groupby("hospital"):
        o, e, n = float(part["admitted"].sum()), float(part["mu"].sum()), len(part)
        ratio_ci = confint_poisson(o, e, method="exact-c")
        crude_ci = proportion_confint(o, n, 0.05, method="beta")
        out[str(hospital)] = {
            "observed": o,
            "expected": e,
            "n": n,
            "ratio_ci": ratio_ci,
            "crude_ci": crude_ci,
        }
    return out


def measure(patients: int, repeats: int, cache: Path, workdir: Path) -> dict[str, Any]:
    """The federated runs and the baseline, as the JSON :func:`main` writes (no file written here)."""
    from phds.demo.network import DemoHospital, LocalNetwork
    from phds.hub.store import HubStore
    from phds.hub.store.models import OrganisationRow
    from phds.hub.store.study_models import ResultRow, TaskRow

    support = _support()
    cdms = simulate(cache, patients)
    extraction, rows = pooled_rows(cdms, workdir / "pooled")
    baseline = [timed(lambda: pooled_indicators(rows)) for _ in range(repeats)]
    reference = baseline[-1][1]
    demo = [DemoHospital(p.stem, p.stem, omop_url=f"duckdb:///{p.resolve()}") for p in cdms]
    runs: list[tuple[str, float, dict[str, Any]]] = []
    with LocalNetwork(workdir / "network", demo) as network, network.client() as client:
        names = [h.name for h in demo]
        for rep in range(repeats + 1):  # the first run builds each node's cohort table
            spec = study_spec(
                names,
                "benchmarking.indicators",
                support.BINARY,
                service_type="analytical_study",
                title=f"benchmarking {rep}",
            )
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
        compute = sum(slowest[study_id].values())
        measured.append(
            {
                "study_id": study_id,
                "seconds": round(seconds, 4),
                "rounds": len(slowest[study_id]),
                "slowest_node_compute": round(compute, 4),
                "overhead": round(seconds - compute, 4),
            }
        )
    e2e = statistics.median(m["seconds"] for m in measured)
    overhead = statistics.median(m["overhead"] for m in measured)
    base = statistics.median(t for t, _ in baseline)
    with_extraction = extraction + base
    last = runs[-1][2]
    # Pseudonyms hide which row is which; the sums over hospitals must still equal the pooled ones.
    expected = sorted(r["expected"] for r in last["rows"])
    pooled_expected = sorted(v["expected"] for v in reference.values())
    return {
        "hospitals": HOSPITALS,
        "patients_per_hospital": patients,
        "cohort_rows": int(last["n_obs"]),
        "rounds": measured[0]["rounds"],
        "repeats": len(measured),
        "load_average": load_average(),
        "federated": {
            "first_run_seconds": round(runs[0][1], 4),
            "end_to_end_median_seconds": round(e2e, 4),
            "slowest_node_compute_median_seconds": round(
                statistics.median(m["slowest_node_compute"] for m in measured), 4
            ),
            "platform_overhead_median_seconds": round(overhead, 4),
            "overhead_per_round_median_ms": round(overhead / measured[0]["rounds"] * 1e3, 2),
            "runs": measured,
        },
        "baseline_statsmodels": {
            "pooled_compute_median_seconds": round(base, 4),
            "cohort_extraction_seconds": round(extraction, 4),
            "pooled_with_extraction_seconds": round(with_extraction, 4),
        },
        "ratios": {
            "end_to_end_vs_pooled_compute": round(e2e / base, 2),
            "end_to_end_vs_pooled_with_extraction": round(e2e / with_extraction, 2),
            # the first study also builds every node's cohort table, as the extraction does once
            "first_run_vs_pooled_with_extraction": round(runs[0][1] / with_extraction, 2),
        },
        "accuracy": {
            "max_rel_expected_diff": max(
                abs(a / b - 1) for a, b in zip(expected, pooled_expected, strict=True)
            ),
            "names_disclosed": last["names_disclosed"],
        },
    }


def main() -> dict[str, Any]:
    patients = env_int("PHDS_BENCH_BENCHMARKING_PATIENTS", 20_000, 6_000)
    repeats = env_int("PHDS_BENCH_BENCHMARKING_REPEATS", 5, 2)
    cache = Path(tempfile.gettempdir()) / "phds_bench_benchmarking"
    with tempfile.TemporaryDirectory() as tmp:
        summary = measure(patients, repeats, cache, Path(tmp))
    write_result("benchmarking", summary)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
