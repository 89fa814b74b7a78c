"""``benchmarking.indicators``: outcome indicators per hospital, crude and risk-adjusted, for funnel plots.

An indicator is a cohort table (:class:`~phds.analyses.tables.TableSpec`: an OMOP cohort with covariates,
or a tabular dataset) and an ``outcome`` column of it: binary (30-day readmission, PICU mortality, a
complication within a window after a procedure: an ``event`` or ``time_to_event`` covariate defines it)
or continuous (length of stay in days). Rounds (see docs/howto/benchmarking.md):

1. *Risk model.* ``stats.glm``'s own rounds, unchanged (:class:`~phds.analyses.glm.Glm`): the design round,
   then IRLS until statsmodels' convergence rule; binomial/logit for a binary outcome, Poisson/log for a
   continuous one (a quasi-Poisson mean model: the estimates of E[y | x] are consistent whatever the
   variance, McCullagh & Nelder 1989 §9.2, and the hub reads the dispersion φ from Pearson's χ²). Every
   gate rule of the GLM applies, nfilter.tab included: a hospital with fewer than k events (or
   non-events) refuses the model and is listed as refused.
2. *Indicators.* Each node computes, at the pooled β̂, its expected value ``E = Σ μ̂ᵢ`` (a model release:
   the gate checks the β like any IRLS point), its observed ``O`` (a binary outcome as an event /
   no-event breakdown, so the gate suppresses a small or complementary cell as everywhere; a continuous
   one as sums with the dominance rules), its ``n``, and its naming consent (a
   :class:`~phds.privacy.aggregates.NamingAggregate` the gate fills in from the node's policy). A node
   answers this round only at the β it evaluated in its last IRLS round of the same study (remembered at
   the node), so a hub cannot skip the model or pick another β to probe the data.

The hub then computes O/E with exact intervals, crude rates and the funnel limits
(:mod:`phds.analyses.benchmarking_stats`) and labels the hospitals (:mod:`phds.analyses.benchmarking_result`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, released
from phds.analyses.benchmarking_result import indicator_result
from phds.analyses.context import LocalContext
from phds.analyses.glm import Glm, GlmParams
from phds.analyses.glm_design import build_design, load_frame
from phds.analyses.glm_family import Family
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec
from phds.errors import DisclosureRefused, InputError
from phds.privacy.aggregates import (
    BreakdownAggregate,
    DesignEvidence,
    ModelAggregate,
    NamingAggregate,
    PointEvidence,
    SumAggregate,
)

#: The node's memory key of the β its last IRLS round of the study was evaluated at.
LAST_BETA = "benchmarking.last_irls_beta"
EVENT, NO_EVENT = "event", "no_event"
FAMILIES: dict[str, Literal["binomial", "poisson"]] = {"binary": "binomial", "continuous": "poisson"}


class BenchmarkParams(BaseModel):
    """An indicator: the table (cohort), the outcome column, its type and the risk factors adjusted for."""

    model_config = ConfigDict(extra="forbid")

    table: TableSpec
    indicator: str = Field(min_length=1, max_length=120, description="Its name, e.g. '30-day readmission'")
    outcome: str = Field(pattern=VARIABLE_PATTERN, max_length=100, description="0/1, or a length of stay")
    outcome_type: Literal["binary", "continuous"] = "binary"
    risk_factors: list[str] = Field(
        default_factory=list, max_length=50, description="Formula terms of the risk model, e.g. 'C(sex)'"
    )
    levels: dict[str, list[str]] = Field(default_factory=dict, description="as stats.glm's levels")
    reference_levels: dict[str, str] = Field(default_factory=dict, description="variable → level")
    coverage: float = Field(0.95, ge=0.5, le=0.999, description="Coverage of the O/E and rate intervals")
    max_iter: int = Field(default=25, ge=1, le=100, description="IRLS iterations of the risk model")
    tol: float = Field(default=1e-8, gt=0, le=1e-2, description="deviance change that stops IRLS")

    @model_validator(mode="after")
    def _model(self) -> BenchmarkParams:
        try:
            self.glm_params()
        except ValidationError as exc:
            raise ValueError(f"the risk model is not valid: {exc.errors()[0]['msg']}") from None
        return self

    @property
    def formula(self) -> str:
        return f"{self.outcome} ~ {' + '.join(self.risk_factors) or '1'}"

    @property
    def family(self) -> Literal["binomial", "poisson"]:
        return FAMILIES[self.outcome_type]

    @property
    def dataset(self) -> str | None:
        """The tabular dataset, if any; the node's audit log records it as the task's source."""
        return self.table.dataset

    def glm_params(self) -> GlmParams:
        """The risk model as a ``stats.glm`` request."""
        return GlmParams(
            table=self.table,
            formula=self.formula,
            family=self.family,
            max_iter=self.max_iter,
            tol=self.tol,
            levels=self.levels,
            reference_levels=self.reference_levels,
        )


class Benchmarking(Analysis[BenchmarkParams]):
    """Crude and risk-adjusted indicators per hospital (O, E, n), compared on funnel plots."""

    name: ClassVar[str] = "benchmarking.indicators"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Clinical benchmarking between hospitals (O/E, funnel plot)"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = BenchmarkParams
    pseudonymises_hospitals: ClassVar[bool] = True

    def __init__(self) -> None:
        self._glm = Glm()

    def check_at_hub(self, params: BenchmarkParams, known_concepts: Any = None) -> None:
        self._glm.check_at_hub(params.glm_params(), known_concepts)

    def max_rounds(self, params: BenchmarkParams) -> int:
        return self._glm.max_rounds(params.glm_params()) + 1

    # -- node ---------------------------------------------------------------------------------------
    def local(self, ctx: LocalContext, params: BenchmarkParams) -> LocalStep:
        phase = ctx.state.get("phase", "design")
        if phase == "indicators":
            return self._indicators(ctx, params)
        if phase == "irls":
            ctx.memory.remember(LAST_BETA, ctx.state.get("beta"))
        return self._glm.local(ctx, params.glm_params())

    def _indicators(self, ctx: LocalContext, params: BenchmarkParams) -> LocalStep:
        start = time.perf_counter()
        state = ctx.state
        beta = [float(b) for b in state.get("beta") or []]
        last = ctx.memory.recall(LAST_BETA)
        if not beta or last is None or [float(b) for b in last] != beta:
            raise DisclosureRefused(
                "the indicator round runs only at the β this node evaluated in its last round of the "
                "study's risk model"
            )
        glm = params.glm_params()
        family = Family(glm.family)
        formula, _, _ = glm.parsed()
        frame = load_frame(ctx.data, params.table, formula, None, None, family)
        design = build_design(frame, formula, state["levels"])
        if list(design.columns) != list(state["columns"]):
            raise InputError("this hospital's design differs from the risk model's", field="analysis")
        eta = design.x @ np.asarray(beta, dtype=float)
        mu = family.inverse(eta)
        evidence = DesignEvidence(design.x, design.columns, frame.y, frame.weights)
        point = PointEvidence(eta, frame.weights * family.irls_weights(mu))
        expected = ModelAggregate(
            "expected", frame.persons, len(design.columns), {"expected": float(np.sum(mu))}, evidence, point
        )
        observed: BreakdownAggregate | SumAggregate
        if params.outcome_type == "binary":
            labels = np.where(frame.y == 1, EVENT, NO_EVENT)
            observed = BreakdownAggregate("observed", frame.persons, labels, [EVENT, NO_EVENT])
        else:
            y = np.asarray(frame.y, dtype=float)
            observed = SumAggregate("observed", frame.persons, {"sum": y, "sum_sq": y * y}, variable=y)
        aggregates = [expected, observed, NamingAggregate("naming")]
        return LocalStep(aggregates, time.perf_counter() - start)  # type: ignore[arg-type]

    # -- hub ----------------------------------------------------------------------------------------
    def combine(
        self,
        params: BenchmarkParams,
        round_no: int,
        state: Mapping[str, Any],
        released_payloads: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        if not released_payloads:
            raise InputError("no hospital released benchmarking aggregates", field="analysis")
        if state.get("phase") != "indicators":
            outcome = self._glm.combine(params.glm_params(), round_no, state, released_payloads)
            if isinstance(outcome, NextRound):
                return outcome
            return NextRound(indicator_state(outcome))
        payloads = {h: released(p) for h, p in released_payloads.items()}
        result, notes = indicator_result(params, state, payloads)
        return Final(result, notes)


def indicator_state(fit: Final) -> dict[str, Any]:
    """The indicator round's state from the risk model's result: pooled quantities only (every node
    receives it), never a hospital's own values."""
    out = fit.result
    coefficients = [
        {k: c[k] for k in ("term", "estimate", "std_error", "ci_lower", "ci_upper")}
        for c in out["coefficients"]
    ]
    df_resid = int(out["df_residual"])
    return {
        "phase": "indicators",
        "beta": [float(c["estimate"]) for c in out["coefficients"]],
        "columns": [str(c["term"]) for c in out["coefficients"]],
        "levels": {v: list(d["levels"]) for v, d in out["levels"].items()},
        "model": {
            "formula": out["formula"],
            "family": out["family"],
            "link": out["link"],
            "n_obs": int(out["n_obs"]),
            "coefficients": coefficients,
            "converged": bool(out["converged"]),
            "iterations": int(out["iterations"]),
            "deviance": float(out["deviance"]),
            "pearson_dispersion": float(out["pearson_chi2"]) / df_resid if df_resid > 0 else 1.0,
        },
        "model_notes": [n for n in fit.notes if "restarted" in n or "converge" in n],
    }


__all__ = ["BenchmarkParams", "Benchmarking", "indicator_state"]
