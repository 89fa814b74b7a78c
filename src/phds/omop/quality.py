"""Data-quality checks of a CDM store in the spirit of OHDSI's DataQualityDashboard (``phds omop check``).

Check names are DQD's (https://ohdsi.github.io/DataQualityDashboard/articles/checkIndex.html):

- ``plausibleAfterBirth``: a date before birth (birth = ``birth_datetime``, else year/month/day with 1
  for a missing month or day, as DQD); on ``death.death_date`` this is "birth after death". DQD
  threshold 1 %.
- ``plausibleBeforeDeath``: a start date more than 60 days after death, among persons with a death
  record (DQD 2.x; it replaced ``plausibleDuringLife``). Threshold 1 %.
- ``plausibleStartBeforeEnd``: start after end (it replaced ``plausibleTemporalAfter``). Threshold 0 %
  for observation_period, 1 % elsewhere, as DQD.
- ``isStandardValidConcept``: a concept id other than 0 whose concept is not standard (``standard_concept``
  not 'S', NULL included) or is invalid. Threshold 0 %.
- ``standardConceptRecordCompleteness``: concept id 0, "unmapped". Threshold 5 % in event tables,
  0 % in era tables, as DQD.
- ``isForeignKey``: person_id, visit_occurrence_id, provider_id, care_site_id or a concept id that
  is absent from its table. Threshold 0 %.
- ``outsideObservationPeriod`` (not a DQD check; OHDSI Achilles analyses 208, 410, 610, 710 and 810,
  "number of ... records outside valid observation period"): an event whose start date lies in none of
  the person's observation periods. PHDS threshold 1 %.
- ``plausibleValueLow`` / ``plausibleValueHigh`` for growth measurements: see
  :mod:`phds.omop.quality_growth`.

Checks run as ibis expressions, so DuckDB and PostgreSQL give the same results. A table that is absent
or empty gives ``not_applicable``. The counts are exact: this report is for the data holder, not for
release through the disclosure gate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

import ibis
from ibis import _
from pydantic import BaseModel, ConfigDict, computed_field

from phds.omop.profile import birth_date
from phds.omop.store import CdmStore

log = logging.getLogger(__name__)

Status = Literal["pass", "fail", "not_applicable"]


class CheckResult(BaseModel):
    """One check on one table field: how many rows fail among how many checked."""

    model_config = ConfigDict(frozen=True)

    check: str
    table: str
    field: str | None
    description: str
    failing_rows: int
    rows_checked: int
    percent: float
    threshold_percent: float
    status: Status
    note: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """A stable key: ``check:table.field``."""
        return f"{self.check}:{self.table}.{self.field or '*'}"


def result(
    check: str,
    table: str,
    field: str | None,
    description: str,
    failing: int,
    checked: int,
    threshold: float,
    note: str | None = None,
) -> CheckResult:
    """Build a :class:`CheckResult`; fail when the failing percentage exceeds *threshold*."""
    percent = round(100.0 * failing / checked, 4) if checked else 0.0
    status: Status = "not_applicable" if checked == 0 else ("fail" if percent > threshold else "pass")
    return CheckResult(
        check=check,
        table=table,
        field=field,
        description=description,
        failing_rows=failing,
        rows_checked=checked,
        percent=percent,
        threshold_percent=threshold,
        status=status,
        note=note,
    )


class Event(NamedTuple):
    """An event table: its start and end date fields and its standard concept field."""

    table: str
    start: str
    end: str | None
    concept: str | None
    era: bool = False


EVENTS: tuple[Event, ...] = (
    Event("observation_period", "observation_period_start_date", "observation_period_end_date", None),
    Event("visit_occurrence", "visit_start_date", "visit_end_date", "visit_concept_id"),
    Event("visit_detail", "visit_detail_start_date", "visit_detail_end_date", "visit_detail_concept_id"),
    Event("condition_occurrence", "condition_start_date", "condition_end_date", "condition_concept_id"),
    Event("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date", "drug_concept_id"),
    Event("procedure_occurrence", "procedure_date", "procedure_end_date", "procedure_concept_id"),
    Event("device_exposure", "device_exposure_start_date", "device_exposure_end_date", "device_concept_id"),
    Event("measurement", "measurement_date", None, "measurement_concept_id"),
    Event("observation", "observation_date", None, "observation_concept_id"),
    Event("specimen", "specimen_date", None, "specimen_concept_id"),
    Event("note", "note_date", None, None),
    Event("death", "death_date", None, "cause_concept_id"),
    Event(
        "condition_era", "condition_era_start_date", "condition_era_end_date", "condition_concept_id", True
    ),
    Event("drug_era", "drug_era_start_date", "drug_era_end_date", "drug_concept_id", True),
    Event("dose_era", "dose_era_start_date", "dose_era_end_date", "drug_concept_id", True),
    Event("payer_plan_period", "payer_plan_period_start_date", "payer_plan_period_end_date", None),
    Event("episode", "episode_start_date", "episode_end_date", "episode_concept_id"),
)

#: Foreign keys checked besides person_id: (field, referenced table, its key)
FOREIGN_KEYS = (
    ("visit_occurrence_id", "visit_occurrence", "visit_occurrence_id"),
    ("provider_id", "provider", "provider_id"),
    ("care_site_id", "care_site", "care_site_id"),
)
DEATH_GRACE_DAYS = 60  # DQD plausibleBeforeDeath


class _Ctx:
    """The store's ibis connection and the tables that hold rows."""

    def __init__(self, store: CdmStore) -> None:
        self.con = store.ibis()
        counts = store.row_counts()
        self.rows = {name: n for name, n in counts.items() if n}
        self.present = set(counts)

    def table(self, name: str) -> Any:
        return self.con.table(name)

    def filled(self, name: str) -> bool:
        return name in self.rows


def _ints(expr: Any) -> dict[str, int]:
    """Execute a one-row aggregate; NULL sums (no rows) become 0."""
    row = expr.to_pyarrow().to_pylist()[0]
    return {k: 0 if v is None or (isinstance(v, float) and math.isnan(v)) else int(v) for k, v in row.items()}


def _count_if(cond: Any) -> Any:
    return ibis.ifelse(cond.fill_null(False), 1, 0).sum()


def birth_date_min(p: Any) -> Any:
    """DQD's birth date: ``birth_datetime``, else year/month/day with 1 for a missing month or day."""
    return birth_date(p, default_month=1)


def _not_applicable(
    check: str, table: str, field: str | None, description: str, threshold: float, why: str
) -> CheckResult:
    return result(check, table, field, description, 0, 0, threshold, note=why)


def _after_birth(ctx: _Ctx, ev: Event) -> CheckResult:
    desc = f"{ev.table}.{ev.start} before the person's birth" + (
        " (birth after death)" if ev.table == "death" else ""
    )
    if not (ctx.filled(ev.table) and ctx.filled("person")):
        return _not_applicable("plausibleAfterBirth", ev.table, ev.start, desc, 1.0, "no rows")
    t, p = ctx.table(ev.table), ctx.table("person")
    t = t.filter(t[ev.start].notnull()).select("person_id", d=ev.start)
    births = p.select(pid=p.person_id, birth=birth_date_min(p))
    j = t.join(births, t.person_id == births.pid)
    n = _ints(j.aggregate(checked=_.count(), failing=_count_if(j.d < j.birth)))
    return result("plausibleAfterBirth", ev.table, ev.start, desc, n["failing"], n["checked"], 1.0)


def _before_death(ctx: _Ctx, ev: Event) -> CheckResult | None:
    if ev.table in {"death", "observation_period"}:
        return None
    desc = f"{ev.table}.{ev.start} more than {DEATH_GRACE_DAYS} days after death"
    if not (ctx.filled(ev.table) and ctx.filled("death")):
        return _not_applicable("plausibleBeforeDeath", ev.table, ev.start, desc, 1.0, "no rows or no deaths")
    t, d = ctx.table(ev.table), ctx.table("death")
    t = t.filter(t[ev.start].notnull()).select("person_id", d=ev.start)
    died = d.group_by(pid=d.person_id).aggregate(died=d.death_date.min())
    j = t.join(died, t.person_id == died.pid)
    late = j.d > j.died + ibis.interval(days=DEATH_GRACE_DAYS)
    n = _ints(j.aggregate(checked=_.count(), failing=_count_if(late)))
    return result("plausibleBeforeDeath", ev.table, ev.start, desc, n["failing"], n["checked"], 1.0)


def _start_before_end(ctx: _Ctx, ev: Event) -> CheckResult | None:
    if ev.end is None:
        return None
    threshold = 0.0 if ev.table == "observation_period" else 1.0
    desc = f"{ev.table}.{ev.start} after {ev.end}"
    if not ctx.filled(ev.table):
        return _not_applicable("plausibleStartBeforeEnd", ev.table, ev.start, desc, threshold, "no rows")
    t = ctx.table(ev.table)
    both = t.filter(t[ev.start].notnull() & t[ev.end].notnull())
    n = _ints(both.aggregate(checked=_.count(), failing=_count_if(_[ev.start] > _[ev.end])))
    return result("plausibleStartBeforeEnd", ev.table, ev.start, desc, n["failing"], n["checked"], threshold)


def _outside_observation(ctx: _Ctx, ev: Event) -> CheckResult | None:
    if ev.table in {"observation_period", "payer_plan_period", "death"} or ev.era:
        return None
    desc = f"{ev.table}.{ev.start} within none of the person's observation periods"
    if not ctx.filled(ev.table):
        return _not_applicable("outsideObservationPeriod", ev.table, ev.start, desc, 1.0, "no rows")
    t = ctx.table(ev.table).select("person_id", d=ev.start)
    t = t.filter(t.d.notnull())
    if ctx.filled("observation_period"):
        op = ctx.table("observation_period")
        inside = (
            (t.person_id == op.person_id)
            & (t.d >= op.observation_period_start_date)
            & (t.d <= op.observation_period_end_date)
        )
        failing = _ints(t.anti_join(op, inside).aggregate(n=_.count()))["n"]
    else:
        failing = _ints(t.aggregate(n=_.count()))["n"]
    checked = _ints(t.aggregate(n=_.count()))["n"]
    return result("outsideObservationPeriod", ev.table, ev.start, desc, failing, checked, 1.0)


def _concept_checks(ctx: _Ctx, table: str, field: str, era: bool) -> Iterator[CheckResult]:
    """isStandardValidConcept, standardConceptRecordCompleteness and isForeignKey to concept."""
    std = f"{table}.{field} holds a concept that is not standard and valid"
    zero = f"{table}.{field} is 0 (unmapped)"
    fk = f"{table}.{field} is not 0 and not in concept"
    zero_threshold = 0.0 if era else 5.0
    if not ctx.filled(table):
        yield _not_applicable("isStandardValidConcept", table, field, std, 0.0, "no rows")
        yield _not_applicable(
            "standardConceptRecordCompleteness", table, field, zero, zero_threshold, "no rows"
        )
        yield _not_applicable("isForeignKey", table, field, fk, 0.0, "no rows")
        return
    t = ctx.table(table)
    t = t.filter(t[field].notnull()).select(cid=t[field])
    n = _ints(t.aggregate(checked=_.count(), zero=_count_if(_.cid == 0)))
    yield result(
        "standardConceptRecordCompleteness", table, field, zero, n["zero"], n["checked"], zero_threshold
    )
    if not ctx.filled("concept"):
        why = "the concept table is empty"
        yield _not_applicable("isStandardValidConcept", table, field, std, 0.0, why)
        yield _not_applicable("isForeignKey", table, field, fk, 0.0, why)
        return
    c = ctx.table("concept")
    j = t.left_join(c, t.cid == c.concept_id)
    bad = (
        (j.cid != 0)
        & j.concept_id.notnull()
        & ((j.standard_concept.fill_null("") != "S") | j.invalid_reason.notnull())
    )
    m = _ints(
        j.aggregate(nonstandard=_count_if(bad), missing=_count_if((j.cid != 0) & j.concept_id.isnull()))
    )
    yield result("isStandardValidConcept", table, field, std, m["nonstandard"], n["checked"], 0.0)
    yield result("isForeignKey", table, field, fk, m["missing"], n["checked"], 0.0)


def _foreign_keys(ctx: _Ctx, table: str) -> Iterator[CheckResult]:
    """person_id, visit_occurrence_id, provider_id and care_site_id that point nowhere."""
    if table == "person":
        keys: list[tuple[str, str, str]] = list(FOREIGN_KEYS[1:])
    else:
        keys = [("person_id", "person", "person_id"), *FOREIGN_KEYS]
    if table == "visit_occurrence":
        keys = [k for k in keys if k[0] != "visit_occurrence_id"]
    columns = set(ctx.table(table).columns) if table in ctx.present else set()
    for field, target, key in keys:
        if field not in columns:
            continue
        desc = f"{table}.{field} not in {target}.{key}"
        if not ctx.filled(table):
            yield _not_applicable("isForeignKey", table, field, desc, 0.0, "no rows")
            continue
        t = ctx.table(table)
        refs = t.filter(t[field].notnull()).select(ref=t[field])
        checked = _ints(refs.aggregate(n=_.count()))["n"]
        if ctx.filled(target):
            other = ctx.table(target)
            failing = _ints(refs.anti_join(other, refs.ref == other[key]).aggregate(n=_.count()))["n"]
        else:
            failing = checked
        note = None if ctx.filled(target) else f"{target} is empty"
        yield result("isForeignKey", table, field, desc, failing, checked, 0.0, note=note)


def run_checks(store: CdmStore, *, growth: bool = True) -> list[CheckResult]:
    """Run every check on *store*; ``growth=False`` skips the growth measurement checks."""
    ctx = _Ctx(store)
    results: list[CheckResult] = []
    steps: list[Callable[[_Ctx, Event], CheckResult | None]] = [
        _after_birth,
        _before_death,
        _start_before_end,
        _outside_observation,
    ]
    for ev in EVENTS:
        if ev.table not in ctx.present:
            continue
        for step in steps:
            r = step(ctx, ev)
            if r is not None:
                results.append(r)
        if ev.concept is not None:
            results.extend(_concept_checks(ctx, ev.table, ev.concept, ev.era))
        results.extend(_foreign_keys(ctx, ev.table))
    if "person" in ctx.present:
        results.extend(_concept_checks(ctx, "person", "gender_concept_id", False))
        results.extend(_foreign_keys(ctx, "person"))
    if growth and "measurement" in ctx.present:
        from phds.omop.quality_growth import growth_checks

        results.extend(growth_checks(ctx.con, ctx.filled("measurement") and ctx.filled("person")))
    return results


def summary(results: list[CheckResult]) -> dict[Status, int]:
    """How many checks passed, failed and did not apply."""
    out: dict[Status, int] = {"pass": 0, "fail": 0, "not_applicable": 0}
    for r in results:
        out[r.status] += 1
    return out


__all__ = ["EVENTS", "CheckResult", "birth_date_min", "result", "run_checks", "summary"]
