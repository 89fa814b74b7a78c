"""Build a hospital's :class:`DatasetProfile` from its CDM store (``phds omop profile``).

Every figure is computed by ibis expressions, so DuckDB and PostgreSQL stores give the same profile,
and every count passes :func:`~phds.omop.profile_model.disclose` before it enters the model.

Choices (see docs/howto/profile-and-check.md):

- **Age** is each person's age on the last day of their own last observation period, or on their death
  date when earlier; persons without an observation period are aged at the reference date (by default
  the latest ``observation_period_end_date`` of the CDM). Birth is ``birth_datetime``, else
  ``year_of_birth`` with month 7 and day 1 when those are missing (mid-year).
- **Age bands** are 0, 1-4, 5-9, 10-14, 15-17, 18-24, then 5-year bands to 85-89, top-coded at 90+.
- **min/maxTypicalAge** are the lower limit of the lowest band and the upper limit of the highest band
  holding at least ``min_cell_count`` persons (90 for the 90+ band): band limits, never a patient's age.
- **temporal** is the first month by which at least max(1 %, ``min_cell_count``) of the observation
  periods have started and the last month from which at least as many end, so neither bound is a
  single patient's date.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import ibis
from ibis import _

from phds.omop.profile_model import (
    AgeBandCount,
    AgeGroupCount,
    ConceptCount,
    DatasetProfile,
    Disclosure,
    DomainConcepts,
    DomainCount,
    SexCount,
    Temporal,
    disclose,
    round_half_up,
)
from phds.omop.store import CdmStore
from phds.paediatrics.age import ibis_age_days, ibis_age_years
from phds.paediatrics.ich_e11 import AgeGroup, ibis_ich_e11_group

log = logging.getLogger(__name__)

#: (domain, table, standard concept field, counted in numberOfRecords)
DOMAINS: tuple[tuple[str, str, str, bool], ...] = (
    ("condition", "condition_occurrence", "condition_concept_id", True),
    ("drug", "drug_exposure", "drug_concept_id", True),
    ("procedure", "procedure_occurrence", "procedure_concept_id", True),
    ("measurement", "measurement", "measurement_concept_id", True),
    ("observation", "observation", "observation_concept_id", True),
    ("visit", "visit_occurrence", "visit_concept_id", True),
    ("device", "device_exposure", "device_concept_id", True),
    ("specimen", "specimen", "specimen_concept_id", True),
    ("death", "death", "cause_concept_id", True),
    ("condition_era", "condition_era", "condition_concept_id", False),
    ("drug_era", "drug_era", "drug_concept_id", False),
)

#: Lower limits of the age bands (whole years): paediatric breaks at 1, 5, 10, 15 and 18 (ICH E11's
#: adult age), 18-24, then 5-year bands, top-coded at 90+.
BAND_STARTS: tuple[int, ...] = (0, 1, 5, 10, 15, 18, *range(25, 91, 5))
TOP_CODE_AGE = BAND_STARTS[-1]
_SEX = {8507: "male", 8532: "female", 8551: "unknown", 0: "unknown"}
AGE_REFERENCE = (
    "age at the end of the person's last observation period, or at death when earlier; "
    "persons without an observation period at the reference date {ref}"
)
TYPICAL_AGE_METHOD = (
    "lower limit of the lowest and upper limit of the highest age band holding at least "
    "{k} persons (90 stands for the top-coded band 90+)"
)
TEMPORAL_METHOD = (
    "first month by which, and last month from which, at least max(1%, {k}) observation periods start and end"
)


def build_profile(
    store: CdmStore,
    *,
    min_cell_count: int = 5,
    round_to: int = 10,
    top_n: int = 10,
    reference_date: date | None = None,
) -> DatasetProfile:
    """Profile the CDM in *store* for the catalogue, releasing only disclosure-safe aggregates."""
    present = store.existing_tables()
    con = store.ibis()

    def has(name: str) -> bool:
        return name in present

    def cell(n: int) -> Any:
        return disclose(n, min_cell_count, round_to)

    meta = _cdm_source(con) if has("cdm_source") else {}
    vocab_version = _vocabulary_version(con) if has("vocabulary") else None
    persons = _scalar(con.table("person").count()) if has("person") else 0

    ref = reference_date or (_observation_end(con) if has("observation_period") else None)
    groups, bands = _ages(con, has("observation_period"), has("death"), ref) if persons else ({}, {})
    observed = _observed_groups(con) if persons and has("observation_period") else {}
    band_rows = [
        AgeBandCount(label=_band_label(lo), min_age=lo, max_age=_band_hi(lo), persons=cell(bands.get(lo, 0)))
        for lo in BAND_STARTS
    ]
    typical = [lo for lo in sorted(bands) if bands[lo] >= min_cell_count]
    domains, concepts, coding, records = _domains(con, present, top_n, cell, min_cell_count)
    return DatasetProfile(
        title=meta.get("cdm_source_name"),
        identifier=meta.get("cdm_source_abbreviation"),
        description=meta.get("source_description"),
        publisher=meta.get("cdm_holder"),
        version=_text(meta.get("source_release_date")),
        cdm_version=_text(meta.get("cdm_version")),
        vocabulary_version=vocab_version or _text(meta.get("vocabulary_version")),
        number_of_unique_individuals=round_half_up(persons, round_to) if persons >= min_cell_count else None,
        number_of_records=round_half_up(records, round_to),
        min_typical_age=typical[0] if typical else None,
        max_typical_age=(_band_hi(typical[-1]) or TOP_CODE_AGE) if typical else None,
        typical_age_method=TYPICAL_AGE_METHOD.format(k=min_cell_count),
        temporal=_temporal(con, min_cell_count) if has("observation_period") and persons else None,
        age_reference=AGE_REFERENCE.format(ref=ref.isoformat() if ref else "(none: no observation period)"),
        age_groups=[
            AgeGroupCount(group=g.name, label=g.label, persons=cell(groups.get(g.name, 0)))
            for g in AgeGroup.ordered()
        ],
        age_groups_observed=[
            AgeGroupCount(group=g.name, label=g.label, persons=cell(observed.get(g.name, 0)))
            for g in AgeGroup.ordered()
            if g is not AgeGroup.PRETERM_NEWBORN
        ],
        age_bands=band_rows,
        sex=_sex(con, cell) if persons else [],
        domains=domains,
        top_concepts=concepts,
        has_coding_system=coding,
        disclosure=Disclosure(min_cell_count=min_cell_count, round_to=round_to),
    )


def _scalar(expr: Any) -> int:
    value = expr.execute()
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _cdm_source(con: Any) -> dict[str, Any]:
    src = con.table("cdm_source")
    rows = src.order_by(src.cdm_source_name).limit(1).to_pyarrow().to_pylist()
    return dict(rows[0]) if rows else {}


def _vocabulary_version(con: Any) -> str | None:
    voc = con.table("vocabulary")
    rows = voc.filter(voc.vocabulary_id == "None").select("vocabulary_version").limit(1).to_pyarrow()
    values = rows.column(0).to_pylist()
    return str(values[0]) if values and values[0] is not None else None


def _observation_end(con: Any) -> date | None:
    op = con.table("observation_period")
    values = op.aggregate(end=op.observation_period_end_date.max()).to_pyarrow().column(0).to_pylist()
    value = values[0] if values else None
    return value.date() if isinstance(value, datetime) else value


def birth_date(p: Any, *, default_month: int = 7) -> Any:
    """Birth date: ``birth_datetime``, else year/month/day; a missing or impossible month becomes
    *default_month* and a missing day the 1st (31 April rolls over to 1 May rather than failing)."""
    month = ibis.ifelse(p.month_of_birth.between(1, 12), p.month_of_birth, default_month)
    day = ibis.ifelse(p.day_of_birth.between(1, 31), p.day_of_birth, 1)
    built = ibis.date(p.year_of_birth, month.fill_null(default_month), 1) + (
        day.fill_null(1) - 1
    ).as_interval("D")
    return ibis.coalesce(p.birth_datetime.date(), built)


def _ages(
    con: Any, with_observation: bool, with_death: bool, ref: date | None
) -> tuple[dict[str, int], dict[int, int]]:
    """Persons per ICH E11 group name and per band lower limit."""
    p = con.table("person")
    at: Any = ibis.literal(ref) if ref is not None else ibis.null().cast("date")
    t = p.select(person_id=p.person_id, birth=birth_date(p))
    if with_observation:
        op = con.table("observation_period")
        last = op.group_by("person_id").aggregate(last_obs=op.observation_period_end_date.max())
        t = t.left_join(last, "person_id").select(t.person_id, t.birth, last_obs=last.last_obs)
        at = ibis.coalesce(t.last_obs, at)
    t = t.mutate(at=at)
    if with_death:
        death = con.table("death")
        died = death.group_by("person_id").aggregate(died=death.death_date.min())
        t = t.left_join(died, "person_id").select(t.person_id, t.birth, at=t.at, died=died.died)
        t = t.mutate(at=ibis.ifelse(t.died.notnull() & (t.at.isnull() | (t.died < t.at)), t.died, t.at))
    years = ibis_age_years(t.birth, t.at)
    t = t.mutate(
        group=ibis_ich_e11_group(t.birth, t.at),
        years=ibis.least(years, TOP_CODE_AGE),
        days=ibis_age_days(t.birth, t.at),
    ).filter(lambda r: r.days >= 0)
    grouped = t.group_by(["group", "years"]).aggregate(n=t.count()).to_pyarrow().to_pylist()
    groups: Counter[str] = Counter()
    bands: Counter[int] = Counter()
    for row in grouped:
        groups[_group_name(row["group"])] += int(row["n"])
        bands[_band_start(int(row["years"]))] += int(row["n"])
    return dict(groups), dict(bands)


def _observed_groups(con: Any) -> dict[str, int]:
    """Persons with observation time in each ICH E11 group (a period from infancy to 20 y counts for
    infant, child, adolescent and adult); preterm newborns cannot be told apart and count as term."""
    op, p = con.table("observation_period"), con.table("person")
    births = p.select(pid=p.person_id, birth=birth_date(p))
    j = op.join(births, op.person_id == births.pid)
    start = ibis.greatest(j.observation_period_start_date, j.birth)
    order = [g for g in AgeGroup.ordered() if g is not AgeGroup.PRETERM_NEWBORN]

    def rank(group: Any) -> Any:
        return ibis.cases(*((group == g.value, i) for i, g in enumerate(order)), else_=ibis.null("int64"))

    j = j.mutate(
        lo=rank(ibis_ich_e11_group(j.birth, start)),
        hi=rank(ibis_ich_e11_group(j.birth, j.observation_period_end_date)),
    )
    metrics = {g.name: j.person_id.nunique(where=(j.lo <= i) & (j.hi >= i)) for i, g in enumerate(order)}
    row = j.aggregate(**metrics).to_pyarrow().to_pylist()[0]
    return {name: int(v or 0) for name, v in row.items()}


def _group_name(value: Any) -> str:
    for g in AgeGroup:
        if value in {g.name, g.value, g.label}:
            return g.name
    return str(value)


def _band_start(years: int) -> int:
    return max(lo for lo in BAND_STARTS if lo <= years)


def _band_label(lo: int) -> str:
    hi = _band_hi(lo)
    return f"{lo}+" if hi is None else (str(lo) if hi == lo else f"{lo}-{hi}")


def _band_hi(lo: int) -> int | None:
    later = [b for b in BAND_STARTS if b > lo]
    return later[0] - 1 if later else None


def _sex(con: Any, cell: Any) -> list[SexCount]:
    p = con.table("person")
    rows = p.group_by("gender_concept_id").aggregate(n=p.count()).to_pyarrow().to_pylist()
    counts: Counter[str] = Counter()
    for row in rows:
        cid = row["gender_concept_id"]
        counts[_SEX.get(cid, "other") if cid is not None else "unknown"] += int(row["n"])
    return [SexCount(sex=s, persons=cell(counts.get(s, 0))) for s in ("female", "male", "other", "unknown")]


def _temporal(con: Any, min_cell_count: int) -> Temporal | None:
    op, person = con.table("observation_period"), con.table("person")
    op = op.semi_join(person, op.person_id == person.person_id)  # periods of persons in the CDM only
    starts = _months(op, op.observation_period_start_date)
    ends = _months(op, op.observation_period_end_date)
    n = sum(starts.values())
    k = max(math.ceil(0.01 * n), min_cell_count)
    if n < 2 * k:  # enough periods on both sides of each bound
        return None
    return Temporal(
        start_date=_first_reaching(sorted(starts.items()), k),
        end_date=_first_reaching(sorted(ends.items(), reverse=True), k),
        method=TEMPORAL_METHOD.format(k=min_cell_count),
    )


def _months(t: Any, column: Any) -> dict[tuple[int, int], int]:
    g = t.filter(column.notnull()).group_by(y=column.year(), m=column.month()).aggregate(n=_.count())
    return {(int(r["y"]), int(r["m"])): int(r["n"]) for r in g.to_pyarrow().to_pylist()}


def _first_reaching(items: Iterable[tuple[tuple[int, int], int]], k: int) -> str:
    total = 0
    for (y, m), n in items:
        total += n
        if total >= k:
            return f"{y:04d}-{m:02d}"
    raise AssertionError("unreachable: k exceeds the total")


def _domains(
    con: Any, present: set[str], top_n: int, cell: Any, min_cell_count: int
) -> tuple[list[DomainCount], list[DomainConcepts], list[str], int]:
    """Per-domain counts, most frequent concepts, vocabularies in use, and the raw record total."""
    concept = con.table("concept") if "concept" in present else None
    counts: list[DomainCount] = []
    tops: list[DomainConcepts] = []
    vocabularies: set[str] = set()
    total = 0
    for domain, table, field, counted in DOMAINS:
        if table not in present:
            continue
        t = con.table(table)
        row = t.aggregate(records=t.count(), persons=t.person_id.nunique()).to_pyarrow().to_pylist()[0]
        total += int(row["records"]) if counted else 0
        counts.append(
            DomainCount(
                domain=domain,
                table=table,
                records=cell(int(row["records"])),
                persons=cell(int(row["persons"])),
            )
        )
        if not row["records"]:
            continue
        per = (
            t.filter(t[field].notnull() & (t[field] != 0))
            .group_by(concept_id=_[field])
            .aggregate(records=_.count(), persons=_.person_id.nunique())
        )
        if concept is not None:
            used = per.select("concept_id").join(concept, per.concept_id == concept.concept_id)
            vocabularies.update(
                v
                for v in used.select(concept.vocabulary_id).distinct().to_pyarrow().column(0).to_pylist()
                if v
            )
            top = per.order_by([ibis.desc("persons"), ibis.desc("records"), "concept_id"]).limit(top_n)
            top = top.left_join(concept, top.concept_id == concept.concept_id).select(
                top.concept_id, top.records, top.persons, concept.concept_name, concept.vocabulary_id
            )
        else:
            top = (
                per.order_by([ibis.desc("persons"), ibis.desc("records"), "concept_id"])
                .limit(top_n)
                .mutate(concept_name=ibis.null().cast("string"), vocabulary_id=ibis.null().cast("string"))
            )
        rows = (
            top.order_by([ibis.desc("persons"), ibis.desc("records"), "concept_id"]).to_pyarrow().to_pylist()
        )
        tops.append(
            DomainConcepts(
                domain=domain,
                table=table,
                field=field,
                concepts=[_concept_count(r, cell, min_cell_count) for r in rows],
            )
        )
    return counts, tops, sorted(vocabularies - {"None"}), total


def _concept_count(row: dict[str, Any], cell: Any, min_cell_count: int) -> ConceptCount:
    persons = int(row["persons"])
    return ConceptCount(
        concept_id=int(row["concept_id"]),
        concept_name=row["concept_name"],
        vocabulary_id=row["vocabulary_id"],
        # records of fewer persons than the minimum are withheld: "<5" records would be untrue
        records=cell(int(row["records"])) if persons >= min_cell_count else None,
        persons=cell(persons),
    )


__all__ = ["DOMAINS", "birth_date", "build_profile"]
