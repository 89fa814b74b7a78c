"""``stats.characterisation``: "Table 1" of one or more cohorts, by hospital and pooled, with SMDs.

A cohort is an analysis table (a tabular ``dataset`` now; an OMOP cohort with covariates through the
same :class:`~phds.analyses.tables.TableSpec`) optionally restricted by equality filters, e.g.
``{"label": "diabetic", "table": {"dataset": "cnsim"}, "where": {"DIS_DIAB": 1}}``.

What leaves each node, per cohort: its size (a count; with ``person_id`` ids, differencing-guarded);
per categorical variable one protected breakdown of its levels (as :mod:`phds.analyses.contingency`,
``NA`` included); per numeric variable the rounds of :mod:`phds.analyses.summary` (n, missing, sum,
sum of squared deviations, then k-bins for the pooled median and quartiles). All run in parallel, so the
study takes as many rounds as its slowest quantile.

Standardised mean differences between two cohorts follow Austin (2009), "Balance diagnostics for
comparing the distribution of baseline covariates between treatment groups in propensity-score matched
samples", Stat Med 28:3083–3107: continuous ``(x̄₁ − x̄₂)/√((s₁² + s₂²)/2)``; a level of a categorical
variable ``(p₁ − p₂)/√((p₁(1−p₁) + p₂(1−p₂))/2)``, with proportions of the cohort's total (``NA``
counted as a level). An SMD needs exact pooled values; with suppressed counts it is ``None``.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from phds.analyses.base import Analysis, Final, LocalStep, NextRound, released_values
from phds.analyses.context import LocalContext
from phds.analyses.contingency import _absent, _level_order, cell_labels
from phds.analyses.feasibility import _count, _total_json
from phds.analyses.summary import network_k, numeric_column, summary_combine, summary_local
from phds.analyses.tables import VARIABLE_PATTERN, TableSpec, analysis_table, id_column, persons_of
from phds.errors import InputError
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, CountAggregate
from phds.privacy.disclosure import network_total
from phds.protocol.releases import NetworkTotal, ReleasedCount

Variable = str
QUARTILES = [0.25, 0.5, 0.75]


class CohortSpec(BaseModel):
    """A labelled cohort: an analysis table, optionally filtered by ``variable == value`` conditions."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=60)
    table: TableSpec
    where: dict[Variable, int | float | str] = Field(default_factory=dict, max_length=5)

    @model_validator(mode="after")
    def _names(self) -> CohortSpec:
        bad = [k for k in self.where if not re.fullmatch(VARIABLE_PATTERN, k)]
        if bad:
            raise ValueError(f"not variable names: {bad}")
        return self


class CharacterisationParams(BaseModel):
    """Cohorts, the variables to describe and (optionally) the two cohorts to compare by SMD."""

    model_config = ConfigDict(extra="forbid")

    cohorts: list[CohortSpec] = Field(min_length=1, max_length=6)
    numeric: list[Variable] = Field(default_factory=list, max_length=30)
    categorical: list[Variable] = Field(default_factory=list, max_length=30)
    levels: dict[Variable, list[str]] = Field(default_factory=dict, description="levels to count")
    quantiles: bool = Field(True, description="pooled median [IQR] for numeric variables")
    compare: tuple[str, str] | None = Field(None, description="labels; default the two cohorts if two")
    tolerance: float = Field(1e-4, gt=0, le=1)
    max_rounds: int = Field(30, ge=1, le=40)

    @model_validator(mode="after")
    def _check(self) -> CharacterisationParams:
        labels = [c.label for c in self.cohorts]
        if len(set(labels)) != len(labels):
            raise ValueError("cohort labels must be unique")
        variables = [*self.numeric, *self.categorical]
        if not variables or len(set(variables)) != len(variables):
            raise ValueError("name each variable once, as numeric or categorical")
        if any(not re.fullmatch(VARIABLE_PATTERN, v) for v in [*variables, *self.levels]):
            raise ValueError("variable names are letters, digits, '_' and '.'")
        if self.compare is None and len(labels) == 2:
            self.compare = (labels[0], labels[1])
        if self.compare is not None and not set(self.compare) <= set(labels):
            raise ValueError(f"compare names cohorts that do not exist: {list(self.compare)}")
        return self


def _sub(i: int, var: str) -> str:
    return f"c{i}.{var}."


class Characterisation(Analysis[CharacterisationParams]):
    """Table 1: cohort sizes, numeric variables as mean (SD) and median [IQR], categorical as n (%)."""

    name: ClassVar[str] = "stats.characterisation"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Cohort characterisation (Table 1)"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "tabular"
    params_model = CharacterisationParams

    def max_rounds(self, params: CharacterisationParams) -> int:
        return params.max_rounds + 2

    def local(self, ctx: LocalContext, params: CharacterisationParams) -> LocalStep:
        start = time.perf_counter()
        out: list[Aggregate] = []
        for i, cohort in enumerate(params.cohorts):
            needed = [*params.numeric, *params.categorical]
            table = analysis_table(ctx.data, cohort.table, [*needed, *cohort.where])
            for name, value in cohort.where.items():
                table = table.filter(table[name] == value)
            frame = table.select([*needed, id_column(cohort.table)]).execute()
            persons = persons_of(ctx.data, cohort.table, frame)
            if ctx.round_no == 1:
                out.append(CountAggregate(f"c{i}.n", persons))
                for var in params.categorical:
                    labels, grid = cell_labels(frame, [var], params.levels, ctx.k)
                    out.append(BreakdownAggregate(f"c{i}.{var}.cells", persons, labels, grid))
            for var in params.numeric:
                sub = ctx.state.get("subs", {}).get(_sub(i, var), {})
                if ctx.round_no > 1 and sub.get("done", True):
                    continue
                try:
                    raw = frame[var].to_numpy(dtype=float, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise InputError(f"{var} is not numeric", field="analysis.params.numeric") from exc
                column = numeric_column(ctx.data, cohort.table, raw, frame)
                out.extend(summary_local(column, ctx, sub.get("state", {}), _sub(i, var)))
        return LocalStep(out, time.perf_counter() - start)

    def combine(
        self,
        params: CharacterisationParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        values = {h: released_values(p) for h, p in released.items()}
        st: dict[str, Any] = copy.deepcopy(dict(state))
        if round_no == 1:
            st["k"] = network_k(released)
            st["hospitals"] = sorted(released)
            st["n"] = {
                c.label: {h: values[h][f"c{i}.n"] for h in sorted(values)}
                for i, c in enumerate(params.cohorts)
            }
            st["categorical"] = {
                _sub(i, var): {h: values[h][f"c{i}.{var}.cells"] for h in sorted(values)}
                for i in range(len(params.cohorts))
                for var in params.categorical
            }
            subs = [_sub(i, v) for i in range(len(params.cohorts)) for v in params.numeric]
            st["subs"] = {s: {"state": {"k": st["k"]}, "done": False} for s in subs}
        qs = QUARTILES if params.quantiles else []
        for prefix, sub in st["subs"].items():
            if sub["done"]:
                continue
            done, out = summary_combine(
                round_no, sub["state"], values, qs, params.tolerance, params.max_rounds, prefix
            )
            st["subs"][prefix] = {"done": True, "result": out} if done else {"state": out, "done": False}
        if not all(sub["done"] for sub in st["subs"].values()):
            return NextRound(st)
        return Final(_result(params, st))


def _known(x: ReleasedCount | NetworkTotal) -> int | None:
    """The exact value of a released count or network total, or None when it is only bounded."""
    exact = x.exact if isinstance(x, NetworkTotal) else not x.suppressed
    return x.lower if exact else None


def _pct(count: ReleasedCount | NetworkTotal, total: ReleasedCount | NetworkTotal) -> float | None:
    c, t = _known(count), _known(total)
    return 100.0 * c / t if c is not None and t is not None and t > 0 else None


def _result(params: CharacterisationParams, st: Mapping[str, Any]) -> dict[str, Any]:
    hospitals: list[str] = st["hospitals"]
    n_out: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    for c in params.cohorts:
        per = {h: _count(st["n"][c.label][h]) for h in hospitals}
        totals[c.label] = (per, network_total(per.values()))
        n_out[c.label] = {"by_hospital": st["n"][c.label], "pooled": _total_json(totals[c.label][1])}
    variables: list[dict[str, Any]] = []
    for var in params.numeric:
        by_cohort: dict[str, Any] = {}
        for i, c in enumerate(params.cohorts):
            res = st["subs"][_sub(i, var)]["result"]
            quant = {f"q{int(q['q'] * 100)}": q.get("value") for q in res.get("quantiles", [])}
            missing = network_total(_count(m) for m in res.get("missing_by_hospital", {}).values())
            by_cohort[c.label] = {
                "pooled": {"n": res["n"], "mean": res.get("mean"), "sd": res.get("sd"),
                           "median": quant.get("q50"), "q1": quant.get("q25"), "q3": quant.get("q75"),
                           "missing": _total_json(missing), "quantiles": res.get("quantiles", [])},
                "by_hospital": res.get("by_hospital", {}),
            }  # fmt: skip
        variables.append({"variable": var, "kind": "numeric", "by_cohort": by_cohort,
                          "smd": _smd_numeric(params, by_cohort)})  # fmt: skip
    for var in params.categorical:
        by_cohort = {}
        levels: set[str] = set()
        for i in range(len(params.cohorts)):
            for bd in st["categorical"][_sub(i, var)].values():
                levels.update(bd["cells"])
        ordered = sorted(levels, key=_level_order)
        zero = ReleasedCount.exact(0, 5)
        for i, c in enumerate(params.cohorts):
            bds = st["categorical"][_sub(i, var)]
            per_h: dict[str, Any] = {}
            pooled: dict[str, Any] = {}

            def cell(
                h: str, level: str, bds: Mapping[str, Any] = bds, zero: ReleasedCount = zero
            ) -> dict[str, Any]:
                # A level missing at a hospital may have merged into its "other" cell (fewer than k there).
                found = bds[h]["cells"].get(level)
                return (
                    found
                    if found is not None
                    else _absent(bds[h], (set(bds[h]["cells"]), set()), level, None, zero)
                )

            for level in ordered:
                counts = {h: _count(cell(h, level)) for h in hospitals}
                total = network_total(counts.values())
                pooled[level] = {**_total_json(total), "percent": _pct(total, totals[c.label][1])}
                for h in hospitals:
                    per_h.setdefault(h, {})[level] = {
                        **cell(h, level),
                        "percent": _pct(counts[h], _count(bds[h]["total"])),
                    }
            by_cohort[c.label] = {"pooled": pooled, "by_hospital": per_h}
        variables.append({"variable": var, "kind": "categorical", "levels": ordered, "by_cohort": by_cohort,
                          "smd": _smd_levels(params, by_cohort, ordered)})  # fmt: skip
    return {
        "cohorts": [c.label for c in params.cohorts],
        "hospitals": hospitals,
        "compare": list(params.compare) if params.compare else None,
        "n": n_out,
        "variables": variables,
        "smd_reference": "Austin PC (2009) Stat Med 28:3083-3107",
    }


def smd_continuous(m1: float, s1: float, m2: float, s2: float) -> float | None:
    """Austin (2009) SMD of a continuous variable."""
    pooled = math.sqrt((s1 * s1 + s2 * s2) / 2)
    return (m1 - m2) / pooled if pooled > 0 else None


def smd_binary(p1: float, p2: float) -> float | None:
    """Austin (2009) SMD of a binary variable (proportions in 0..1)."""
    pooled = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    return (p1 - p2) / pooled if pooled > 0 else None


def _smd_numeric(params: CharacterisationParams, by_cohort: Mapping[str, Any]) -> float | None:
    if params.compare is None:
        return None
    a, b = (by_cohort[x]["pooled"] for x in params.compare)
    if any(v is None for v in (a["mean"], a["sd"], b["mean"], b["sd"])):
        return None
    return smd_continuous(a["mean"], a["sd"], b["mean"], b["sd"])


def _smd_levels(params: CharacterisationParams, by_cohort: Mapping[str, Any], levels: list[str]) -> Any:
    if params.compare is None:
        return None
    a, b = (by_cohort[x]["pooled"] for x in params.compare)
    out: dict[str, float | None] = {}
    for level in levels:
        pa, pb = a[level]["percent"], b[level]["percent"]
        out[level] = smd_binary(pa / 100, pb / 100) if pa is not None and pb is not None else None
    return out
