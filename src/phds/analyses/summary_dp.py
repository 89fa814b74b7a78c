"""``stats.summary`` under differential privacy: one round, moments and quantiles from noise.

The bisection of the exact summary lets each node accept thresholds from its own data, which a DP
release cannot do (the choice itself would depend on the data). Under DP each node instead releases,
in one round, the clipped sum Σx (bounds from the study's ``dp.bounds`` or the node's policy), its
missing count, and a histogram of its clipped values on a fixed grid of :data:`DP_BINS` equal bins
between the bounds. The hub adds them: mean = Σx/n; the variance from the pooled histogram's bin
midpoints with Sheppard's correction (−w²/12 for bins of width w; Sheppard 1898), bins below their
noise's 95% level counted as empty, so no Σx² of
sensitivity max(lo², hi²) has to be noised; each quantile from the pooled noisy histogram with OpenDP's
quantiles-from-counts (post-processing, :func:`phds.privacy.dp.quantiles_from_counts`). A quantile's
resolution is one bin, (upper − lower)/:data:`DP_BINS`, on top of the noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from phds.analyses.context import LocalContext, dp_clip
from phds.errors import InputError
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, CountAggregate, SumAggregate
from phds.privacy.disclosure import Z_975

if TYPE_CHECKING:
    from phds.analyses.summary import NumericColumn

DP_BINS = 50


def _level(lo: float, hi: float) -> str:
    return f"{lo!r}|{hi!r}"


def dp_local(column: NumericColumn, ctx: LocalContext, variable: str) -> list[Aggregate]:
    """The node's one DP round: clipped moments, the missing count and the fixed-grid histogram."""
    bounds = dp_clip(ctx, variable)
    assert bounds is not None
    lo, hi = bounds
    x = np.clip(column.values, lo, hi)
    edges = np.linspace(lo, hi, DP_BINS + 1)
    levels = [_level(float(a), float(b)) for a, b in itertools.pairwise(edges)]
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, DP_BINS - 1)
    return [
        SumAggregate("moments", column.persons, {"sum": x}, variable=x, clip={"sum": (lo, hi)}),
        CountAggregate("missing", column.missing),
        BreakdownAggregate("histogram", column.persons, np.asarray(levels, dtype=object)[which], levels),
    ]  # fmt: skip


def is_dp_release(values: Mapping[str, Mapping[str, Any]]) -> bool:
    return any("histogram" in v for v in values.values())


def dp_combine(values: Mapping[str, Mapping[str, Any]], quantiles: Sequence[float]) -> dict[str, Any]:
    """The pooled statistics from the hospitals' DP releases (module docstring)."""
    from phds.privacy.dp import quantiles_from_counts

    n = total = 0.0
    by_hospital: dict[str, dict[str, Any]] = {}
    pooled: dict[str, float] = {}
    noise: dict[str, float] = {}  # the pooled cell's noise variance
    for h, v in sorted(values.items()):
        moments = v["moments"]
        n_h = float(moments["n"]["value"] or 0)
        n, total = n + n_h, total + moments["values"]["sum"]
        by_hospital[h] = {"n": int(n_h), "mean": moments["values"]["sum"] / n_h if n_h else None, "sd": None}
        for level, cell in v["histogram"]["cells"].items():
            pooled[level] = pooled.get(level, 0.0) + float(cell["value"] or 0)
            noise[level] = noise.get(level, 0.0) + float((cell.get("dp") or {}).get("scale", 0.0)) ** 2
    if n < 2:
        raise InputError(
            "too few values in the network for a summary under differential privacy", field="analysis"
        )
    mean = total / n
    ordered = sorted(pooled.items(), key=lambda kv: float(kv[0].split("|")[0]))
    edges = [float(k.split("|")[0]) for k, _ in ordered] + [float(ordered[-1][0].split("|")[1])]
    # A noisy count clamped at 0 is biased upwards in empty bins; bins below their noise's 95% level
    # are taken as empty (post-processing), so the tails' noise does not inflate the spread.
    raw = np.asarray([c for _, c in ordered])
    level95 = Z_975 * np.sqrt(np.asarray([noise[k] for k, _ in ordered]))
    counts = np.where(raw > level95, raw, 0.0)
    width = (edges[-1] - edges[0]) / DP_BINS
    mids = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    spread = float(np.sum(counts * (mids - mean) ** 2)) / max(float(counts.sum()) - 1, 1.0)
    variance = max(0.0, spread - width * width / 12)
    values_q = quantiles_from_counts(edges, counts.tolist(), list(quantiles))
    return {
        "n": round(n),
        "mean": mean,
        "variance": variance,
        "sd": math.sqrt(variance),
        "by_hospital": by_hospital,
        "missing_by_hospital": {h: v["missing"] for h, v in sorted(values.items())},
        "quantiles": [
            {"q": q, "value": value, "lower": None, "upper": None, "max_error": None, "withheld": None}
            for q, value in zip(quantiles, values_q, strict=True)
        ],
        "dp": {"histogram_bins": DP_BINS, "bounds": [edges[0], edges[-1]], "bin_width": width},
    }


__all__ = ["DP_BINS", "dp_combine", "dp_local", "is_dp_release"]
