"""What differential privacy costs in accuracy against small-cell suppression, for rare-disease cohorts.

The table a hospital committee needs before it chooses: a hospital releases the count of a cohort of n
persons (n = 5 … 500) and a 3-level breakdown of it (age group: shares 0.5 / 0.3 / 0.2).

* **DP**: the discrete Gaussian (OpenDP, :func:`phds.privacy.dp.noisy_counts`) on the 4 values at once,
  L2 sensitivity √2 (a person is in the count and in one cell), at ε = 0.1, 0.5, 1, 2 for the whole
  release with δ = 1e-6 (converted to ρ by ``PrivacyLoss.from_epsilon``); negative values clamped to 0
  (post-processing). Every value is released.
* **Suppression** with k = 5 and k = 11: a cell < k is suppressed (counted as 100% error, not released),
  a cell ≥ k is exact. No complementary suppression, which would only suppress more.

Relative error = |released − true| / true, capped at 1 (an error of 100% or more tells no more than a
suppressed cell), median over ``REPS`` cohorts; cells whose true value is 0 are left out (their relative
error is undefined). Also the mechanism's overhead per release: median µs of
``noisy_counts`` of 1 and of 100 values (calibration cached, as in a node serving repeated releases), and
of a first call at a new ρ (OpenDP calibration included).

``python -m benchmarks.run dp_utility`` writes ``benchmarks/results/dp_utility.json``.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.common import median_seconds, write_result
from phds.privacy.dp import DEFAULT_DELTA, PrivacyLoss, clamp_nonnegative, noisy_counts

SIZES = (5, 10, 20, 50, 100, 200, 500)
EPSILONS = (0.1, 0.5, 1.0, 2.0)
THRESHOLDS = (5, 11)
SHARES = (0.5, 0.3, 0.2)  # e.g. infant / child / adolescent
REPS = 300


def _cohorts(n: int, rng: np.random.Generator) -> list[list[int]]:
    """REPS releases of one hospital: [cohort count, cell 1, cell 2, cell 3]."""
    return [[n, *rng.multinomial(n, SHARES).tolist()] for _ in range(REPS)]


def _errors(truth: list[list[int]], released: list[list[int | None]]) -> dict[str, Any]:
    count, cells = [], []
    shown = {"count": 0, "cells": 0}
    for t, r in zip(truth, released, strict=True):
        for i, (true, value) in enumerate(zip(t, r, strict=True)):
            if true == 0:
                continue
            error = 1.0 if value is None else min(1.0, abs(value - true) / true)
            (count if i == 0 else cells).append(error)
            shown["count" if i == 0 else "cells"] += value is not None
    return {
        "count_median_rel_error": statistics.median(count),
        "cells_median_rel_error": statistics.median(cells),
        "count_released": shown["count"] / len(count),
        "cells_released": shown["cells"] / len(cells),
        "cells_within_20pct": sum(e <= 0.2 for e in cells) / len(cells),
    }


def utility() -> dict[str, Any]:
    losses = {eps: PrivacyLoss.from_epsilon(eps, DEFAULT_DELTA) for eps in EPSILONS}
    table: dict[str, Any] = {}
    for n in SIZES:
        truth = _cohorts(n, np.random.default_rng(n))
        row: dict[str, Any] = {}
        for eps, loss in losses.items():
            released: list[list[int | None]] = []
            for t in truth:
                noisy = clamp_nonnegative(noisy_counts(t, loss, l2_sensitivity=math.sqrt(2)))
                released.append([int(v) for v in noisy.values])
            row[f"dp_eps_{eps:g}"] = _errors(truth, released)
        for k in THRESHOLDS:
            row[f"suppress_k{k}"] = _errors(truth, [[v if v >= k else None for v in t] for t in truth])
        table[str(n)] = row
    noise = {}
    for eps, loss in losses.items():
        release = noisy_counts([0, 0, 0, 0], loss, l2_sensitivity=math.sqrt(2))
        noise[f"dp_eps_{eps:g}"] = {"rho": loss.rho, "sigma": release.scale, "ci95": release.ci95}
    return {"table": table, "noise": noise}


def overhead() -> dict[str, Any]:
    loss = PrivacyLoss.from_epsilon(1.0, DEFAULT_DELTA)
    out: dict[str, Any] = {}
    for size, repeats in ((1, 500), (100, 100)):
        counts = [7] * size
        noisy_counts(counts, loss)  # calibrate once
        median, _ = median_seconds(lambda c=counts: noisy_counts(c, loss), repeats)
        out[f"values_{size}_us"] = median * 1e6
    cold = []
    for i in range(30):  # a new ρ each time: OpenDP calibration and map check included
        fresh = PrivacyLoss(loss.rho * (1 + (i + 1) * 1e-9))
        start = time.perf_counter()
        noisy_counts([7], fresh)
        cold.append(time.perf_counter() - start)
    out["values_1_first_call_us"] = statistics.median(cold) * 1e6
    start = time.perf_counter()
    PrivacyLoss.from_epsilon(1.2345, DEFAULT_DELTA)
    out["from_epsilon_ms"] = (time.perf_counter() - start) * 1e3
    return out


def main() -> dict[str, Any]:
    measured = utility()
    cost = overhead()
    write_result(
        "dp_utility",
        {"sizes": SIZES, "epsilons": EPSILONS, "thresholds": THRESHOLDS, "shares": SHARES,
         "repetitions": REPS, "delta": DEFAULT_DELTA, **measured, "overhead": cost},
    )  # fmt: skip
    # compact: per method, per n: (count error, cell error, share of cells released)
    methods = [*measured["table"][str(SIZES[0])]]
    keys = ("count_median_rel_error", "cells_median_rel_error", "cells_released")
    summary: dict[str, Any] = {
        m: {n: [round(r[m][key], 3) for key in keys] for n, r in measured["table"].items()} for m in methods
    }
    summary["columns"] = list(keys)
    summary["noise"] = {m: round(v["ci95"], 1) for m, v in measured["noise"].items()}
    summary["overhead"] = {k: round(v, 1) for k, v in cost.items()}
    return summary


if __name__ == "__main__":
    print(main())
