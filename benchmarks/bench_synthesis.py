"""MST synthetic-data generator at a node: 100,000 rows × 10 columns, time and memory, vs exact marginals.

Every measurement runs in a fresh process (``spawn``), so its peak RSS (``ru_maxrss``) is its own and
JAX's compile cache starts cold each time, as at a node answering a new study. tracemalloc's peak is
reported too, but it sees only Python's allocator: JAX/XLA buffers are outside it, so RSS is the figure
that matters. Measured, each as the median of ``REPEATS`` runs:

* ``mst``: :func:`phds.privacy.synthetic_dp.measure_mst` (OpenDP's MST, ρ = 0.5): the node's DP work;
* ``gate``: the same through the node's gate (:class:`~phds.node.gate.Gate` with its DP step, ledger,
  evidence hash and audit entry): end-to-end at the node; ``gate − mst`` is the platform's overhead;
* ``exact``: the baseline, every exact one- and two-way marginal of the same discretised table with
  numpy (what a non-private generator would read), so ``mst / exact`` is the price of DP selection,
  noise and OpenDP's own model fit;
* ``hub``: fitting the graphical model to the released marginals and sampling 100,000 rows (post-processing).

    python -m benchmarks.run synthesis
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

ROWS = int(os.environ.get("PHDS_SYNTHESIS_BENCH_ROWS", "100000"))  # spawned runs read it too
REPEATS = int(os.environ.get("PHDS_SYNTHESIS_BENCH_REPEATS", "3"))
RHO = 0.5
CATEGORICAL = {"sex": 2, "ward": 4, "diagnosis": 6, "admission": 3, "outcome": 2}
NUMERIC = ("age", "weight", "heart_rate", "crp", "stay_days")
CUTS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)


def table(rows: int = ROWS, seed: int = 12) -> Any:
    """A 10-column table with dependent columns (5 categorical, 5 numeric), fixed by *seed*."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    latent = rng.normal(size=rows)
    out: dict[str, Any] = {}
    for i, (name, k) in enumerate(CATEGORICAL.items()):
        score = latent * (0.5 + 0.2 * i) + rng.normal(size=rows)
        out[name] = np.digitize(score, np.quantile(score, np.linspace(0, 1, k + 1)[1:-1])).astype(str)
    for i, name in enumerate(NUMERIC):
        out[name] = latent * (0.3 + 0.15 * i) + rng.normal(size=rows)
    return pd.DataFrame(out)


def bins() -> list[Any]:
    from phds.privacy.synthetic_dp import ColumnBins

    cats = [ColumnBins(n, categories=tuple(str(v) for v in range(k))) for n, k in CATEGORICAL.items()]
    return cats + [ColumnBins(n, cuts=CUTS, bounds=(-4.0, 4.0)) for n in NUMERIC]


def _exact(frame: Any) -> int:
    import itertools

    import numpy as np

    from phds.privacy.synthetic_dp import discretise

    columns = [
        {"name": b.name, "labels": _labels(b), "cuts": list(b.cuts) if b.cuts else None} for b in bins()
    ]
    codes = discretise(frame, columns)
    sizes = [len(c["labels"]) for c in columns]
    cells = 0
    for j in range(codes.shape[1]):
        cells += np.bincount(codes[:, j], minlength=sizes[j]).size
    for a, b in itertools.combinations(range(codes.shape[1]), 2):
        cells += np.bincount(codes[:, a] * sizes[b] + codes[:, b], minlength=sizes[a] * sizes[b]).size
    return cells


def _labels(b: Any) -> list[str]:
    return [*b.categories, "NA"] if b.categories else [str(i) for i in range(len(b.cuts) + 1)]


def _gate(frame: Any) -> Any:
    import numpy as np

    from phds.analyses.context import DpInForce
    from phds.node.audit import AuditLog, NodeDatabase
    from phds.node.gate import Gate, GateContext
    from phds.node.policy import DifferentialPrivacy, DpLoss, Policy, PolicyRule
    from phds.privacy.aggregates import MarginalsAggregate, Persons

    with tempfile.TemporaryDirectory() as tmp:
        budget = DpLoss(rho=100.0)
        policy = Policy(
            rules=[PolicyRule(name="all", analyses=["*"], approval="auto")],
            dp=DifferentialPrivacy(requester_budget=budget, network_budget=budget),
        )
        gate = Gate(policy, AuditLog(NodeDatabase(Path(tmp) / "node.db")))
        agg = MarginalsAggregate(
            "generator", Persons.of("tabular:bench", np.arange(len(frame))), frame, bins()
        )
        ctx = GateContext("s", "t", "org", "synthetic.mst", dp=DpInForce(rho=RHO, delta=1e-6))
        return gate.release(ctx, [agg]).payload["values"]["generator"]


def _measure(kind: str, queue: Any, released: Any = None) -> None:
    from phds.privacy.synthetic_dp import fit_and_sample, measure_mst

    frame = table()
    made = None
    tracemalloc.start()
    cpu0, start = time.process_time(), time.perf_counter()
    if kind == "mst":
        made = measure_mst(frame, bins(), RHO)
    elif kind == "gate":
        _gate(frame)
    elif kind == "exact":
        _exact(frame)
    else:
        fit_and_sample(released["columns"], released["marginals"], ROWS, seed=1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if made is not None:
        queue.put({"columns": made.columns, "marginals": made.marginals})
    queue.put(
        {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "tracemalloc_peak_mib": peak / 2**20,
            "rss_peak_mib": rss_mib,
        }
    )


_RELEASED: dict[str, Any] = {}


def run_once(kind: str) -> dict[str, float]:
    """One measurement in a fresh process; an ``mst`` run also keeps its release for the ``hub`` runs."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(kind, queue, _RELEASED or None))
    proc.start()
    if kind == "mst":
        _RELEASED.update(queue.get(timeout=1800))
    out: dict[str, float] = queue.get(timeout=1800)
    proc.join()
    return out


def measure(repeats: int = REPEATS) -> dict[str, Any]:
    runs = {kind: [run_once(kind) for _ in range(repeats)] for kind in ("exact", "mst", "gate", "hub")}
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    return {
        "rows": ROWS,
        "columns": len(CATEGORICAL) + len(NUMERIC),
        "rho": RHO,
        "repeats": repeats,
        "median": med,
        "runs": runs,
        "ratio_mst_to_exact_marginals": med["mst"]["seconds"] / med["exact"]["seconds"],
        "gate_overhead_seconds": med["gate"]["seconds"] - med["mst"]["seconds"],
        # CPU time does not count waiting for a core on a shared machine: the steadier comparison.
        "ratio_mst_to_exact_marginals_cpu": med["mst"]["cpu_seconds"] / med["exact"]["cpu_seconds"],
        "gate_overhead_cpu_seconds": med["gate"]["cpu_seconds"] - med["mst"]["cpu_seconds"],
        "note": "a fresh spawned process per run (cold JAX); RSS is the process peak; tracemalloc misses XLA",
    }


def main(write: bool = True) -> dict[str, Any]:
    payload = measure()
    if write:
        write_result("synthesis", payload)
    med = payload["median"]
    return {
        "mst_seconds": round(med["mst"]["seconds"], 2),
        "mst_rss_mib": round(med["mst"]["rss_peak_mib"]),
        "exact_seconds": round(med["exact"]["seconds"], 3),
        "ratio": round(payload["ratio_mst_to_exact_marginals"], 1),
        "gate_seconds": round(med["gate"]["seconds"], 2),
        "hub_fit_sample_seconds": round(med["hub"]["seconds"], 2),
    }


if __name__ == "__main__":
    print(main())
