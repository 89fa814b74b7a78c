"""Node-local feasibility counts of a cohort, with breakdowns by sex, ICH E11 age group and year.

Counts here are exact: this runs inside the node, and the disclosure gate transforms
:class:`CohortCounts` (suppresses, rounds or adds noise to ``total`` and each ``cells[i].count``)
before anything leaves. Each person is counted once: breakdowns describe the person's first entry
into the cohort (earliest ``cohort_start_date``), so the cells of one breakdown sum to ``total``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phds.cohorts.build import CohortBuilder
from phds.cohorts.circe import CohortDefinition
from phds.errors import InputError, StoreError
from phds.omop.store import CdmStore
from phds.paediatrics.age import ibis_birth_date
from phds.paediatrics.ich_e11 import AgeGroup, ibis_ich_e11_group

__all__ = ["BREAKDOWNS", "CohortCounts", "CountCell", "builder_for", "count_cohort", "count_cohort_persons"]
__all__ += ["AGE_GROUP_LEVELS", "SEX_LEVELS"]

Breakdown = Literal["sex", "age_group", "year"]
BREAKDOWNS: tuple[Breakdown, ...] = ("sex", "age_group", "year")
MALE, FEMALE = 8507, 8532
UNKNOWN = "unknown"
SEX_LEVELS: tuple[str, ...] = ("female", "male", "other")
AGE_GROUP_LEVELS: tuple[str, ...] = (*(g.value for g in AgeGroup.ordered()), UNKNOWN)


class CountCell(BaseModel):
    """One cell: the values of its dimensions (e.g. ``{"sex": "female"}``) and its person count."""

    model_config = ConfigDict(frozen=True)

    dims: dict[str, str]
    count: int = Field(ge=0)


class CohortCounts(BaseModel):
    """Persons in a cohort at one node, and its breakdown cells (exact; the gate transforms them)."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str
    total: int = Field(ge=0, description="distinct persons in the cohort")
    breakdowns: list[str] = Field(default_factory=list, description="dimensions asked for")
    crosstab: bool = Field(False, description="cells cross all dimensions; else one table per dimension")
    cells: list[CountCell] = Field(default_factory=list)
    compute_seconds: float = Field(ge=0, description="node compute time: build (if not cached) and counting")
    cache_hit: bool = Field(description="the compiled cohort came from the node's cache")

    def table(self, dimension: str) -> dict[str, int]:
        """The one-dimension cells of ``dimension`` as {value: count}."""
        return {c.dims[dimension]: c.count for c in self.cells if set(c.dims) == {dimension}}


_BUILDERS: weakref.WeakKeyDictionary[CdmStore, CohortBuilder] = weakref.WeakKeyDictionary()
_BUILDERS_LOCK = threading.Lock()


def builder_for(store: CdmStore) -> CohortBuilder:
    """The store's cohort builder, created once per open store (so its cache lives as long as the store)."""
    with _BUILDERS_LOCK:
        builder = _BUILDERS.get(store)
        if builder is None:
            builder = _BUILDERS[store] = CohortBuilder(store)
        return builder


def count_cohort(
    store: CdmStore,
    definition: CohortDefinition,
    *,
    breakdowns: Sequence[Breakdown] = (),
    crosstab: bool = False,
    builder: CohortBuilder | None = None,
) -> CohortCounts:
    """Count distinct persons in ``definition`` on ``store``, with one-way (or crossed) breakdowns."""
    counts, _, _ = count_cohort_persons(
        store, definition, breakdowns=breakdowns, crosstab=crosstab, builder=builder
    )
    return counts


def count_cohort_persons(
    store: CdmStore,
    definition: CohortDefinition,
    *,
    breakdowns: Sequence[Breakdown] = (),
    crosstab: bool = False,
    builder: CohortBuilder | None = None,
) -> tuple[CohortCounts, list[int], dict[str, list[str]]]:
    """:func:`count_cohort`, the cohort's person ids and each person's label in every breakdown (for the
    gate, which counts and guards them; they never leave the node), from one query returning each
    person's first entry with its dimensions."""
    dims: list[str] = list(dict.fromkeys(breakdowns))
    for i, dim in enumerate(dims):
        if dim not in BREAKDOWNS:
            raise InputError(
                f"unknown breakdown {dim!r}; use {', '.join(BREAKDOWNS)}", field=f"breakdowns[{i}]"
            )
    builder = builder or builder_for(store)
    start = time.perf_counter()
    hits_before = builder.hits
    cohort = builder.table(definition)
    cache_hit = builder.hits > hits_before
    try:
        persons = _first_entries(store, cohort, dims).to_pyarrow()
    except Exception as exc:  # e.g. the connection (and its scratch tables) went away: rebuild next time
        builder.clear()
        raise StoreError(f"counting cohort {definition.fingerprint[:12]}: {exc}") from exc
    ids = [int(p) for p in persons.column("subject_id").to_pylist()]
    rows = (
        [
            dict(zip(dims, values, strict=True))
            for values in zip(*(persons.column(d).to_pylist() for d in dims), strict=True)
        ]
        if dims
        else []
    )
    counts = CohortCounts(
        fingerprint=definition.fingerprint,
        total=len(ids),
        breakdowns=list(dims),
        crosstab=crosstab and len(dims) > 1,
        cells=_cells(rows, dims, crosstab) if dims and ids else [],
        compute_seconds=time.perf_counter() - start,
        cache_hit=cache_hit,
    )
    labels = {d: [_label(v) for v in persons.column(d).to_pylist()] for d in dims}
    return counts, ids, labels


def _cells(rows: list[dict[str, Any]], dims: list[str], crosstab: bool) -> list[CountCell]:
    """Crossed or one-way cells from one row per person (so one-way tables are margins)."""
    cells: list[CountCell] = []
    for group in [dims] if crosstab else [[d] for d in dims]:
        margin: Counter[tuple[str, ...]] = Counter(tuple(_label(row[d]) for d in group) for row in rows)
        for key in sorted(margin, key=lambda k: [_rank(d, v) for d, v in zip(group, k, strict=True)]):
            cells.append(CountCell(dims=dict(zip(group, key, strict=True)), count=margin[key]))
    return cells


def _label(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


_AGE_ORDER = {group.value: i for i, group in enumerate(AgeGroup.ordered())}


def _rank(dimension: str, value: str) -> tuple[int, str]:
    """Cells in a natural order: age groups youngest first, "other"/"unknown" last, else by value."""
    if value in {UNKNOWN, "other"}:
        return (1_000, value)
    if dimension == "age_group":
        return (_AGE_ORDER.get(value, 999), value)
    return (0, value)


def _first_entries(store: CdmStore, cohort: Any, dims: Sequence[str]) -> Any:
    """One row per person: the first cohort entry with the requested dimensions as string columns."""
    import ibis

    first = cohort.group_by("subject_id").aggregate(index_date=cohort.cohort_start_date.min())
    person = store.table("person")
    joined = first.left_join(person, first.subject_id == person.person_id)
    columns: dict[str, Any] = {"subject_id": joined.subject_id}
    if "sex" in dims:
        columns["sex"] = ibis.cases(
            (joined.gender_concept_id == MALE, "male"),
            (joined.gender_concept_id == FEMALE, "female"),
            else_="other",
        )
    if "age_group" in dims:
        group = ibis_ich_e11_group(ibis_birth_date(joined), joined.index_date)
        columns["age_group"] = group.fill_null(UNKNOWN)
    if "year" in dims:
        columns["year"] = joined.index_date.year().cast("string")
    return joined.select(**columns)
