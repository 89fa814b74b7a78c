"""``survival.km``: federated Kaplan–Meier curves, at-risk tables and the log-rank test on time bins.

Round 1 learns each hospital's minimum cell count (from its gate's payload) with the persons and events
it holds. Round 2: each node releases one :class:`BreakdownAggregate` that partitions its persons into
(group, time bin, event | censored) cells, on the coarsest-needed bins of the requester's grid where every
cell is 0 or ≥ k (:mod:`phds.analyses.cox_bins`); the gate checks every cell again. The hub keeps the
bins every hospital admits and sums the cells.

What is computed, exactly: the Kaplan–Meier (product-limit) estimate on grouped times, S(bin j) =
Π_{i≤j} (1 − d_i / n_i), with n_i the persons at risk at the start of bin i and d_i its events; censored
persons of a bin count as at risk through it. This is lifelines' ``KaplanMeierFitter`` on durations
replaced by their bin's start, read at the bin starts; when every bin holds one grid time it is the KM
on the raw times. Standard errors are Greenwood's, the 95 % band lifelines' log(−log) one. The log-rank
test (Mantel–Haenszel; hypergeometric variance) compares groups, the hospitals by default, on the same
bins, as lifelines' ``multivariate_logrank_test`` on the grouped durations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, released_values
from phds.analyses.context import LocalContext
from phds.analyses.cox_bins import (
    admissible_cuts,
    bin_edges,
    bin_labels,
    bin_of,
    check_grid,
    common_cuts,
    grid_index,
    hub_k,
    load_survival,
    node_k,
    parse_cells,
)
from phds.analyses.cox_newton import Z_95
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec
from phds.errors import InputError
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, CountAggregate

Rows = list[tuple[int, int, int]]  # (bin start cut, events, censored)


class KaplanMeierParams(BaseModel):
    """Table, duration, 0/1 event, optional group variable, the time grid and the count threshold."""

    model_config = ConfigDict(extra="forbid")

    table: TableSpec
    duration: str = Field(pattern=VARIABLE_PATTERN, max_length=100)
    event: str = Field(pattern=VARIABLE_PATTERN, max_length=100)
    group: str | None = Field(None, pattern=VARIABLE_PATTERN, max_length=100, description="Log-rank groups")
    time_origin: float = 0.0
    time_width: float = Field(1.0, gt=0, description="Grid cell width in duration units")
    min_count: int | None = Field(None, ge=5, description="k for the bins; default the largest policy value")
    horizon: float | None = Field(
        None,
        description="Under differential privacy: bins of time_width from time_origin up to here, then one",
    )
    group_levels: list[str] | None = Field(None, max_length=20, description="Under DP: the groups, declared")


def km_table(rows: Rows, edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Life table with the KM estimate, Greenwood SE and lifelines' log(−log) 95 % band."""
    remaining = sum(e + c for _, e, c in rows)
    surv, greenwood, out = 1.0, 0.0, []
    for (_, d, c), edge in zip(rows, edges, strict=True):
        n = remaining
        if n > 0:
            surv *= min(1.0, max(0.0, 1 - d / n))  # noisy (DP) counts may give d > n
            greenwood = greenwood + d / (n * (n - d)) if n > d else math.inf
        lower = upper = None
        if 0 < surv < 1 and math.isfinite(greenwood):
            v, s = math.log(surv), math.sqrt(greenwood)
            lower = math.exp(-math.exp(math.log(-v) - Z_95 * s / v))
            upper = math.exp(-math.exp(math.log(-v) + Z_95 * s / v))
        se = surv * math.sqrt(greenwood) if math.isfinite(greenwood) else None
        out.append({**edge, "at_risk": n, "events": d, "censored": c, "survival": surv, "se": se,
                    "ci_lower_95": lower, "ci_upper_95": upper})  # fmt: skip
        remaining -= d + c
    return out


def _on_cuts(rows: Rows, cuts: list[int]) -> Rows:
    """Merge a hospital's rows (own bins) onto a coarser partition."""
    merged = np.zeros((len(cuts) + 1, 2), dtype=np.int64)
    starts = np.asarray([r[0] for r in rows], dtype=np.int64)
    np.add.at(merged, bin_of(starts, cuts), np.asarray([[r[1], r[2]] for r in rows], dtype=np.int64))
    return [(s, int(e), int(c)) for s, (e, c) in zip([0, *cuts], merged, strict=True)]


def logrank(groups: Mapping[str, Rows]) -> dict[str, Any]:
    """Log-rank chi-square over groups whose rows share one partition."""
    names = sorted(groups)
    d = np.array([[r[1] for r in groups[g]] for g in names], dtype=np.float64)  # G × bins
    left = np.array([[r[1] + r[2] for r in groups[g]] for g in names], dtype=np.float64)
    at_risk = np.cumsum(left[:, ::-1], axis=1)[:, ::-1]
    n, dt = at_risk.sum(axis=0), d.sum(axis=0)
    use = (dt > 0) & (n > 1)
    frac = at_risk[:, use] / n[use]
    expected = (dt[use] * frac).sum(axis=1)
    scale = dt[use] * (n[use] - dt[use]) / (n[use] - 1)
    var = np.einsum("b,gb->g", scale, frac)[:, None] * np.eye(len(names)) - np.einsum(
        "b,gb,hb->gh", scale, frac, frac
    )
    diff = d.sum(axis=1) - expected
    stat = float(diff[:-1] @ np.linalg.solve(var[:-1, :-1], diff[:-1]))
    df = len(names) - 1
    return {"statistic": stat, "df": df, "p": float(stats.chi2.sf(stat, df)),
            "observed": dict(zip(names, d.sum(axis=1).tolist(), strict=True)),
            "expected": dict(zip(names, expected.tolist(), strict=True))}  # fmt: skip


class KaplanMeier(Analysis[KaplanMeierParams]):
    """Federated Kaplan–Meier curves (pooled, per hospital, per group) and the log-rank test."""

    name: ClassVar[str] = "survival.km"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Kaplan–Meier curves and log-rank test"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = KaplanMeierParams
    dp_support: ClassVar[bool] = True

    def max_rounds(self, params: KaplanMeierParams) -> int:
        return 2

    def local(self, ctx: LocalContext, params: KaplanMeierParams) -> LocalStep:
        start = time.perf_counter()
        f = load_survival(ctx.data, params.table, params.duration, params.event, (), params.group)
        if ctx.round_no == 1:
            counts: list[Aggregate] = [
                CountAggregate("persons", f.persons),
                CountAggregate("events", f.persons.subset(f.event)),
                CountAggregate("dropped", f.dropped_persons),
            ]
            return LocalStep(counts, time.perf_counter() - start)
        check_grid(ctx, f.persons.universe, params.time_origin, params.time_width)
        grid = grid_index(f.duration, params.time_origin, params.time_width)
        if ctx.dp is not None:  # noise on a fixed grid: every cell up to the horizon, whatever the data
            cuts, group, declared = _dp_grid(params, f.group)
            labels, levels = bin_labels(grid, f.event, cuts, group, declared)
            return LocalStep(
                [BreakdownAggregate("bins", f.persons, labels, levels)], time.perf_counter() - start
            )
        groups = [] if f.group is None else [np.unique(f.group, return_inverse=True)[1].astype(np.int64)]
        cuts = admissible_cuts(grid, f.event, node_k(ctx, params.min_count, ctx.state), groups)
        labels, levels = bin_labels(grid, f.event, cuts, f.group)
        return LocalStep([BreakdownAggregate("bins", f.persons, labels, levels)], time.perf_counter() - start)

    def combine(
        self,
        params: KaplanMeierParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        if not released:
            raise InputError("no hospital answered", field="analysis")
        if round_no == 1:
            counts = {h: {c: released_values(p)[c] for c in ("persons", "events", "dropped")}
                      for h, p in released.items()}  # fmt: skip
            return NextRound({"k": hub_k(released, params.min_count), "counts": counts})
        own = {h: parse_cells(h, released_values(p)["bins"]["cells"]) for h, p in sorted(released.items())}
        totals = {h: _sum_labels(rows) for h, rows in own.items()}
        cuts = common_cuts([[r[0] for r in rows][1:] for rows in totals.values()])
        edges = bin_edges(cuts, params.time_origin, params.time_width)
        pooled = _add([_on_cuts(rows, cuts) for rows in totals.values()], cuts)
        result: dict[str, Any] = {
            "time_bins": edges,
            "min_count": state["k"],
            "counts_by_hospital": state["counts"],
            "pooled": km_table(pooled, edges),
            "by_hospital": {
                h: km_table(rows, bin_edges([r[0] for r in rows][1:], params.time_origin, params.time_width))
                for h, rows in totals.items()
            },
        }
        if params.group is None:
            result["logrank"] = {
                "groups": "hospital",
                **logrank({h: _on_cuts(r, cuts) for h, r in totals.items()}),
            }
        else:
            labels = sorted({lab for rows in own.values() for lab in rows})
            by_group = {
                lab: _add([_on_cuts(rows[lab], cuts) for rows in own.values() if lab in rows], cuts)
                for lab in labels
            }
            result["by_group"] = {lab: km_table(rows, edges) for lab, rows in by_group.items()}
            result["logrank"] = {"groups": params.group, **logrank(by_group)}
        noisy = any(
            c.get("dp") for p in released.values() for c in released_values(p)["bins"]["cells"].values()
        )
        k = state["k"]
        note = (
            f"{len(edges)} time bins on the fixed grid, from noisy counts (differential privacy)"
            if noisy
            else f"{len(edges)} time bins that every hospital admits (every released count is 0 or ≥ {k})"
        )
        return Final(result, [note])


MAX_DP_BINS = 400


def _dp_grid(params: KaplanMeierParams, group: Any) -> tuple[list[int], Any, list[str] | None]:
    """Under DP: every grid cell up to the horizon (then one open bin), and the declared groups."""
    if params.horizon is None or params.horizon <= params.time_origin:
        raise InputError(
            "under differential privacy the time grid needs a horizon after time_origin",
            field="analysis.params.horizon",
        )
    cells = math.ceil(round((params.horizon - params.time_origin) / params.time_width, 9))
    if cells > MAX_DP_BINS:
        raise InputError(
            f"at most {MAX_DP_BINS} time bins under differential privacy", field="analysis.params.horizon"
        )
    if group is None:
        return list(range(1, cells + 1)), None, None
    if not params.group_levels:
        raise InputError(
            "under differential privacy the groups must be listed", field="analysis.params.group_levels"
        )
    declared = [str(g) for g in params.group_levels]
    named = np.asarray(group).astype(str)
    return list(range(1, cells + 1)), np.where(np.isin(named, declared), named, "other"), [*declared, "other"]


def _sum_labels(rows: Mapping[str, Rows]) -> Rows:
    """A hospital's rows summed over its groups (they share the hospital's bins)."""
    first = next(iter(rows.values()))
    return [(s, sum(r[i][1] for r in rows.values()), sum(r[i][2] for r in rows.values()))
            for i, (s, _, _) in enumerate(first)]  # fmt: skip


def _add(parts: list[Rows], cuts: list[int]) -> Rows:
    starts = [0, *cuts]
    return [(s, sum(p[i][1] for p in parts), sum(p[i][2] for p in parts)) for i, s in enumerate(starts)]


__all__ = ["KaplanMeier", "KaplanMeierParams", "km_table", "logrank"]
