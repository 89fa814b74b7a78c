"""``synthetic.mst``: a differentially private synthetic dataset of a declared table, per hospital.

Round 1 (the generator): each node discretises the declared columns (categories or cuts given in the
study, so the domain does not depend on the data) and hands the rows to the gate as a
:class:`~phds.privacy.aggregates.MarginalsAggregate`. The gate's DP step runs OpenDP's MST
(:mod:`phds.privacy.synthetic_dp`) and releases only its noisy marginals; without DP in force the gate
refuses them. The hub fits a graphical model to each hospital's marginals and samples ``rows`` rows
(post-processing). The network dataset is the union of the hospitals' samples with a ``hospital``
column (one model per hospital; no secure-sum fit is built).

Round 2 (``evaluate``, the default) measures the sample against the real rows, at each node
(:mod:`phds.analyses.synthetic_evaluation`). With ``evaluate`` on, each node holds a ``control_fraction``
of its rows out of the generator (chosen by a hash of the row id and the seed). The state carries the
discretised synthetic sample (and, with a ``target``, a logistic model the hub trained on it); the node
releases, each as a breakdown on a fixed grid noised by its gate (one real row in one cell of each):

* ``dcr`` / ``dcr_control``: for each of the generator's rows (and each control row), the Hamming
  distance in bins to the closest synthetic row, on the grid 0..d; cell 0 counts real rows reproduced
  exactly, and a train share above the control share is memorisation;
* ``pair:<a>|<b>``: the real two-way table of every pair, for sdmetrics' quality score and the pMSE
  (:mod:`phds.analyses.synthetic_quality`);
* ``tstr`` / ``trtr``: risk bins on the control rows of the model trained on synthetic rows and of one
  trained on the real rows, for the AUROC of each (train-on-synthetic, test-on-real);
* ``inference:*`` / ``linkability:*``: anonymeter's attacks (:mod:`phds.analyses.synthetic_risks`).

The study's ρ is split evenly over its rounds (:meth:`dp_rounds`): half on the generator, half on the
evaluation, whose half the gate splits evenly over the breakdowns above.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, released_budgets, released_values
from phds.analyses.context import LocalContext
from phds.analyses.learning_frame import held_out_mask
from phds.analyses.synthetic_evaluation import (
    RealRows,
    TargetCodes,
    fit_logistic,
    pair_tables,
    utility_models,
)
from phds.analyses.synthetic_report import evaluation_report, network_report
from phds.analyses.synthetic_risks import anonymeter_available, attack_aggregates
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec, analysis_table, id_column, persons_of
from phds.errors import DisclosureRefused, InputError
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, MarginalsAggregate
from phds.privacy.synthetic_dp import ColumnBins, discretise, fit_and_sample
from phds.protocol.studies import ServiceType

MAX_EVALUATED = 2000
"""Synthetic rows per hospital carried to the evaluation round (the distance scan is rows × this)."""


class SynthColumn(BaseModel):
    """A column to synthesise: declared ``categories``, or ``cuts`` (left-open bin edges) of a number."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=VARIABLE_PATTERN)
    categories: list[str | int] | None = Field(default=None, min_length=1, max_length=100)
    cuts: list[float] | None = Field(default=None, min_length=1, max_length=100)
    bounds: tuple[float, float] | None = Field(default=None, description="range of sampled numbers")

    @model_validator(mode="after")
    def _one(self) -> SynthColumn:
        if (self.categories is None) == (self.cuts is None):
            raise ValueError("give a column either categories or cuts (bins chosen under DP are not built)")
        if self.cuts is not None and sorted(set(self.cuts)) != self.cuts:
            raise ValueError("cuts must be strictly increasing")
        return self

    def bins(self) -> ColumnBins:
        cats = tuple(str(c) for c in self.categories) if self.categories is not None else None
        cuts = tuple(self.cuts) if self.cuts is not None else None
        return ColumnBins(self.name, categories=cats, cuts=cuts, bounds=self.bounds)


class UtilityTarget(BaseModel):
    """A declared category column as a 0/1 outcome: ``positive`` is the case level."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, max_length=100, pattern=VARIABLE_PATTERN)
    positive: str | int


class SyntheticParams(BaseModel):
    """The table, its declared columns, the rows to sample per hospital, and the sampler's seed."""

    model_config = ConfigDict(extra="forbid")

    table: TableSpec
    columns: list[SynthColumn] = Field(min_length=2, max_length=30)
    rows: int = Field(default=1000, ge=1, le=20000, description="synthetic rows per hospital")
    seed: int = Field(default=0, ge=0)
    evaluate: bool = Field(default=True, description="a second round: the report measured at the nodes")
    control_fraction: float = Field(
        default=0.2, ge=0.0, le=0.5, description="rows held out of the generator to evaluate against"
    )
    target: UtilityTarget | None = Field(
        default=None, description="a 0/1 outcome for train-on-synthetic/test-on-real and the inference attack"
    )

    @model_validator(mode="after")
    def _unique(self) -> SyntheticParams:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        if self.target is not None:
            found = next((c for c in self.columns if c.name == self.target.column), None)
            if found is None or found.categories is None:
                raise ValueError("target.column must be one of the columns, declared with categories")
            if str(self.target.positive) not in {str(c) for c in found.categories}:
                raise ValueError("target.positive must be one of the target column's categories")
        return self

    def held_out(self) -> float:
        """The control fraction in force: none without an evaluation round."""
        return self.control_fraction if self.evaluate else 0.0


class SyntheticMst(Analysis[SyntheticParams]):
    """A DP synthetic dataset (MST) of a declared table, sampled by the hub from released marginals."""

    name: ClassVar[str] = "synthetic.mst"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Synthetic dataset (MST, differentially private)"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = SyntheticParams
    service_types: ClassVar[tuple[ServiceType, ...]] = (ServiceType.SYNTHETIC_DATASET,)
    dp_support: ClassVar[bool] = True

    def max_rounds(self, params: SyntheticParams) -> int:
        return 2 if params.evaluate else 1

    def local(self, ctx: LocalContext, params: SyntheticParams) -> LocalStep:
        start = time.perf_counter()
        if ctx.dp is None:  # the gate refuses exact marginals anyway; say so before reading any row
            raise DisclosureRefused("synthetic.mst runs only under differential privacy: add a dp: block")
        if ctx.service_type != ServiceType.SYNTHETIC_DATASET.value:  # the tariff prices it as its own service
            raise InputError(
                "a synthetic dataset is bought as service_type synthetic_dataset", field="service_type"
            )
        names = [c.name for c in params.columns]
        table = analysis_table(ctx.data, params.table, names)
        frame = table.select([*names, id_column(params.table)]).execute()
        persons = persons_of(ctx.data, params.table, frame)
        control = held_out_mask(persons.ids, params.seed, params.held_out())
        aggregates: list[Aggregate]
        if ctx.round_no == 1:
            train = frame[names][~control].reset_index(drop=True)
            bins = [c.bins() for c in params.columns]
            aggregates = [MarginalsAggregate("generator", persons.subset(~control), train, bins)]
        else:
            columns = ctx.state["columns"]
            synth = np.asarray(ctx.state["synthetic"], dtype=np.int64)
            if synth.ndim != 2 or synth.shape[1] != len(columns):
                raise InputError("the evaluation round's sample does not fit the columns", field="state")
            rows = RealRows(discretise(frame, columns), persons, control)
            aggregates = evaluation_aggregates(params, rows, columns, synth, ctx.state.get("tstr"))
        return LocalStep(aggregates, time.perf_counter() - start)

    def combine(
        self,
        params: SyntheticParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        if round_no == 1:
            samples: dict[str, Any] = {}
            measured: dict[str, Any] = {}
            bounds = {c.name: c.bounds for c in params.columns if c.bounds is not None}
            for i, (hospital, payload) in enumerate(sorted(released.items())):
                gen = released_values(payload)["generator"]
                frame = fit_and_sample(gen["columns"], gen["marginals"], params.rows, params.seed + i, bounds)
                samples[hospital] = frame
                measured[hospital] = gen
            if not samples:
                raise InputError("no hospital released a generator", field="analysis")
            result = network_report(params, samples, measured, released_budgets(released))
            if not params.evaluate:
                return Final(result, notes=["no evaluation round: evaluate was off"])
            columns = next(iter(measured.values()))["columns"]
            codes = np.vstack([discretise(f.head(MAX_EVALUATED), columns) for f in samples.values()])
            state_out: dict[str, Any] = {"columns": columns, "synthetic": codes.tolist(), "result": result}
            if params.target is not None:
                everything = np.vstack([discretise(f, columns) for f in samples.values()])
                state_out["tstr"] = fit_logistic(*target_codes(params, columns).design(everything))
            return NextRound(state_out)
        return evaluation_report(params, state, released)


def target_codes(params: SyntheticParams, columns: list[dict[str, Any]]) -> TargetCodes:
    """The utility target in domain codes (the target must be declared: see the params)."""
    assert params.target is not None
    names = [c["name"] for c in columns]
    j = names.index(params.target.column)
    positive = list(columns[j]["labels"]).index(str(params.target.positive))
    others = [i for i in range(len(columns)) if i != j]
    return TargetCodes(j, positive, others, [len(c["labels"]) for c in columns])


def evaluation_aggregates(
    params: SyntheticParams,
    rows: RealRows,
    columns: list[dict[str, Any]],
    synth: np.ndarray,
    tstr: Mapping[str, Any] | None,
) -> list[Aggregate]:
    """Round 2 at a node: the breakdowns of the module docstring."""
    levels = [str(d) for d in range(len(columns) + 1)]
    out: list[Aggregate] = []
    for name, (codes, persons) in (("dcr", rows.train), ("dcr_control", rows.held)):
        if codes.shape[0] or name == "dcr":
            labels = np.asarray([str(d) for d in closest_distances(codes, synth)], dtype=object)
            out.append(BreakdownAggregate(name, persons, labels, levels))
    out.extend(pair_tables(rows, columns))
    secret = len(columns) - 1
    if params.target is not None:
        target = target_codes(params, columns)
        out.extend(utility_models(rows, target, tstr))
        secret = target.column
    if anonymeter_available():
        names = [c["name"] for c in columns]
        out.extend(attack_aggregates(rows, synth, names, secret, params.seed))
    return out


def closest_distances(real: np.ndarray, synth: np.ndarray, chunk: int = 512) -> np.ndarray:
    """For each real row, the fewest columns in which it differs from any synthetic row (Hamming)."""
    if synth.shape[0] == 0:
        return np.full(real.shape[0], real.shape[1], dtype=np.int64)
    out = np.empty(real.shape[0], dtype=np.int64)
    for start in range(0, real.shape[0], chunk):
        block = real[start : start + chunk]
        diff = (block[:, None, :] != synth[None, :, :]).sum(axis=2)
        out[start : start + chunk] = diff.min(axis=1)
    return out


__all__ = ["SynthColumn", "SyntheticMst", "SyntheticParams", "UtilityTarget", "closest_distances"]
