"""``feasibility.count``: how many persons at each hospital match a cohort, with breakdowns.

The cohort is an OHDSI Circe definition (ATLAS export) or the PHDS YAML form, checked at the hub before
any node runs it. Each node counts distinct persons and, when asked, the persons by sex, ICH E11 age
group at index and calendar year of index; its gate suppresses counts below the hospital's minimum
cell count (with complementary suppression inside each breakdown) and guards against differencing
with the cohort's person ids, which never leave the node. The runner adds released counts over
hospitals; a network total or cell that includes a suppressed count is reported as an interval.

Under secure aggregation (:mod:`phds.secagg`) only the network sums leave: each count travels as the
integers ``[lower, upper, suppressed]`` (scale 1, so exact), the breakdowns on the fixed vocabulary
grids (sex, ICH E11 age group; year has none and is refused), and the result lists the contributing
hospitals with empty entries instead of their counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from phds.analyses.base import (
    Analysis,
    Final,
    KnownConcepts,
    LocalStep,
    NextRound,
    SecureLayout,
    released_values,
)
from phds.analyses.context import LocalContext
from phds.cohorts import CohortDefinition, count_cohort_persons, parse_cohort, validate_concepts
from phds.cohorts.count import AGE_GROUP_LEVELS, SEX_LEVELS
from phds.errors import InputError
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, CountAggregate, Persons
from phds.privacy.disclosure import Z_975, network_total
from phds.protocol.releases import NetworkTotal, ReleasedCount
from phds.protocol.studies import ServiceType

Breakdown = Literal["sex", "age_group", "year"]
FIXED_GRIDS: dict[str, tuple[str, ...]] = {"sex": SEX_LEVELS, "age_group": AGE_GROUP_LEVELS}
"""Breakdowns on a vocabulary that does not depend on the data (sex; ICH E11 groups); years have none."""
COUNT_CLIP = float(2**40)
"""The largest count a secure sum carries (32 parties · 2⁴⁰ < 2⁶², the ring's headroom)."""


class FeasibilityParams(BaseModel):
    """The cohort (Circe JSON or YAML text, or a JSON object) and the breakdowns wanted."""

    model_config = ConfigDict(extra="forbid")

    cohort: str | dict[str, Any] = Field(description="Circe JSON / YAML text, or the JSON object")
    breakdowns: list[Breakdown] = Field(default_factory=list, max_length=3)
    source: str | None = Field(default=None, max_length=100, description="OMOP source name at the node")

    @field_validator("breakdowns")
    @classmethod
    def _unique(cls, value: list[Breakdown]) -> list[Breakdown]:
        if len(set(value)) != len(value):
            raise ValueError("each breakdown may be named once")
        return value

    def definition(self) -> CohortDefinition:
        """The parsed, checked cohort definition (cached by its text)."""
        text = self.cohort if isinstance(self.cohort, str) else json.dumps(self.cohort, sort_keys=True)
        return _parse(text)


@lru_cache(maxsize=64)
def _parse(text: str) -> CohortDefinition:
    return parse_cohort(text)


class FeasibilityCount(Analysis[FeasibilityParams]):
    """Persons matching a cohort at each hospital, and in the network."""

    name: ClassVar[str] = "feasibility.count"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Feasibility count"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "omop"
    params_model = FeasibilityParams
    service_types: ClassVar[tuple[ServiceType, ...]] = (
        ServiceType.FEASIBILITY,
        ServiceType.CLINICAL_TRIAL_SUPPORT,
    )
    dp_support: ClassVar[bool] = True
    secure_aggregation_support: ClassVar[bool] = True
    dp_secure_support: ClassVar[bool] = True

    def check_at_hub(self, params: FeasibilityParams, known_concepts: KnownConcepts | None = None) -> None:
        try:
            definition = params.definition()
        except InputError as exc:
            where = f"analysis.params.cohort.{exc.field}" if exc.field else "analysis.params.cohort"
            raise InputError(exc.message.split(": ", 1)[-1], field=where) from exc
        if known_concepts is not None:
            try:
                validate_concepts(definition, known_concepts)
            except InputError as exc:
                raise InputError(exc.message.split(": ", 1)[-1], field="analysis.params.cohort") from exc

    def local(self, ctx: LocalContext, params: FeasibilityParams) -> LocalStep:
        store = ctx.data.omop(params.source)
        definition = params.definition()
        counts, ids, labels = count_cohort_persons(store, definition, breakdowns=params.breakdowns)
        persons = Persons.of(ctx.data.universe(source=params.source), ids)
        aggregates: list[Aggregate] = [CountAggregate("persons", persons)]
        for dim in params.breakdowns:
            observed = list(counts.table(dim))
            # Sex and ICH E11 groups are a fixed vocabulary; years are integer codes.
            fixed = FIXED_GRIDS.get(dim)
            declared = fixed is not None and set(observed) <= set(fixed)
            # Noise, or a secure sum whose layout the hub fixed, needs a grid that is not the data's.
            if ctx.dp is not None or ctx.secure_aggregation:
                if fixed is None or not declared:
                    why = "differential privacy" if ctx.dp is not None else "secure aggregation"
                    raise InputError(
                        f"under {why} a breakdown needs a fixed grid: {dim} has none; use sex or age_group",
                        field="analysis.params.breakdowns",
                    )
                observed = list(fixed)
            aggregates.append(
                BreakdownAggregate(f"by_{dim}", persons, np.asarray(labels[dim]), observed, declared)
            )
        return LocalStep(aggregates, counts.compute_seconds)

    def combine(
        self,
        params: FeasibilityParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        per_hospital: dict[str, Any] = {}
        totals: list[ReleasedCount] = []
        cells: dict[str, dict[str, list[ReleasedCount]]] = {d: {} for d in params.breakdowns}
        for hospital in sorted(released):
            values = released_values(released[hospital])
            persons = _count(values["persons"])
            totals.append(persons)
            entry: dict[str, Any] = {"persons": values["persons"], "breakdowns": {}}
            for dim in params.breakdowns:
                table = values[f"by_{dim}"]["cells"]
                entry["breakdowns"][dim] = table
                for cell, raw in table.items():
                    cells[dim].setdefault(cell, []).append(_count(raw))
            per_hospital[hospital] = entry
        network = {
            dim: {cell: _total_json(network_total(counts)) for cell, counts in sorted(by_cell.items())}
            for dim, by_cell in cells.items()
        }
        return Final(
            {
                "hospitals": per_hospital,
                "total": _total_json(network_total(totals)),
                "breakdowns": network,
            }
        )

    # -- secure aggregation: every count as [lower, upper, suppressed] -----------------------------

    def secure_layout(
        self, params: FeasibilityParams, round_no: int, state: Mapping[str, Any]
    ) -> SecureLayout | None:
        """``persons`` and each breakdown's fixed grid (cells in vocabulary order), 3 integers a count."""
        blocks = [("persons", ENTRY)] + [(f"by_{dim}", ENTRY * len(_grid(dim))) for dim in params.breakdowns]
        return SecureLayout(tuple(blocks), scale=1, clip=COUNT_CLIP)

    def secure_summands(
        self, params: FeasibilityParams, round_no: int, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The node's released counts as integer triples; its breakdowns must be on the fixed grids."""
        values = released_values(payload)
        out: dict[str, Any] = {"persons": _entry(_count(values["persons"]))}
        for dim in params.breakdowns:
            cells = values[f"by_{dim}"]["cells"]
            grid = _grid(dim)
            if set(cells) != set(grid):
                raise InputError(
                    f"the {dim} breakdown was not released on its fixed grid", field="secure_aggregation"
                )
            out[f"by_{dim}"] = [v for cell in grid for v in _entry(_count(cells[cell]))]
        return out

    def combine_secure(
        self,
        params: FeasibilityParams,
        round_no: int,
        state: Mapping[str, Any],
        sums: Mapping[str, Any],
        contributors: list[str],
    ) -> Final | NextRound:
        """:meth:`combine`'s result from the network sums: totals and cells as intervals; ``hospitals``
        names the contributors with empty entries (no hospital's count is known)."""
        layout = self.secure_layout(params, round_no, state)
        assert layout is not None
        missing = [name for name, _ in layout.blocks if name not in sums]
        if missing:
            raise InputError(f"the secure sum has no block {missing[0]!r}", field="secure_aggregation")
        network: dict[str, dict[str, Any]] = {}
        for dim in params.breakdowns:
            entries = _entries(sums[f"by_{dim}"], len(_grid(dim)))
            network[dim] = {cell: _network(t) for cell, t in sorted(zip(_grid(dim), entries, strict=True))}
        return Final(
            {
                "hospitals": {h: {} for h in sorted(contributors)},
                "total": _network(_entries(sums["persons"], 1)[0]),
                "breakdowns": network,
                "secure_aggregation": True,
            }
        )


def _grid(dim: str) -> tuple[str, ...]:
    grid = FIXED_GRIDS.get(dim)
    if grid is None:
        raise InputError(
            f"under secure aggregation a breakdown needs a fixed grid: {dim} has none; use sex or age_group",
            field="analysis.params.breakdowns",
        )
    return grid


ENTRY = 5
"""Integers per count in the secure sum: lower, upper, suppressed, noisy (0/1) and the noise variance of
a distributed-DP share in thousandths (so the hub knows the sum's noise without seeing any share)."""


def _entry(count: ReleasedCount) -> list[int]:
    if count.dp is None:
        return [count.lower, count.upper, int(count.suppressed), 0, 0]
    if not count.dp.share_of:
        raise InputError(
            "a noisy count that is not a share of distributed noise cannot be summed securely",
            field="secure_aggregation",
        )
    # A share of distributed noise (phds.privacy.dp_distributed): its variance is the network scale²
    # divided among the contributors it was calibrated for.
    value = int(count.value or 0)
    return [value, value, 0, 1, round(count.dp.scale**2 / count.dp.share_of * 1000)]


def _entries(block: Any, cells: int) -> list[tuple[int, ...]]:
    """A summed block as integer entries; fixed-point sums of integers at scale 1 are integers."""
    values = np.rint(np.asarray(block, dtype=float)).astype(np.int64).reshape(cells, ENTRY)
    return [tuple(int(v) for v in row) for row in values]


def _network(entry: tuple[int, ...]) -> dict[str, Any]:
    lower, upper, suppressed, noisy, variance = entry
    if not noisy:
        return _total_json(NetworkTotal(lower=lower, upper=upper, suppressed_contributions=suppressed))
    # Noisy shares summed: the estimate is the sum, its 95% half-width 1.96·√(Σ share variances); exact
    # or suppressed contributions of hospitals without DP widen the interval by what is known of them.
    half = Z_975 * math.sqrt(variance / 1000) + (upper - lower) / 2
    center = (lower + upper) / 2
    return _total_json(NetworkTotal(
        lower=max(0, math.floor(center - half)), upper=max(0, math.ceil(center + half)),
        suppressed_contributions=suppressed, exact=False, estimate=max(0, round(center)), ci95=round(half, 3),
    ))  # fmt: skip


def _count(raw: Mapping[str, Any]) -> ReleasedCount:
    return ReleasedCount.model_validate(raw)


def _total_json(total: Any) -> dict[str, Any]:
    return dict(total.model_dump(mode="json"))
