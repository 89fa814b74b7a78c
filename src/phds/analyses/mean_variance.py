"""``stats.mean_variance``: a numerically stable two-pass mean and variance over hospitals.

Round 1: each node releases n, the number missing and the sum of a numeric variable; the runner forms
the global n and mean. Round 2: each node releases the sum of squared deviations from that global
mean, and the runner forms the sample variance ``Σ ssd / (N − 1)``. Two passes avoid the cancellation
of the one-pass ``Σx² − n·mean²`` formula (Chan, Golub & LeVeque 1983, "Algorithms for computing the
sample variance"). Statistics of fewer than the minimum cell count are withheld by the gate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, released_values
from phds.analyses.context import LocalContext, dp_clip
from phds.analyses.summary import numeric_values
from phds.analyses.tables import TableSpec
from phds.errors import InputError
from phds.privacy.aggregates import Aggregate, CountAggregate, SumAggregate


class MeanVarianceParams(BaseModel):
    """Which tabular dataset and numeric variable to summarise."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    variable: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")


class MeanVariance(Analysis[MeanVarianceParams]):
    """Federated mean, variance and standard deviation of one numeric variable."""

    name: ClassVar[str] = "stats.mean_variance"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Mean and variance (two-pass)"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = MeanVarianceParams
    dp_support: ClassVar[bool] = True

    def max_rounds(self, params: MeanVarianceParams) -> int:
        return 2

    def local(self, ctx: LocalContext, params: MeanVarianceParams) -> LocalStep:
        start = time.perf_counter()
        column = numeric_values(ctx.data, TableSpec(dataset=params.dataset), params.variable, {})
        values = column.values
        clip = dp_clip(ctx, params.variable)
        if clip is not None:  # the gate clips the sum; the squared deviations use the clipped values
            values = np.clip(values, *clip)
        if ctx.round_no == 1:
            aggregates: list[Aggregate] = [
                SumAggregate("moments", column.persons, {"sum": values}, variable=values,
                             clip={"sum": clip} if clip else None),
                CountAggregate("missing", column.missing),
            ]  # fmt: skip
        else:
            mean = float(ctx.state["mean"])
            ssd = (values - mean) ** 2
            ssd_clip = {"ssd": (0.0, max(clip[0] - mean, clip[1] - mean, key=abs) ** 2)} if clip else None
            aggregates = [
                SumAggregate("moments", column.persons, {"ssd": ssd}, variable=values, clip=ssd_clip)
            ]
        return LocalStep(aggregates, time.perf_counter() - start)

    def combine(
        self,
        params: MeanVarianceParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        usable: dict[str, dict[str, Any]] = {}
        for hospital, payload in released.items():
            moments = released_values(payload)["moments"]
            if moments["values"] is not None:
                usable[hospital] = {"n": int(moments["n"]["value"]), **moments["values"]}
        if not usable:
            raise InputError("no hospital released statistics for this variable", field="analysis")
        if round_no == 1:
            n_total = sum(v["n"] for v in usable.values())
            mean = math.fsum(v["sum"] for v in usable.values()) / n_total
            return NextRound(
                {
                    "mean": mean,
                    "n_by_hospital": {h: v["n"] for h, v in usable.items()},
                    "sum_by_hospital": {h: v["sum"] for h, v in usable.items()},
                    "missing_by_hospital": {h: released_values(p)["missing"] for h, p in released.items()},
                }
            )
        # Hospitals that answered both rounds; if one dropped out in round 2, re-centre exactly:
        # Σ(x − m_s)² = Σ(x − m)² − n_s (m_s − m)² for the subset's own mean m_s.
        both = [h for h in usable if h in state["n_by_hospital"]]
        n_total = sum(int(state["n_by_hospital"][h]) for h in both)
        subset_mean = math.fsum(float(state["sum_by_hospital"][h]) for h in both) / n_total
        shift = subset_mean - float(state["mean"])
        ssd = math.fsum(usable[h]["ssd"] for h in both) - n_total * shift * shift
        variance = ssd / (n_total - 1) if n_total > 1 else None
        return Final(
            {
                "dataset": params.dataset,
                "variable": params.variable,
                "n": n_total,
                "mean": subset_mean,
                "variance": variance,
                "sd": math.sqrt(variance) if variance is not None else None,
                "hospitals": sorted(both),
                "n_by_hospital": {h: state["n_by_hospital"][h] for h in both},
                "missing_by_hospital": state["missing_by_hospital"],
            }
        )
