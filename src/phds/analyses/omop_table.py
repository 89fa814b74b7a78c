"""OMOP analysis tables: one row per cohort entry with the covariates a requester declared.

``{"cohort": …, "covariates": […]}`` (a :class:`~phds.analyses.tables.TableSpec`) becomes, at each node, a
table ``subject_id`` + one column per covariate (two for ``time_to_event``), in the spirit of OHDSI
FeatureExtraction. Covariates are :mod:`phds.analyses.omop_covariates`; the how-to is
docs/howto/analysis-tables.md.

* The cohort is built by the store's :class:`~phds.cohorts.CohortBuilder` (cached by fingerprint); each
  person's first entry is a row (``entries: "all"``: every entry). The *index date* is the entry's
  ``cohort_start_date``.
* Covariates are ibis expressions on the store's tables (DuckDB or PostgreSQL). Concept ids are validated
  integers and names match a strict pattern; nothing a requester wrote becomes SQL text.
* The table is fetched once, growth SDS are computed in numpy
  (:func:`phds.paediatrics.growth.sds_from_value`), and it is kept in a private in-memory DuckDB: an
  iterative analysis (GLM rounds) re-reads it without touching the CDM. Rows never leave the node: only
  the analyses' gated aggregates do.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from phds.analyses.omop_covariates import (
    AgeCovariate,
    AgeGroupCovariate,
    ConceptSet,
    EventCovariate,
    MeasurementCovariate,
    SexCovariate,
    TimeToEventCovariate,
    VisitFilter,
    Window,
    check_table_at_hub,
    cohort_definition,
)
from phds.cohorts import builder_for
from phds.errors import StoreError
from phds.omop.store import CdmStore
from phds.omop.vocabulary import concepts as c
from phds.paediatrics.age import ibis_age_days, ibis_age_months, ibis_age_years, ibis_birth_date
from phds.paediatrics.growth import sds_from_value
from phds.paediatrics.ich_e11 import ibis_ich_e11_group
from phds.protocol.canonical import canonical_json

if TYPE_CHECKING:
    from phds.analyses.tables import TableSpec
    from phds.sources import NodeData

__all__ = [
    "GROUND_TRUTH_TABLE",
    "PICU_SEPSIS_TABLE",
    "check_table_at_hub",
    "cohort_definition",
    "omop_analysis_table",
    "omop_table_arrow",
]

#: The analysis table of docs/ground-truth.md: children with asthma (first diagnosis, 365 days of
#: follow-up), the generator's covariates and its outcome. A logistic GLM of ``admitted`` on
#: ``age_years + male + bmi_sds + ics`` recovers ``phds.omop.simulator.truth.COEFFICIENTS``.
GROUND_TRUTH_TABLE: dict[str, Any] = {
    "cohort": {
        "entry": {"condition": {"concepts": [c.ASTHMA]}},
        "observation_window": {"prior": 0, "post": 365},
    },
    "covariates": [
        {"name": "age_years", "kind": "age", "unit": "decimal_years"},
        {"name": "male", "kind": "sex", "coding": "male"},
        {
            "name": "bmi_sds",
            "kind": "measurement",
            "concepts": [c.BMI],
            "window": {"start": 0, "end": 0},
            "visit": {"condition": {"concepts": [c.ASTHMA]}},  # the index visit: the one with the diagnosis
            "value": "sds",
            "growth": "bmi",
        },
        {
            "name": "ics",
            "kind": "drug",
            "concepts": list(c.INHALED_CORTICOSTEROIDS),
            "descendants": True,
            "window": {"start": 0, "end": 30},
        },
        {
            "name": "admitted",
            "kind": "visit",
            "concepts": [c.INPATIENT_VISIT],
            "window": {"start": 1, "end": 365},
            "visit": {"condition": {"concepts": [c.ASTHMA]}},
        },
    ],
}

#: (column, measurement concept, unit concept) of the PICU admission values, as the simulator records them.
_PICU_MEASUREMENTS: tuple[tuple[str, int, int], ...] = (
    ("heart_rate", c.HEART_RATE, c.UNIT_PER_MINUTE),
    ("respiratory_rate", c.RESPIRATORY_RATE, c.UNIT_PER_MINUTE),
    ("temperature", c.BODY_TEMPERATURE, c.UNIT_DEGREE_CELSIUS),
    ("systolic_bp", c.SYSTOLIC_BLOOD_PRESSURE, c.UNIT_MM_HG),
    ("lactate", c.LACTATE_BLOOD, c.UNIT_MMOL_PER_L),
    ("wbc", c.LEUKOCYTES, c.UNIT_THOUSAND_PER_UL),
    ("crp", c.C_REACTIVE_PROTEIN, c.UNIT_MG_PER_L),
)
#: The second ground truth of docs/ground-truth.md ("PICU sepsis"): a child's first intensive-care
#: admission (with 2 days of observation after it), age, the seven values measured in that visit on the
#: admission day, and ``sepsis`` (1: sepsis recorded in the visit from the admission day to day 2). A
#: logistic GLM of ``sepsis`` on ``age_years + heart_rate + respiratory_rate + temperature + systolic_bp +
#: lactate + wbc + crp`` recovers ``phds.omop.simulator.picu_truth.COEFFICIENTS`` in every hospital.
PICU_SEPSIS_TABLE: dict[str, Any] = {
    "cohort": {
        "entry": {"visit": {"concepts": [c.INTENSIVE_CARE_VISIT]}},
        "observation_window": {"prior": 0, "post": 2},
    },
    "covariates": [
        {"name": "age_years", "kind": "age", "unit": "decimal_years"},
        *(
            {
                "name": name,
                "kind": "measurement",
                "concepts": [concept],
                "units": [unit],
                "window": {"start": 0, "end": 0},
                "visit": {"concepts": [c.INTENSIVE_CARE_VISIT]},
                "value": "earliest",
            }
            for name, concept, unit in _PICU_MEASUREMENTS
        ),
        {
            "name": "sepsis",
            "kind": "condition",
            "concepts": [c.SEPSIS],
            "window": {"start": 0, "end": 2},
            "visit": {"concepts": [c.INTENSIVE_CARE_VISIT]},
        },
    ],
}

# domain -> (table, concept column, start date column, row id column)
_DOMAINS: dict[str, tuple[str, str, str, str]] = {
    "condition": (
        "condition_occurrence",
        "condition_concept_id",
        "condition_start_date",
        "condition_occurrence_id",
    ),
    "drug": ("drug_exposure", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_id"),
    "procedure": (
        "procedure_occurrence",
        "procedure_concept_id",
        "procedure_date",
        "procedure_occurrence_id",
    ),
    "observation": ("observation", "observation_concept_id", "observation_date", "observation_id"),
    "device": ("device_exposure", "device_concept_id", "device_exposure_start_date", "device_exposure_id"),
    "visit": ("visit_occurrence", "visit_concept_id", "visit_start_date", "visit_occurrence_id"),
    "measurement": ("measurement", "measurement_concept_id", "measurement_date", "measurement_id"),
}
_KEYS = ["subject_id", "idx"]
_DAYS_PER_YEAR = 365.25  # rcpchgrowth's decimal age
_MAX_CACHED = 8


# -- building at the node --------------------------------------------------------------------------

_CACHE: weakref.WeakKeyDictionary[CdmStore, OrderedDict[str, Any]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def omop_analysis_table(data: NodeData, spec: TableSpec) -> Any:
    """The analysis table at this node as an ibis table (in a private in-memory DuckDB, cached)."""
    import ibis

    store = data.omop(spec.source)
    builder = builder_for(store)
    built = builder.build(cohort_definition(spec))
    covariates = [cv.model_dump(mode="json") for cv in spec.covariates]
    key = canonical_json([built.prefix, spec.entries, covariates])  # a rebuilt cohort has a new prefix
    with _CACHE_LOCK:
        cached = _CACHE.setdefault(store, OrderedDict())
        if key in cached:
            cached.move_to_end(key)
            return cached[key]
    arrow = _fetch(store, built.table, spec, builder.clear)
    table = ibis.duckdb.connect().create_table("analysis_table", arrow)
    with _CACHE_LOCK:
        cached[key] = table
        while len(cached) > _MAX_CACHED:
            cached.popitem(last=False)
    return table


def omop_table_arrow(store: CdmStore, spec: TableSpec) -> pa.Table:
    """The analysis table fetched from *store* as Arrow, ordered by subject and index date."""
    builder = builder_for(store)
    return _fetch(store, builder.table(cohort_definition(spec)), spec, builder.clear)


def _fetch(store: CdmStore, cohort: Any, spec: TableSpec, on_error: Any) -> pa.Table:
    try:
        arrow = _expression(store, cohort, spec).to_pyarrow()
    except Exception as exc:  # e.g. the connection and the cohort's scratch tables went away
        on_error()
        raise StoreError(f"building the analysis table on {store.dialect}: {exc}") from exc
    for i, covariate in enumerate(spec.covariates):
        if isinstance(covariate, MeasurementCovariate) and covariate.growth is not None:
            z = sds_from_value(
                covariate.growth,
                arrow["gender"].fill_null(0).to_numpy(zero_copy_only=False),
                arrow[f"a{i}"].to_numpy(zero_copy_only=False),
                arrow[f"c{i}"].to_numpy(zero_copy_only=False),
            )
            column = pa.array(z, mask=~np.isfinite(z), type=pa.float64())
            arrow = arrow.set_column(arrow.schema.get_field_index(f"c{i}"), f"c{i}", column)
    names = ["subject_id", *(col for cv in spec.covariates for col in cv.columns())]
    internal = ["subject_id", *(f"c{i}{s}" for i, cv in enumerate(spec.covariates) for s in _suffixes(cv))]
    return arrow.select(internal).rename_columns(names)


def _suffixes(covariate: Any) -> list[str]:
    return ["_t", "_e"] if isinstance(covariate, TimeToEventCovariate) else [""]


def _expression(store: CdmStore, cohort: Any, spec: TableSpec) -> Any:
    """One ibis expression: the cohort's rows with every covariate, hidden helper columns included."""
    if spec.entries == "first":
        keys = cohort.group_by("subject_id").aggregate(idx=cohort.cohort_start_date.min())
    else:
        keys = cohort.select("subject_id", idx=cohort.cohort_start_date).distinct()
    person = store.table("person")
    people = person.select(
        pid=person.person_id, gender=person.gender_concept_id, birth=ibis_birth_date(person)
    )
    base = keys.left_join(people, keys.subject_id == people.pid).select(
        "subject_id", "idx", "gender", "birth"
    )
    table = base
    for i, covariate in enumerate(spec.covariates):
        extra = _aggregate(store, base, covariate, i)
        if extra is not None:
            joined = table.left_join(extra, _KEYS)
            table = joined.select(*table.columns, *(n for n in extra.columns if n not in _KEYS))
    columns: dict[str, Any] = {}
    for i, covariate in enumerate(spec.covariates):
        columns.update(_finish(table, covariate, i))
    ages = [f"a{i}" for i, cv in enumerate(spec.covariates) if isinstance(cv, MeasurementCovariate)]
    ordered = table.mutate(**columns).order_by(_KEYS)
    return ordered.select("subject_id", ordered.gender.cast("int64").name("gender"), *ages, *columns)


def _finish(t: Any, covariate: Any, i: int) -> dict[str, Any]:
    """The public column(s) of one covariate, from the joined table ``t``."""
    import ibis

    name = f"c{i}"
    if isinstance(covariate, AgeCovariate):
        unit = covariate.unit
        if unit == "decimal_years":
            return {name: ibis_age_days(t.birth, t.idx).cast("float64") / _DAYS_PER_YEAR}
        age = {"days": ibis_age_days, "months": ibis_age_months, "years": ibis_age_years}[unit]
        return {name: age(t.birth, t.idx).cast("int64")}
    if isinstance(covariate, SexCovariate):
        if covariate.coding == "label":
            return {
                name: ibis.cases(
                    (t.gender == c.MALE, "male"), (t.gender == c.FEMALE, "female"), else_="other"
                )
            }
        one, zero = (c.MALE, c.FEMALE) if covariate.coding == "male" else (c.FEMALE, c.MALE)
        return {
            name: ibis.cases((t.gender == one, 1), (t.gender == zero, 0), else_=ibis.null("int64")).cast(
                "int64"
            )
        }
    if isinstance(covariate, AgeGroupCovariate):
        return {name: ibis_ich_e11_group(t.birth, t.idx)}
    if isinstance(covariate, EventCovariate):
        n = t[f"n{i}"].fill_null(0)
        return {name: (ibis.ifelse(n > 0, 1, 0) if covariate.value == "any" else n).cast("int64")}
    if isinstance(covariate, MeasurementCovariate):
        return {name: t[f"v{i}"].cast("float64")}
    assert isinstance(covariate, TimeToEventCovariate)
    end, first = t[f"end{i}"], t[f"first{i}"]
    at_risk = end >= covariate.time_at_risk.start
    return {
        f"{name}_t": ibis.ifelse(at_risk, first.coalesce(end), ibis.null("int64")).cast("int64"),
        f"{name}_e": ibis.ifelse(at_risk, ibis.ifelse(first.notnull(), 1, 0), ibis.null("int64")),
    }


def _aggregate(store: CdmStore, base: Any, covariate: Any, i: int) -> Any:
    """Per-entry helper columns a covariate needs from the clinical tables (None: person columns do)."""
    import ibis

    if isinstance(covariate, EventCovariate):
        window = _in_window(
            base, _events(store, covariate.kind, covariate, covariate.visit), covariate.window
        )
        return window.group_by(_KEYS).aggregate(**{f"n{i}": window.count()})
    if isinstance(covariate, MeasurementCovariate):
        events = _events(store, "measurement", covariate, covariate.visit)
        events = events.filter(events.value.notnull())
        units = covariate.unit_ids()
        if units is not None:
            events = events.filter(events.unit.isin(units))
        window = _in_window(base, events, covariate.window)
        latest = covariate.value != "earliest"
        order = [ibis.desc(window.date), ibis.desc(window.rid)] if latest else [window.date, window.rid]
        ranked = window.mutate(rank=ibis.row_number().over(ibis.window(group_by=_KEYS, order_by=order)))
        chosen = ranked.filter(ranked.rank == 0)
        age = ibis_age_days(chosen.birth, chosen.date).cast("float64") / _DAYS_PER_YEAR
        return chosen.select(*_KEYS, **{f"v{i}": chosen.value.cast("float64"), f"a{i}": age})
    if isinstance(covariate, TimeToEventCovariate):
        return _time_to_event(store, base, covariate, i)
    return None


def _in_set(store: CdmStore, column: Any, concepts: ConceptSet) -> Any:
    ids = list(concepts.concepts)
    condition = column.isin(ids)
    if concepts.descendants:
        ancestry = store.table("concept_ancestor")
        below = ancestry.filter(ancestry.ancestor_concept_id.isin(ids)).descendant_concept_id
        condition = condition | column.isin(below)
    return condition


def _visits(store: CdmStore, visit: VisitFilter) -> Any:
    """Ids of the visits the filter keeps."""
    visits = store.table("visit_occurrence")
    if visit.concepts is not None:
        visits = visits.filter(visits.visit_concept_id.isin(list(visit.concepts)))
    if visit.condition is not None:
        conditions = store.table("condition_occurrence")
        carrying = conditions.filter(_in_set(store, conditions.condition_concept_id, visit.condition))
        visits = visits.filter(visits.visit_occurrence_id.isin(carrying.visit_occurrence_id))
    return visits.visit_occurrence_id


def _events(store: CdmStore, domain: str, concepts: ConceptSet | None, visit: VisitFilter | None) -> Any:
    """Events of one domain: ``pid, date, rid`` (+ ``value, unit`` for measurements)."""
    if domain == "death":
        death = store.table("death")
        return death.select(pid=death.person_id, date=death.death_date.cast("date"), rid=death.person_id)
    name, concept, date, row_id = _DOMAINS[domain]
    table = store.table(name)
    if concepts is not None:
        table = table.filter(_in_set(store, table[concept], concepts))
    if visit is not None:
        table = table.filter(table.visit_occurrence_id.isin(_visits(store, visit)))
    columns = {"pid": table.person_id, "date": table[date], "rid": table[row_id]}
    if domain == "measurement":
        columns |= {"value": table.value_as_number, "unit": table.unit_concept_id}
    return table.select(**columns)


def _in_window(base: Any, events: Any, window: Window) -> Any:
    """Each entry's events whose start lies within the window (days from the index, both ends in)."""
    joined = base.inner_join(events, base.subject_id == events.pid)
    day = joined.date.delta(joined.idx, unit="day")
    if window.start is not None:
        joined = joined.filter(day >= window.start)
    if window.end is not None:
        joined = joined.filter(day <= window.end)
    return joined


def _time_to_event(store: CdmStore, base: Any, covariate: TimeToEventCovariate, i: int) -> Any:
    """``end<i>``: the last day at risk (NULL: no observation period holds the index date);
    ``first<i>``: the day of the first event in [start, end]. Days count from the index date."""
    import ibis

    periods = store.table("observation_period")
    around = base.inner_join(
        periods,
        [
            base.subject_id == periods.person_id,
            periods.observation_period_start_date <= base.idx,
            periods.observation_period_end_date >= base.idx,
        ],
    )
    ends = around.group_by(_KEYS).aggregate(op_end=around.observation_period_end_date.max())
    risk = base.select(*_KEYS).left_join(ends, _KEYS).select(*_KEYS, "op_end")
    death = store.table("death")
    died = death.group_by(pid=death.person_id).aggregate(died=death.death_date.min())
    risk = risk.left_join(died, risk.subject_id == died.pid).select(*_KEYS, "op_end", "died")
    observed = risk.op_end.delta(risk.idx, unit="day")
    end = observed
    if covariate.censor_at_death:  # a death before the index leaves no time at risk
        end = ibis.least(end, risk.died.delta(risk.idx, unit="day").coalesce(observed))
    if covariate.time_at_risk.end is not None:
        end = ibis.least(end, ibis.literal(covariate.time_at_risk.end))
    risk = risk.select(
        *_KEYS, **{f"end{i}": ibis.ifelse(observed.isnull(), ibis.null("int64"), end).cast("int64")}
    )
    events = _events(store, covariate.domain, covariate.event, covariate.visit)
    joined = risk.inner_join(events, risk.subject_id == events.pid)
    day = joined.date.delta(joined.idx, unit="day")
    hits = joined.filter(day >= covariate.time_at_risk.start, day <= joined[f"end{i}"]).mutate(day=day)
    first = hits.group_by(_KEYS).aggregate(**{f"first{i}": hits.day.min()})
    return risk.left_join(first, _KEYS).select(*_KEYS, f"end{i}", f"first{i}")
