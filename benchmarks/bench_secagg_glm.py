"""The GLM under secure aggregation against the plaintext GLM, over real processes.

A hub and three hospital nodes (DataSHIELD's CNSIM, about 2,000–4,000 rows each) run as processes on
loopback. The binomial model ``DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL`` is fitted plainly and
with ``secure_aggregation: true``, alternately, ``REPEATS`` times each. Reported: the coefficients'
largest difference (absolute, and relative to their standard errors), rounds, the end-to-end medians
and their ratio, and the time per round. Each secure IRLS round is a whole session (keys, shares,
masked input, unmask: four exchanges through the hub instead of one), so its cost is latency, not
computing. ``python -m benchmarks.run secagg_glm`` writes ``benchmarks/results/secagg_glm.json``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result
from phds.demo.network import DemoHospital, LocalNetwork

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabular" / "datashield" / "CNSIM"
FORMULA = "DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL"
SITES = ["site1", "site2", "site3"]
REPEATS = 3
HUB_ENV = {"PHDS_HUB_RUNNER_TICK_SECONDS": "0.2", "PHDS_HUB_POLL_RECHECK_SECONDS": "1"}


def _spec(secure: bool, i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "title": f"GLM {'secure' if secure else 'plain'} {i}", "purpose": "benchmark",
        "organisation": "acme-pharma", "service_type": "analytical_study", "hospitals": SITES,
        "analysis": {"name": "stats.glm", "params": {"table": {"dataset": "cnsim"}, "formula": FORMULA,
                                                     "family": "binomial"}},
    }  # fmt: skip
    if secure:
        spec["secure_aggregation"] = True
    return spec


def _fit(network: LocalNetwork, secure: bool, i: int) -> tuple[float, dict[str, Any]]:
    with network.client() as client:
        start = time.perf_counter()
        study = client.submit(_spec(secure, i))
        view = client.wait(study.id, timeout=600)
        seconds = time.perf_counter() - start
    if view.state.value != "completed" or view.result is None:
        kind = "secure" if secure else "plain"
        raise RuntimeError(f"the {kind} GLM ended {view.state.value}: {view.error}")
    return seconds, {"round": view.round, **view.result}


def main() -> dict[str, Any]:
    hospitals = [DemoHospital(s, s.title(), tabular={"cnsim": DATA / f"CNSIM{i}.csv"}) for i, s in
                 enumerate(SITES, start=1)]  # fmt: skip
    times: dict[str, list[float]] = {"plain": [], "secure": []}
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="phds-bench-secagg-") as tmp,
        LocalNetwork(Path(tmp), hospitals, hub_env=HUB_ENV, node_args=("--poll-wait", "20")) as network,
    ):
        _fit(network, False, -1)  # warm-up: the nodes' first study loads their tables
        for i in range(REPEATS):
            for label, secure in (("plain", False), ("secure", True)):
                seconds, result = _fit(network, secure, i)
                times[label].append(seconds)
                results[label] = result
    plain = {c["term"]: c for c in results["plain"]["coefficients"]}
    secure = {c["term"]: c for c in results["secure"]["coefficients"]}
    diff = {t: abs(secure[t]["estimate"] - plain[t]["estimate"]) for t in plain}
    in_se = {t: diff[t] / plain[t]["std_error"] for t in plain if plain[t].get("std_error")}
    medians = {label: statistics.median(runs) for label, runs in times.items()}
    rounds = {label: int(results[label]["round"]) for label in results}
    summary = {
        "formula": FORMULA,
        "hospitals": len(SITES),
        "repeats": REPEATS,
        "max_abs_coefficient_difference": max(diff.values()),
        "max_difference_in_standard_errors": max(in_se.values()) if in_se else None,
        "rounds": rounds,
        "secure_rounds": len(results["secure"]["secure_aggregation"]["rounds"]),
        "median_seconds": medians,
        "runs_seconds": times,
        "time_ratio": medians["secure"] / medians["plain"],
        "seconds_per_round": {label: medians[label] / rounds[label] for label in medians},
    }
    write_result("secagg_glm", summary)
    return summary


if __name__ == "__main__":
    print(main())
