"""``survival.cox``: federated Cox proportional hazards, equal to the pooled fit.

Round 1 agrees the design: events and dropped rows (counts) and the levels of categorical covariates
(breakdowns), which the hub dummy-codes against the first level in sorted order. Then one of two modes
(docs/howto/survival.md says what leaves a node):

* ``stratified_by_hospital`` (default): a baseline hazard per hospital. Every later round each node
  releases only its log partial likelihood, gradient and Hessian at the hub's β (a
  :class:`GlmAggregate`, so the gate's saturation and binary-level checks apply); the hub sums them and
  takes a Newton step. The pooled stratified likelihood is the sum of the hospitals', so it is exact.
* unstratified, after WebDISCO (Lu et al. 2015, JAMIA 22(6):1212–1219): one baseline hazard. Round 1
  also gives covariate means for centring; round 2 agrees time bins on the requester's grid that every
  node admits (:mod:`phds.analyses.cox_bins`: each bin's event and censored counts 0 or ≥ k, overall
  and per level of every binary column); each later round every node releases per-bin risk-set sums
  Σw, Σwx, Σwxxᵀ (for Efron also over the bin's events). The fit equals the pooled Cox fit on durations
  grouped to the agreed bins, which is the fit on exact times when no grid cells had to merge.

Ties: Efron (default, as lifelines) or Breslow. Rows with a missing value are dropped at the node.
Under secure aggregation the Newton rounds of both modes are network sums (:mod:`phds.analyses.cox_secure`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from phds.analyses import cox_secure
from phds.analyses.base import Analysis, Final, LocalStep, NextRound, SecureLayout, released_values
from phds.analyses.context import LocalContext
from phds.analyses.cox_bins import (
    SurvivalFrame,
    admissible_cuts,
    bin_edges,
    bin_labels,
    bin_of,
    check_cuts,
    check_grid,
    common_cuts,
    grid_index,
    hub_k,
    load_survival,
    node_k,
    parse_cells,
)
from phds.analyses.cox_math import Ties, TimeSums, add_sums, partial_likelihood, time_sums
from phds.analyses.cox_newton import coefficient_table, newton_step
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec
from phds.errors import InputError
from phds.privacy.aggregates import (
    Aggregate,
    BreakdownAggregate,
    CountAggregate,
    DesignEvidence,
    ModelAggregate,
    PointEvidence,
    RiskSetEvidence,
    SumAggregate,
)
from phds.privacy.design_checks import check_linear_predictor

MAX_ROUNDS = 41
"""A node answers no more rounds than this (bounds how many β a hub can probe the data at)."""
Variable = str


class CoxParams(BaseModel):
    """What to fit: table, duration and 0/1 event variables, numeric covariates, ties and mode."""

    model_config = ConfigDict(extra="forbid")

    table: TableSpec
    duration: Variable = Field(pattern=VARIABLE_PATTERN, max_length=100)
    event: Variable = Field(pattern=VARIABLE_PATTERN, max_length=100)
    covariates: list[Variable] = Field(min_length=1, max_length=50)
    categorical: list[Variable] = Field(default_factory=list, description="Covariates to dummy-code")
    levels: dict[Variable, list[str]] = Field(
        default_factory=dict,
        description="the levels of a categorical covariate whose values are text (level names leave a "
        "hospital only when declared); the first is the reference after sorting",
    )
    ties: Ties = "efron"
    stratified_by_hospital: bool = True
    min_risk_set: int | None = Field(None, ge=5, description="Unstratified: k for bins; default the policy's")
    time_origin: float = Field(0.0, description="Unstratified: the time grid starts here")
    time_width: float = Field(1.0, gt=0, description="Unstratified: grid cell width, in duration units")
    max_iterations: int = Field(30, ge=1, le=MAX_ROUNDS - 1)

    @field_validator("covariates")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        import re

        bad = [c for c in v if not re.match(VARIABLE_PATTERN, c)]
        if bad or len(set(v)) != len(v):
            raise ValueError("covariates must be distinct variable names")
        return v

    @model_validator(mode="after")
    def _categorical_are_covariates(self) -> CoxParams:
        if not set(self.categorical) <= set(self.covariates):
            raise ValueError("every categorical variable must also be listed in covariates")
        if not set(self.levels) <= set(self.categorical):
            raise ValueError("levels may be declared only for categorical covariates")
        if any(len(set(v)) != len(v) or len(v) < 2 for v in self.levels.values()):
            raise ValueError("declare at least two distinct levels of a categorical covariate")
        return self


def columns(params: CoxParams, levels: Mapping[str, list[str]]) -> list[str]:
    """Model columns: numeric covariates, and ``var[T.level]`` dummies against each first level."""
    out: list[str] = []
    for c in params.covariates:
        out += [f"{c}[T.{lev}]" for lev in levels[c][1:]] if c in params.categorical else [c]
    return out


def _design(f: SurvivalFrame, params: CoxParams, levels: Mapping[str, list[str]]) -> np.ndarray:
    """The node's design matrix on the agreed levels (treatment coding, in covariate order)."""
    cols: list[np.ndarray] = []
    numeric = iter(range(f.x.shape[1]))
    for c in params.covariates:
        if c not in params.categorical:
            cols.append(f.x[:, next(numeric)])
            continue
        values = f.categories[c]
        if not set(values.tolist()) <= set(levels[c]):
            raise InputError(f"{c} has a level the study did not agree", field="analysis.params.categorical")
        cols += [(values == lev).astype(np.float64) for lev in levels[c][1:]]
    return np.column_stack(cols) if cols else np.zeros((len(f.event), 0))


def _flatten(s: TimeSums, efron: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"s0": s.s0.tolist(), "s1": s.s1.tolist(), "s2": s.s2.tolist(),
                           "event_x": s.event_x.tolist()}  # fmt: skip
    if efron:
        out.update(d0=s.d0.tolist(), d1=s.d1.tolist(), d2=s.d2.tolist())
    return out


def _merge_events(rows: list[tuple[int, int, int]], cuts: list[int]) -> list[int]:
    """A hospital's events on the agreed bins (its own bins nest inside them)."""
    starts = np.asarray([r[0] for r in rows], dtype=np.int64)
    weights = np.asarray([r[1] for r in rows], dtype=np.float64)
    merged = np.bincount(bin_of(starts, cuts), weights=weights, minlength=len(cuts) + 1)
    return [int(v) for v in merged]


class CoxPH(Analysis[CoxParams]):
    """Federated Cox proportional hazards (stratified by hospital, or WebDISCO-style unstratified)."""

    name: ClassVar[str] = "survival.cox"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Cox proportional hazards"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = CoxParams
    secure_aggregation_support: ClassVar[bool] = True

    # -- node ----------------------------------------------------------------------------------------

    def max_rounds(self, params: CoxParams) -> int:
        return MAX_ROUNDS

    def local(self, ctx: LocalContext, params: CoxParams) -> LocalStep:
        """Round 1: design facts; unstratified round 2: bins; later rounds: one Newton evaluation."""
        start = time.perf_counter()
        round_no, state = ctx.round_no, ctx.state
        f = load_survival(ctx.data, params.table, params.duration, params.event, params.covariates,
                          categorical=params.categorical)  # fmt: skip
        persons = f.persons
        aggregates: list[Aggregate] = []
        if round_no == 1:
            aggregates += [CountAggregate("events", persons.subset(f.event)),
                           CountAggregate("dropped", f.dropped_persons)]  # fmt: skip
            for c in params.categorical:
                if c in params.levels:
                    declared = [str(v) for v in params.levels[c]]
                    if not set(f.categories[c].astype(str).tolist()) <= set(declared):
                        raise InputError(
                            f"{c} has values outside its declared levels", field="analysis.params.levels"
                        )
                    aggregates.append(BreakdownAggregate(f"levels.{c}", persons, f.categories[c], declared))
                    continue
                levels = sorted(set(f.categories[c].tolist()))
                aggregates.append(
                    BreakdownAggregate(f"levels.{c}", persons, f.categories[c], levels, declared=False)
                )
            if not params.stratified_by_hospital:
                numeric = [c for c in params.covariates if c not in params.categorical]
                totals = {c: f.x[:, j] for j, c in enumerate(numeric)}
                aggregates.append(SumAggregate("covariate_sums", persons, totals))
            return LocalStep(aggregates, time.perf_counter() - start)
        x = _design(f, params, state["levels"])
        p = x.shape[1]
        beta = np.asarray(state["beta"], dtype=np.float64)
        if beta.shape != (p,) or len(state["columns"]) != p:
            raise InputError("the study state does not match the model's columns", field="state")
        design = DesignEvidence(x, list(state["columns"]), f.event.astype(np.float64))
        with np.errstate(all="ignore"):
            eta = (x - x.mean(axis=0)) @ beta if p else np.zeros(len(f.event))
        check_linear_predictor(eta)  # before any sum is computed at a β the hub chose
        weights = np.exp(eta - eta.max(initial=0.0))
        order = np.argsort(-f.duration, kind="stable")  # risk sets are prefixes in this order
        event_times = np.unique(f.duration[f.event])
        ends = np.searchsorted(-f.duration[order], -event_times, side="right")
        point = PointEvidence(eta, weights)
        risk = RiskSetEvidence(weights[order], ends.astype(np.int64))
        if params.stratified_by_hospital:
            x = x - x.mean(axis=0)  # the partial likelihood is invariant to centring
            sums = time_sums(np.unique(f.duration, return_inverse=True)[1], f.event, x, beta)
            ll, grad, hess = partial_likelihood(sums, beta, params.ties)
            values = {"loglik": ll, "gradient": grad.tolist(), "hessian": hess.tolist()}
            aggregates.append(ModelAggregate("cox_step", persons, p, values, design, point, risk))
            return LocalStep(aggregates, time.perf_counter() - start)
        grid = grid_index(f.duration, params.time_origin, params.time_width)
        k = node_k(ctx, params.min_risk_set, state)
        binary = [
            (x[:, j] == x[:, j].max()).astype(np.int64) for j in range(p) if len(np.unique(x[:, j])) == 2
        ]
        own = admissible_cuts(grid, f.event, k, binary)
        if round_no == 2:
            check_grid(ctx, persons.universe, params.time_origin, params.time_width)
            labels, levels = bin_labels(grid, f.event, own)
            aggregates.append(BreakdownAggregate("bins", persons, labels, levels))
            return LocalStep(aggregates, time.perf_counter() - start)
        cuts = [int(c) for c in state["cuts"]]
        check_cuts(own, cuts)
        x = x - np.asarray(state["center"], dtype=np.float64)
        sums = time_sums(bin_of(grid, cuts), f.event, x, beta, n_keys=len(cuts) + 1)
        values = _flatten(sums, params.ties == "efron")
        aggregates.append(ModelAggregate("risk_sets", persons, p, values, design, point, risk))
        return LocalStep(aggregates, time.perf_counter() - start)

    # -- hub -----------------------------------------------------------------------------------------

    def combine(
        self,
        params: CoxParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        if not released:
            raise InputError("no hospital answered", field="analysis")
        hospitals = sorted(released)
        new: dict[str, Any] = dict(state)
        if round_no == 1:
            return NextRound(self._design_round(params, hospitals, released))
        p = len(new["columns"])
        missing = set(state.get("hospitals", hospitals)) - set(released)
        if missing:
            raise InputError(f"hospitals stopped answering: {', '.join(sorted(missing))}", field="analysis")
        if not params.stratified_by_hospital and round_no == 2:
            own = {h: parse_cells(h, released_values(released[h])["bins"]["cells"])[""] for h in hospitals}
            cuts = common_cuts([[s for s, _, _ in rows[1:]] for rows in own.values()])
            new["cuts"] = cuts
            new["bin_events"] = {h: _merge_events(rows, cuts) for h, rows in own.items()}
            return NextRound(new)
        beta = np.asarray(new["beta"], dtype=np.float64)
        if params.stratified_by_hospital:
            steps = [released_values(released[h])["cox_step"]["values"] for h in hospitals]
            ll = sum(float(s["loglik"]) for s in steps)
            grad = np.sum([np.asarray(s["gradient"], dtype=np.float64) for s in steps], axis=0)
            hess = np.sum([np.asarray(s["hessian"], dtype=np.float64) for s in steps], axis=0)
            n_by = {h: released_values(released[h])["cox_step"]["n_obs"]["value"] for h in hospitals}
        else:
            pooled = add_sums([self._sums(params, new, h, released[h], p) for h in hospitals])
            ll, grad, hess = partial_likelihood(pooled, beta, params.ties)
            n_by = {h: released_values(released[h])["risk_sets"]["n_obs"]["value"] for h in hospitals}
        done, new = newton_step(new, ll, grad, hess, params.max_iterations)
        if not done:
            return NextRound(new)
        return self._final(params, new, hospitals, sum(int(v) for v in n_by.values()), n_by)

    def _final(
        self,
        params: CoxParams,
        new: dict[str, Any],
        hospitals: list[str],
        n: int,
        n_by: Mapping[str, int] | None,
    ) -> Final:
        """The result at the converged β (``n_by_hospital`` only when the hospitals' n were released)."""
        result: dict[str, Any] = {
            "mode": "stratified_by_hospital" if params.stratified_by_hospital else "unstratified",
            "ties": params.ties,
            "hospitals": hospitals,
            "n": n,
            **({"n_by_hospital": dict(n_by)} if n_by is not None else {}),
            "events": sum(v or 0 for v in new["events_by_hospital"].values()),
            "events_by_hospital": new["events_by_hospital"],
            "dropped_by_hospital": new["dropped_by_hospital"],
            "iterations": new["iteration"],
            **coefficient_table(new["columns"], new["beta"], new["hessian"], new["ll"], new["ll_null"]),
        }
        notes = []
        if not params.stratified_by_hospital:
            edges = bin_edges(new["cuts"], params.time_origin, params.time_width)
            events = np.sum([new["bin_events"][h] for h in hospitals], axis=0).tolist()
            result["time_bins"] = [{**e, "events": d} for e, d in zip(edges, events, strict=True)]
            result["min_risk_set"] = new["k"]
            notes.append(
                f"event times grouped into {len(edges)} bins that every hospital admits; the fit equals "
                "the pooled Cox fit on durations grouped to these bins"
            )
        if n_by is None:
            result["secure_aggregation"] = True
            notes.append("combined by secure aggregation: the hub saw network sums of the Newton rounds only")
        return Final(result, notes)

    # -- secure aggregation (phds.secagg): the Newton rounds as network sums ----------------------

    def secure_layout(
        self, params: CoxParams, round_no: int, state: Mapping[str, Any]
    ) -> SecureLayout | None:
        """None for the rounds that fix levels and bins (unions and intersections, not sums)."""
        return cox_secure.layout(params.stratified_by_hospital, params.ties, round_no, state)

    def secure_summands(
        self, params: CoxParams, round_no: int, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        found = cox_secure.required(self.secure_layout(params, round_no, state))
        name = "cox_step" if params.stratified_by_hospital else "risk_sets"
        return cox_secure.summands(found, len(state["columns"]), released_values(payload)[name])

    def combine_secure(
        self,
        params: CoxParams,
        round_no: int,
        state: Mapping[str, Any],
        sums: Mapping[str, Any],
        contributors: list[str],
    ) -> Final | NextRound:
        """:meth:`combine`'s Newton step from the sums; the Newton stop allows for their fixed-point error."""
        found = cox_secure.required(self.secure_layout(params, round_no, state))
        missing = set(state["hospitals"]) - set(contributors)
        if missing:
            raise InputError(f"hospitals stopped answering: {', '.join(sorted(missing))}", field="analysis")
        ll, grad, hess, ll_error, grad_error = cox_secure.evaluate(
            found, sums, state, params.ties, params.stratified_by_hospital, len(contributors)
        )
        done, new = newton_step(dict(state), ll, grad, hess, params.max_iterations,
                                ll_error=ll_error, grad_error=grad_error)  # fmt: skip
        if not done:
            return NextRound(new)
        return self._final(params, new, sorted(contributors), round(float(sums["n_obs"][0])), None)

    @staticmethod
    def _design_round(
        params: CoxParams, hospitals: list[str], released: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Agree categorical levels, the model columns and, unstratified, k and the centring."""
        values = {h: released_values(released[h]) for h in hospitals}
        levels = {c: sorted({lev for h in hospitals for lev in values[h][f"levels.{c}"]["cells"]})
                  for c in params.categorical}  # fmt: skip
        cols = columns(params, levels)
        state: dict[str, Any] = {
            "hospitals": hospitals,
            "levels": levels,
            "columns": cols,
            "events_by_hospital": {h: values[h]["events"]["value"] for h in hospitals},
            "dropped_by_hospital": {h: values[h]["dropped"] for h in hospitals},
            "beta": [0.0] * len(cols),
        }
        if not params.stratified_by_hospital:
            sums = [values[h]["covariate_sums"] for h in hospitals]
            if any(s["values"] is None for s in sums):
                raise InputError("a hospital withheld its covariate sums", field="analysis")
            total_n = sum(int(s["n"]["value"]) for s in sums)
            means = {c: sum(s["values"][c] for s in sums) / total_n for c in sums[0]["values"]}
            state["k"] = hub_k(released, params.min_risk_set)
            state["center"] = [means.get(c, 0.0) for c in cols]  # dummies stay uncentred
        return state

    @staticmethod
    def _sums(
        params: CoxParams, state: Mapping[str, Any], h: str, payload: Mapping[str, Any], p: int
    ) -> TimeSums:
        v = released_values(payload)["risk_sets"]["values"]
        k = len(state["cuts"]) + 1
        zeros = (np.zeros(k), np.zeros((k, p)), np.zeros((k, p, p)))
        efron = params.ties == "efron"
        return TimeSums(
            np.arange(k, dtype=np.int64),
            np.asarray(state["bin_events"][h], dtype=np.int64),
            np.asarray(v["s0"], dtype=np.float64),
            np.asarray(v["s1"], dtype=np.float64).reshape(k, p),
            np.asarray(v["s2"], dtype=np.float64).reshape(k, p, p),
            np.asarray(v["d0"], dtype=np.float64) if efron else zeros[0],
            np.asarray(v["d1"], dtype=np.float64).reshape(k, p) if efron else zeros[1],
            np.asarray(v["d2"], dtype=np.float64).reshape(k, p, p) if efron else zeros[2],
            np.asarray(v["event_x"], dtype=np.float64),
        )


__all__ = ["CoxPH", "CoxParams"]
