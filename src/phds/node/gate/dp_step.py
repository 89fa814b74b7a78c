"""The gate's differential-privacy step: noisy counts, breakdowns and bounded sums, spent on the ledger.

When DP is in force for a task (:class:`~phds.analyses.context.DpInForce`, the stricter of the study's
request and the policy), this step releases every aggregate through an OpenDP mechanism
(:mod:`phds.privacy.dp`) in place of the exact rules:

* a **count** gets discrete Gaussian (or discrete Laplace) noise of sensitivity 1;
* a **breakdown** (histogram, one- or two-way table, Kaplan–Meier bins on the node's fixed grid) gets
  noise on every cell of its grid (one person is in one cell: sensitivity 1); its total is the sum of
  the noisy cells. The grid must not depend on the data: analyses use declared or vocabulary levels;
* **sums** are clipped to the bounds of their variable and noised together (L2 sensitivity over all
  the sums one person enters); their n is a noisy count;
* a **model update** (DP-FedAvg) becomes the Gaussian-noised sum of per-row gradients clipped to the
  study's clip norm (sensitivity: the clip; :mod:`phds.privacy.dp_learning`) and a noisy count of its
  rows, after the policy's ``fl_min_rows`` check.

* **marginals** of a synthetic-data generator run OpenDP's MST (:mod:`phds.privacy.synthetic_dp`) on
  the declared bins with the whole share; refused for a table of fewer than k rows (the 1-row table
  attack: DP bounds what one row changes, yet a model of almost no rows has nothing else to describe).

Models and profiles have no DP mechanism here: under DP they are refused. Neighbouring datasets differ
by one person (add/remove). The study's loss ρ is split evenly over the analysis's rounds and over the
releases of a round (zCDP composes additively, Bun & Steinke 2016, Lemma 2.3). The spend is committed
on the :class:`~phds.node.dp_ledger.DpLedger` in the gate's transaction. A release whose evidence,
mechanism and loss equal an earlier one's is answered with the stored noisy value, at no cost.

Nothing this step releases is registered for the overlap guard: noise, not suppression, protects it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from phds.analyses.context import DpInForce
from phds.errors import DisclosureRefused, InputError
from phds.node.dp_ledger import DpLedger
from phds.node.gate.pipeline import Next, Release
from phds.privacy import dp
from phds.privacy.aggregates import (
    Aggregate,
    BreakdownAggregate,
    CountAggregate,
    MarginalsAggregate,
    Persons,
    ProbeAggregate,
    SumAggregate,
    UpdateAggregate,
)
from phds.privacy.dp_distributed import distributed_counts
from phds.protocol.canonical import canonical_hash
from phds.protocol.privacy import DpBudget, DpStatement
from phds.protocol.releases import (
    ReleasedBreakdown,
    ReleasedCount,
    ReleasedMarginals,
    ReleasedModel,
    ReleasedSums,
)


def _parts(agg: Aggregate) -> int:
    """How many shares of the round's loss an aggregate spends (sums: their n and the sums)."""
    if isinstance(agg, CountAggregate | BreakdownAggregate | MarginalsAggregate):
        return 1
    if isinstance(agg, SumAggregate | UpdateAggregate):
        return 2
    raise DisclosureRefused(
        f"{agg.name}: differential privacy is in force for this study and a {type(agg).__name__} has no "
        "differentially private mechanism at this node"
    )


def _ids_digest(h: Any, persons: Persons) -> np.ndarray:
    order = np.argsort(persons.ids, kind="stable")
    ids = persons.ids[order]
    h.update(persons.universe.encode())
    h.update(
        ids.astype(np.int64).tobytes() if ids.dtype.kind in "iu" else "\x1f".join(map(str, ids)).encode()
    )
    return order


def evidence_key(agg: Aggregate, settings: Mapping[str, Any]) -> str:
    """A hash of what the release is computed from and how: equal keys give equal releases."""
    h = hashlib.sha256(canonical_hash({"type": type(agg).__name__, **settings}).encode())
    if isinstance(agg, CountAggregate):
        _ids_digest(h, agg.persons)
    elif isinstance(agg, BreakdownAggregate):
        order = _ids_digest(h, agg.persons)
        h.update("\x1f".join(np.asarray(agg.labels).astype(str)[order]).encode())
        h.update("\x1e".join(agg.levels).encode())
    elif isinstance(agg, MarginalsAggregate):
        order = _ids_digest(h, agg.persons)
        h.update(canonical_hash({"bins": [repr(b) for b in agg.bins], "algorithm": agg.algorithm}).encode())
        h.update(agg.frame.iloc[order].to_csv(index=False).encode())
    elif isinstance(agg, SumAggregate):
        order = _ids_digest(h, agg.persons)
        for name in sorted(agg.contributions):
            h.update(name.encode())
            h.update(
                np.ascontiguousarray(np.asarray(agg.contributions[name], dtype=np.float64)[order]).tobytes()
            )
    elif isinstance(agg, UpdateAggregate):  # the per-row gradients at this round's global model
        order = _ids_digest(h, agg.persons)
        grads = agg.row_gradients if agg.row_gradients is not None else np.zeros((0, 0))
        h.update(np.ascontiguousarray(np.asarray(grads, dtype=np.float64)[order]).tobytes())
        h.update(repr(float(agg.clip_norm)).encode())
    else:  # pragma: no cover - _parts refuses every other type under DP first
        raise InputError(f"{agg.name}: no evidence key for {type(agg).__name__}", field="aggregates")
    return h.hexdigest()


def _statement(noisy: dp.NoisyValues, delta: float, ci95: float | None = None) -> DpStatement:
    return DpStatement(
        mechanism=noisy.mechanism,
        scale=noisy.scale,
        rho=noisy.loss.rho,
        epsilon=noisy.loss.epsilon(delta),
        delta=delta,
        ci95=noisy.ci95 if ci95 is None else ci95,
    )


def _count(value: float, statement: DpStatement, threshold: int, *, share: bool = False) -> ReleasedCount:
    # Clamping at 0 is post-processing (Dwork & Roth 2014, Prop. 2.1); a share of distributed noise is
    # not clamped, or the network sum of the shares would be biased.
    v = round(value) if share else max(0, round(value))
    return ReleasedCount(
        value=v,
        suppressed=False,
        threshold=threshold,
        lower=math.floor(v - statement.ci95) if share else max(0, math.floor(v - statement.ci95)),
        upper=math.ceil(v + statement.ci95),
        dp=statement,
    )


class DpStep:
    """Release the aggregates with noise when DP is in force (module docstring)."""

    def __init__(self, ledger: DpLedger) -> None:
        self.ledger = ledger

    def __call__(self, release: Release, call_next: Next) -> Release:
        settings = release.ctx.dp
        if settings is None:
            return call_next(release)
        private = [agg for agg in release.aggregates if not isinstance(agg, ProbeAggregate)]  # no data
        parts = sum(_parts(agg) for agg in private)
        per = dp.PrivacyLoss(settings.rho / max(1, release.ctx.dp_rounds) / max(1, parts))
        spent: dict[str, float] = {}
        for agg in private:
            universe = agg.persons.universe  # type: ignore[union-attr]  # _parts admitted only these
            how: dict[str, Any] = {"rho": per.rho, "delta": settings.delta, "mechanism": settings.mechanism}
            if release.ctx.secure_parties > 1:
                how["secure_parties"] = release.ctx.secure_parties
            if isinstance(agg, SumAggregate):
                how["bounds"] = {k: list(v) for k, v in sorted(_bounds(agg).items())}
            key = evidence_key(agg, how)
            stored = self.ledger.cached(key)
            if stored is not None:
                release.values[agg.name] = _reused(stored)
                continue
            value = self._noisy(release, agg, per, settings)
            release.values[agg.name] = value
            self.ledger.remember(key, universe, value.model_dump(mode="json"))
            spent[universe] = spent.get(universe, 0.0) + per.rho * _parts(agg)
        budgets: list[DpBudget] = []
        for universe in sorted({a.persons.universe for a in private}):  # type: ignore[union-attr]
            line = self.ledger.spend(
                universe, release.ctx.requester_org, spent.get(universe, 0.0),
                study_id=release.ctx.study_id, task_id=release.ctx.task_id,
            )  # fmt: skip
            budgets.append(
                DpBudget(
                    dataset=universe,
                    spent_rho=line.spent_rho,
                    remaining_rho=line.remaining_rho,
                    remaining_epsilon=line.remaining_epsilon,
                    delta=line.delta,
                )
            )
        release.budget = budgets
        return call_next(release)

    def _noisy(self, release: Release, agg: Aggregate, per: dp.PrivacyLoss, s: DpInForce) -> Any:
        k, mech = release.k, s.mechanism
        parties = release.ctx.secure_parties
        if parties > 1:  # under secure aggregation: this node's share of the network's noise
            return _shares(agg, per, parties, s.delta, k)
        if isinstance(agg, CountAggregate):
            noisy = dp.noisy_counts([agg.persons.size], per, mechanism=mech)  # type: ignore[arg-type]
            return _count(noisy.values[0], _statement(noisy, s.delta), k)
        if isinstance(agg, MarginalsAggregate):
            return _marginals(agg, per, s.delta, k)
        if isinstance(agg, BreakdownAggregate):
            if not agg.declared:
                raise InputError(
                    f"{agg.name}: under differential privacy a breakdown's levels must be declared "
                    "(analysis.params.levels) or come from the vocabulary",
                    field="analysis.params.levels",
                )
            cells = agg.cells()
            noisy = dp.noisy_counts(list(cells.values()), per, mechanism=mech)  # type: ignore[arg-type]
            statement = _statement(noisy, s.delta)
            out = {lv: _count(v, statement, k) for lv, v in zip(cells, noisy.values, strict=True)}
            total = sum(c.value or 0 for c in out.values())
            # The total is post-processing of the cells: its noise is the sum of theirs.
            total_stmt = statement.model_copy(
                update={
                    "scale": noisy.scale * math.sqrt(len(cells)),
                    "ci95": _sum_half(noisy, len(cells)),
                }
            )
            total_count = ReleasedCount(
                value=total, suppressed=False, threshold=k, lower=max(0, math.floor(total - total_stmt.ci95)),
                upper=math.ceil(total + total_stmt.ci95), dp=total_stmt,
            )  # fmt: skip
            return ReleasedBreakdown(total=total_count, cells=out)
        if isinstance(agg, UpdateAggregate):
            return _noisy_update(release, agg, per, s)
        assert isinstance(agg, SumAggregate)
        n_noisy = dp.noisy_counts([agg.persons.size], per, mechanism=mech)  # type: ignore[arg-type]
        sums = dp.noisy_sums(dict(agg.contributions), _bounds(agg), per)
        return ReleasedSums(
            n=_count(n_noisy.values[0], _statement(n_noisy, s.delta), k),
            values={name: float(v.values[0]) for name, v in sums.items()},
            dp={name: _statement(v, s.delta) for name, v in sums.items()},
        )


def _noisy_update(release: Release, agg: UpdateAggregate, per: dp.PrivacyLoss, s: DpInForce) -> ReleasedModel:
    from phds.node.gate.rules import check_update_rows
    from phds.privacy.dp_learning import noisy_clipped_sum

    check_update_rows(release, agg)
    if agg.row_gradients is None:
        raise DisclosureRefused(f"{agg.name}: under DP an update needs its per-row gradients")
    n_noisy = dp.noisy_counts([agg.persons.size], per, mechanism=s.mechanism)  # type: ignore[arg-type]
    noisy = noisy_clipped_sum(agg.row_gradients, agg.clip_norm, per)
    return ReleasedModel(
        n_obs=_count(n_noisy.values[0], _statement(n_noisy, s.delta), release.k),
        n_params=agg.n_params,
        values={
            "gradient_sum": noisy.values,
            "clip_norm": float(agg.clip_norm),
            "dp": _statement(noisy, s.delta).model_dump(mode="json"),
        },
    )


def _marginals(agg: MarginalsAggregate, per: dp.PrivacyLoss, delta: float, k: int) -> ReleasedMarginals:
    """OpenDP's MST on the declared bins, spending *per* (module docstring)."""
    from phds.privacy.synthetic_dp import measure_mst

    if agg.persons.size < k or agg.frame.shape[0] != agg.persons.ids.shape[0]:
        raise DisclosureRefused(f"{agg.name}: a synthetic-data generator of fewer than {k} rows")
    measured = measure_mst(agg.frame, list(agg.bins), per.rho)
    statement = DpStatement(
        mechanism=f"opendp.mbi.{agg.algorithm.upper()} (Gaussian marginals, report-noisy-max selection)",
        scale=measured.max_stddev,
        rho=per.rho,
        epsilon=per.epsilon(delta),
        delta=delta,
        ci95=1.959964 * measured.max_stddev,
    )
    return ReleasedMarginals.model_validate(
        {
            "algorithm": agg.algorithm,
            "columns": measured.columns,
            "marginals": measured.marginals,
            "dp": statement.model_dump(mode="json"),
        }
    )


def _shares(agg: Aggregate, per: dp.PrivacyLoss, parties: int, delta: float, k: int) -> Any:
    """Counts and breakdowns with a share of distributed noise (:mod:`phds.privacy.dp_distributed`),
    calibrated so that the sum over at least *parties* nodes spends *per*."""
    if isinstance(agg, CountAggregate):
        noisy = distributed_counts([agg.persons.size], per, parties)
        stmt = _statement(noisy, delta).model_copy(update={"share_of": parties})
        return _count(noisy.values[0], stmt, k, share=True)
    if not isinstance(agg, BreakdownAggregate) or not agg.declared:
        raise DisclosureRefused(
            f"{agg.name}: under differential privacy with secure aggregation only counts and breakdowns "
            "on fixed grids have a distributed mechanism"
        )
    cells = agg.cells()
    noisy = distributed_counts(list(cells.values()), per, parties)
    statement = _statement(noisy, delta).model_copy(update={"share_of": parties})
    out = {lv: _count(v, statement, k, share=True) for lv, v in zip(cells, noisy.values, strict=True)}
    total = sum(c.value or 0 for c in out.values())
    total_stmt = statement.model_copy(update={"ci95": statement.ci95 * math.sqrt(len(cells))})
    half = total_stmt.ci95
    total_count = ReleasedCount(value=total, suppressed=False, threshold=k, dp=total_stmt,
                                lower=math.floor(total - half), upper=math.ceil(total + half))  # fmt: skip
    return ReleasedBreakdown(total=total_count, cells=out)


def _sum_half(noisy: dp.NoisyValues, cells: int) -> float:
    """95% half-width of the sum of *cells* values with *noisy*'s independent noise."""
    return float(dp.sum_ci95([_single(noisy, i) for i in range(cells)]))


def _single(noisy: dp.NoisyValues, i: int) -> dp.NoisyValues:
    return dp.NoisyValues(
        values=[noisy.values[i]], mechanism=noisy.mechanism, scale=noisy.scale, loss=noisy.loss,
        sensitivity=noisy.sensitivity, ci95=noisy.ci95,
    )  # fmt: skip


def _bounds(agg: SumAggregate) -> dict[str, tuple[float, float]]:
    return {name: (float(lo), float(hi)) for name, (lo, hi) in (agg.clip or {}).items()}


def _mark_reused(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _mark_reused(v) for k, v in node.items()}
        if {"mechanism", "rho", "ci95"} <= out.keys():
            out["reused"] = True
        return out
    return node


def _reused(stored: dict[str, Any]) -> Any:
    """A stored DP release, each of its statements marked as a repeat that spent nothing."""
    marked = _mark_reused(stored)
    if stored["type"] == "count":
        return ReleasedCount.model_validate(marked)
    if stored["type"] == "breakdown":
        return ReleasedBreakdown.model_validate(marked)
    if stored["type"] == "model":
        return ReleasedModel.model_validate(marked)
    if stored["type"] == "marginals":
        return ReleasedMarginals.model_validate(marked)
    return ReleasedSums.model_validate(marked)


__all__ = ["DpStep", "evidence_key"]
