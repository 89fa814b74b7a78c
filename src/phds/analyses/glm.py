"""``stats.glm``: a federated generalised linear model equal to the pooled fit (statsmodels / R).

Rounds (each one a single request to every hospital; see docs/howto/glm.md):

1. *Design.* Each node drops incomplete rows and releases its number of rows, the outcome's sum
   (and weighted sums) and the level names of each categorical variable. Every level is declared to
   the gate as a binary indicator, so a level with fewer than ``nfilter.tab`` rows (or all but fewer)
   refuses the hospital: a rare level's name would itself be disclosive, and its dummy column would
   expose those few patients in XᵀWX (DataSHIELD ``glmDS1`` refuses such binary columns). The hub fixes
   the network's level sets (sorted; the first, or ``reference_levels``, is the reference), the mean
   outcome for statsmodels' starting values, and the weighted mean for the null deviance.
2. *IRLS.* Each node builds the same design with formulaic and releases, at the current β, its
   deviance, Pearson χ², log-likelihood terms and the QR factor of its weighted least-squares problem
   (:mod:`phds.analyses.glm_design`); the hub solves the pooled problem and applies statsmodels'
   convergence rule (:mod:`phds.analyses.glm_summary`). With an offset the intercept-only model is
   fitted alongside in the same rounds, as statsmodels does for the null deviance.

Each IRLS release is a :class:`~phds.node.gate.GlmAggregate` with ``n_params`` = columns of X and the
counts of every two-valued design column and outcome, so the gate applies DataSHIELD's nfilter.glm and
nfilter.tab. If a hospital drops out (refused, failed), the fit starts again from the design round with
the hospitals left, so every β is computed from one consistent set of hospitals. The round state, which
every node receives with its next task, holds network totals only, never another hospital's values.

Under secure aggregation the design round stays in the clear and every IRLS round is a network sum
(:mod:`phds.analyses.glm_secure`); the result then has no ``n_by_hospital`` (see :meth:`Glm.combine_secure`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from phds.analyses import glm_secure
from phds.analyses.base import Analysis, Final, LocalStep, NextRound, SecureLayout, released_values
from phds.analyses.context import LocalContext
from phds.analyses.glm_design import (
    build_design,
    irls_step,
    load_frame,
    local_levels,
    null_step,
    sort_levels,
)
from phds.analyses.glm_family import Family
from phds.analyses.glm_formula import (
    Expression,
    ParsedFormula,
    check_vetted,
    parse_expression,
    parse_formula,
)
from phds.analyses.glm_summary import converged, pooled_solve, summary
from phds.analyses.tables import TableSpec
from phds.errors import DisclosureRefused, InputError
from phds.privacy.aggregates import DesignEvidence, ModelAggregate
from phds.privacy.disclosure import protect_level_names

NULL_MAX_ITER = 100  # statsmodels' default maxiter for the null model's fit


class GlmParams(BaseModel):
    """A GLM request: table, R-style formula (safe subset), family, optional offset and weights."""

    model_config = ConfigDict(extra="forbid")

    table: TableSpec
    formula: str = Field(min_length=3, max_length=1000, description="R-style, e.g. 'y ~ x + C(g)'")
    family: Literal["gaussian", "binomial", "poisson"] = "gaussian"
    offset: str | None = Field(default=None, max_length=300, description="e.g. 'np.log(survtime)'")
    weights: str | None = Field(default=None, max_length=300, description="prior (variance) weights")
    max_iter: int = Field(default=25, ge=1, le=100, description="IRLS iterations (R's glm.control)")
    tol: float = Field(default=1e-8, gt=0, le=1e-2, description="deviance change that stops IRLS")
    reference_levels: dict[str, str] = Field(default_factory=dict, description="variable → level")
    levels: dict[str, list[str]] = Field(
        default_factory=dict,
        description="variable → its level names, for a C() factor whose values are text (level names "
        "leave a hospital only when declared)",
    )

    @field_validator("formula")
    @classmethod
    def _formula(cls, v: str) -> str:
        try:
            check_vetted(parse_formula(v).outcome, "outcome", "formula")
        except InputError as exc:
            raise ValueError(exc.message.split(": ", 1)[-1]) from None
        return v

    @field_validator("offset", "weights")
    @classmethod
    def _expression(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            try:
                check_vetted(parse_expression(v, "expression"), str(info.field_name), "expression")
            except InputError as exc:
                raise ValueError(exc.message.split(": ", 1)[-1]) from None
        return v

    @property
    def dataset(self) -> str | None:
        """The tabular dataset, if any; the node's audit log records it as the task's source."""
        return self.table.dataset

    def parsed(self) -> tuple[ParsedFormula, Expression | None, Expression | None]:
        offset = parse_expression(self.offset, "analysis.params.offset") if self.offset else None
        weights = parse_expression(self.weights, "analysis.params.weights") if self.weights else None
        return parse_formula(self.formula), offset, weights


def _flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """The gate releases flat values: ``{"main": {"deviance": d}}`` travels as ``{"main/deviance": d}``."""
    out: dict[str, Any] = {}
    for key, val in values.items():
        if isinstance(val, Mapping):
            out.update({f"{key}/{k}": v for k, v in val.items()})
        else:
            out[key] = val
    return out


def _glm(payload: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    agg = released_values(payload)["glm"]
    nested: dict[str, Any] = {}
    for key, val in agg["values"].items():
        head, _, tail = str(key).partition("/")
        if tail:
            nested.setdefault(head, {})[tail] = val
        else:
            nested[head] = val
    return int(agg["n_obs"]["value"]), nested


class Glm(Analysis[GlmParams]):
    """Federated GLM (gaussian, binomial/logit, Poisson/log) by IRLS over hospitals."""

    name: ClassVar[str] = "stats.glm"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Generalised linear model (federated IRLS)"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = GlmParams
    secure_aggregation_support: ClassVar[bool] = True

    def check_at_hub(self, params: GlmParams, known_concepts: Any = None) -> None:
        formula, _, _ = params.parsed()
        for var in params.reference_levels:
            if var not in formula.categorical:
                raise InputError(
                    f"{var} is not a C() factor of the formula", field="analysis.params.reference_levels"
                )
        for var, names in params.levels.items():
            if var not in formula.variables:  # a C() factor, or a text column (a factor by its type)
                raise InputError(f"{var} is not a variable of the formula", field="analysis.params.levels")
            if len(set(names)) != len(names) or not names:
                raise InputError(f"declare distinct levels of {var}", field="analysis.params.levels")

    # -- node ---------------------------------------------------------------------------------------
    def max_rounds(self, params: GlmParams) -> int:
        # design, then up to max_iter + 1 IRLS rounds (the null model runs alongside), restarted at
        # most twice when hospitals leave
        return 3 * (params.max_iter + 3)

    def local(self, ctx: LocalContext, params: GlmParams) -> LocalStep:
        start = time.perf_counter()
        state = ctx.state
        family = Family(params.family)
        formula, offset, weights = params.parsed()
        frame = load_frame(ctx.data, params.table, formula, offset, weights, family)
        n = len(frame.y)
        if state.get("phase", "design") == "design":
            counts = local_levels(frame)
            for var, lv in counts.items():
                if var in params.levels:
                    if not set(lv) <= {str(name) for name in params.levels[var]}:
                        raise InputError(
                            f"C({var}) has values outside its declared levels", field="analysis.params.levels"
                        )
                else:
                    protect_level_names(list(lv), 0, field="analysis.params.formula")
                if any(c < ctx.k for c in lv.values()):
                    raise DisclosureRefused(
                        f"C({var}) has a level with fewer than {ctx.k} rows here (DataSHIELD nfilter.tab)"
                    )
            values: dict[str, Any] = {
                "levels": {v: sorted(lv) for v, lv in counts.items()},
                "sum_y": float(frame.y.sum()),
                "sum_w": float(frame.weights.sum()),
                "sum_wy": float((frame.weights * frame.y).sum()),
            }
            n_params = 1 + len(formula.variables) - len(formula.outcome.variables)
            evidence = DesignEvidence(np.ones((n, 1)), ["Intercept"], frame.y, frame.weights)
            agg = ModelAggregate("glm", frame.persons, n_params, _flat(values), design=evidence)
            return LocalStep([agg], time.perf_counter() - start)
        design = build_design(frame, formula, state["levels"])
        values = {"columns": design.columns}
        point = None
        if not state["main_done"]:
            values["main"], point = irls_step(frame, design, family, state["beta"], state["mean_y"])
        if not state["null_done"]:
            values["null"] = null_step(frame, family, state["null_beta"], state["null_mu"])
        evidence = DesignEvidence(design.x, design.columns, frame.y, frame.weights)
        agg = ModelAggregate("glm", frame.persons, len(design.columns), _flat(values), evidence, point)
        return LocalStep([agg], time.perf_counter() - start)

    # -- hub ----------------------------------------------------------------------------------------
    def combine(
        self,
        params: GlmParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        if not released:
            raise InputError("no hospital released GLM aggregates", field="analysis")
        if state.get("phase", "design") == "design":
            first = {}
            for hospital, payload in released.items():
                n, values = _glm(payload)
                first[hospital] = {"n": n, **values}
            return NextRound(self._start(params, first, int(state.get("restarts", 0))))
        if sorted(released) != state["hospitals"]:
            # Start again from the design round with the hospitals left: levels and means may change.
            return NextRound({"phase": "design", "restarts": int(state["restarts"]) + 1})
        answers = {h: _glm(p) for h, p in released.items()}
        n_by_hospital = {h: n_h for h, (n_h, _) in sorted(answers.items())}
        return self._iterate(params, dict(state), [v for _, v in answers.values()], n_by_hospital)

    # -- secure aggregation (phds.secagg): IRLS rounds as network sums ----------------------------
    def secure_layout(
        self, params: GlmParams, round_no: int, state: Mapping[str, Any]
    ) -> SecureLayout | None:
        """None for the design round, which stays clear: it fixes the level names (a union, not a sum)
        and the gate checks its n against nfilter; then the Gram blocks of each IRLS round."""
        return glm_secure.layout(params.formula, state)

    def secure_summands(
        self, params: GlmParams, round_no: int, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        n, values = _glm(payload)
        return glm_secure.summands(params.formula, state, n, values)

    def combine_secure(
        self,
        params: GlmParams,
        round_no: int,
        state: Mapping[str, Any],
        sums: Mapping[str, Any],
        contributors: list[str],
    ) -> Final | NextRound:
        """:meth:`combine` on the sums, as if one hospital had released them. Per-hospital n are not in
        the result: the design round released them in the clear, but the round state (which every node
        receives) holds network totals only, so the hub's combine never sees them here."""
        glm_secure.required(params.formula, state)
        if sorted(contributors) != state["hospitals"]:  # as combine: start again with those left
            return NextRound({"phase": "design", "restarts": int(state["restarts"]) + 1})
        values, error = glm_secure.network_values(params.formula, state, sums, len(contributors))
        return self._iterate(params, dict(state), [values], None, error)

    def _start(self, params: GlmParams, round1: Mapping[str, Any], restarts: int) -> dict[str, Any]:
        """The IRLS state from the hospitals' round-1 releases; it holds network totals only, since
        each node receives it with its next task."""
        _, offset, _ = params.parsed()
        hospitals = sorted(round1)
        use = [round1[h] for h in hospitals]
        n = sum(int(v["n"]) for v in use)
        if n == 0:
            raise InputError("no complete rows at any hospital", field="analysis.params.formula")
        levels: dict[str, list[str]] = {}
        names = sorted({var for v in use for var in v.get("levels", {})})
        for var in names:
            found = sort_levels({lv for v in use for lv in v.get("levels", {}).get(var, [])})
            ref = params.reference_levels.get(var)
            if ref is not None:
                if ref not in found:
                    raise InputError(
                        f"{var} has no level {ref!r} in the network", field="analysis.params.reference_levels"
                    )
                found = [ref, *[lv for lv in found if lv != ref]]
            levels[var] = found
        mean_y = math.fsum(float(v["sum_y"]) for v in use) / n
        mean_wy = math.fsum(float(v["sum_wy"]) for v in use) / math.fsum(float(v["sum_w"]) for v in use)
        family = Family(params.family)
        with_offset = offset is not None
        return {
            "phase": "irls",
            "hospitals": hospitals,
            "restarts": restarts,
            "n": n,
            "levels": levels,
            "mean_y": mean_y,
            "beta": None,
            "history": [],
            "scales": [],
            "r": None,
            "main_done": False,
            "main_result": None,
            # statsmodels: intercept-only WLS without an offset (the weighted mean), else a GLM fit
            # started at g(mean y).
            "null_mu": None if with_offset else mean_wy,
            "null_beta": float(family.link(mean_y)) if with_offset else None,
            "null_history": [],
            "null_scales": [],
            "null_iterations": 0,
            "null_done": False,
            "null_deviance": None,
        }

    def _iterate(
        self,
        params: GlmParams,
        state: dict[str, Any],
        values: list[dict[str, Any]],
        n_by_hospital: Mapping[str, int] | None,
        error: float = 0.0,
    ) -> Final | NextRound:
        """One IRLS round at the hub from the hospitals' values (or one pseudo-hospital's: the sums,
        each deviance within *error* of the exact one, so two within 2·error are indistinguishable)."""
        family = Family(params.family)
        for key in ("history", "scales", "null_history", "null_scales"):
            state[key] = list(state[key])
        columns = {tuple(v["columns"]) for v in values}
        if len(columns) != 1:
            raise InputError("hospitals built different designs; levels were not shared", field="analysis")
        cols = list(next(iter(columns)))
        n, p = int(state["n"]), len(cols)
        if n <= p:
            raise InputError("more parameters than observations", field="analysis.params.formula")
        if not state["main_done"]:
            main = [v["main"] for v in values]
            dev = math.fsum(m["deviance"] for m in main)
            pearson = math.fsum(m["pearson"] for m in main)
            scale = pearson / (n - p) if family.estimates_scale else 1.0
            scales, history = state["scales"], state["history"]
            history.append(dev / (scales[-1] if scales else scale))  # scaled by the scale in force
            scales.append(scale)
            iteration = len(history) - 1
            tol = params.tol + 2 * error / (scales[-2] if len(scales) > 1 else scale)
            if converged(history, tol) or iteration >= params.max_iter:
                state["main_done"] = True
                state["main_result"] = {
                    "beta": state["beta"], "r": state["r"], "deviance": dev, "pearson": pearson,
                    "loglik": math.fsum(m["loglik"] for m in main), "iterations": iteration,
                    "converged": converged(history, tol),
                }  # fmt: skip
            else:
                state["beta"], state["r"] = pooled_solve([m["r"] for m in main], cols)
        if not state["null_done"]:
            self._null_step(params, family, state, [v["null"] for v in values], n, error)
        if not (state["main_done"] and state["null_done"]):
            return NextRound(state)
        res = state["main_result"]
        out = summary(
            family=family, columns=cols, beta=res["beta"], r=res["r"], n=n, deviance=res["deviance"],
            pearson=res["pearson"], loglik=res["loglik"], null_deviance=state["null_deviance"],
            iterations=res["iterations"], is_converged=res["converged"],
        )  # fmt: skip
        notes = [] if res["converged"] else [f"IRLS did not converge in {params.max_iter} iterations"]
        if state["restarts"]:
            notes.append("the fit was restarted without hospitals that left; it uses the hospitals listed")
        out.update(
            formula=params.formula, offset=params.offset, weights=params.weights,
            hospitals=state["hospitals"],
            levels={v: {"levels": lv, "reference": lv[0]} for v, lv in state["levels"].items()},
        )  # fmt: skip
        if n_by_hospital is not None:
            out["n_by_hospital"] = dict(n_by_hospital)
        else:
            out["secure_aggregation"] = True
            notes.append("combined by secure aggregation: the hub saw network sums of the IRLS rounds only")
        return Final(out, notes)

    @staticmethod
    def _null_step(
        params: GlmParams,
        family: Family,
        state: dict[str, Any],
        parts: list[Mapping[str, Any]],
        n: int,
        error: float,
    ) -> None:
        dev = math.fsum(x["deviance"] for x in parts)
        if state["null_beta"] is None:  # no offset: the deviance at the weighted mean is the answer
            state["null_deviance"], state["null_done"] = dev, True
            return
        pearson = math.fsum(x["pearson"] for x in parts)
        scale = pearson / (n - 1) if family.estimates_scale else 1.0
        scales, history = state["null_scales"], state["null_history"]
        history.append(dev / (scales[-1] if scales else scale))
        scales.append(scale)
        iteration = len(history) - 1
        tol = params.tol + 2 * error / (scales[-2] if len(scales) > 1 else scale)
        if converged(history, tol) or iteration >= NULL_MAX_ITER:
            state["null_deviance"], state["null_done"], state["null_iterations"] = dev, True, iteration
            return
        state["null_beta"] = math.fsum(x["sum_wz"] for x in parts) / math.fsum(x["sum_w"] for x in parts)
