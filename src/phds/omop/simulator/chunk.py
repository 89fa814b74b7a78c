"""One chunk of children turned into CDM tables (pyarrow), with ids continuing across chunks."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from phds.omop.schema import table_spec
from phds.omop.simulator import codes
from phds.omop.simulator import truth as tr
from phds.omop.simulator.casemix import CONDITION_KEYS, HospitalProfile
from phds.omop.simulator.encounters import (
    ASTHMA,
    CF,
    DIAGNOSIS,
    FOLLOWUP,
    OUTCOME,
    T1D,
    Events,
    Visits,
    base_visits,
    clip_to_observation,
    conditions_at,
    drugs_at,
    length_of_stay,
    make_visits,
    procedures_at,
    role_in,
)
from phds.omop.simulator.eras import build_eras
from phds.omop.simulator.growth_measurements import (
    KINDS,
    GrowthLatent,
    Measurements,
    draw_latent,
    growth_at,
    hba1c_at,
    sweat_test_at,
)
from phds.omop.simulator.picu import PICU_ROLE, draw_picu, picu_measurements
from phds.omop.simulator.picu_truth import MEASURED as PICU_KINDS
from phds.omop.simulator.population import Population, make_population
from phds.paediatrics.growth import sds_from_value

IntArray = npt.NDArray[np.int64]

#: care_site_id of the outpatient clinics, the emergency department and the wards of every hospital
CARE_SITE_BY_VISIT = {codes.OUTPATIENT: 1, codes.EMERGENCY: 2, codes.INPATIENT: 3, codes.INTENSIVE_CARE: 4}
#: Measurement kinds: growth, HbA1c and sweat test, then the PICU admission values.
ALL_KINDS = (*KINDS, *PICU_KINDS)
#: Share of outpatient visits with growth measured (every admission is measured; emergency visits
#: record a weight for dosing 70% of the time).
P_MEASURED_OUTPATIENT = 0.5
P_WEIGHED_EMERGENCY = 0.7
ARROW_TYPES = {"i": pa.int64(), "n": pa.float64(), "d": pa.date32(), "t": pa.timestamp("s"), "s": pa.string()}


class IdCounter:
    """Next row id per CDM table, carried from chunk to chunk."""

    def __init__(self) -> None:
        self.next: dict[str, int] = defaultdict(lambda: 1)

    def take(self, table: str, n: int) -> IntArray:
        first = self.next[table]
        self.next[table] = first + n
        return np.arange(first, first + n, dtype=np.int64)


def arrow_table(name: str, columns: dict[str, object]) -> pa.Table:
    """A pyarrow table of the named CDM table's columns given, in CDM order, with CDM types.

    Integer date arrays are days since 1970-01-01; negative values become NULL.
    """
    spec = table_spec(name)
    arrays, names = [], []
    for col in spec.columns:
        if col.name not in columns:
            continue
        values = columns[col.name]
        typ = ARROW_TYPES[col.type]
        if isinstance(values, np.ndarray) and col.type == "d":
            mask = values < 0
            arr = pa.array(values.astype(np.int32), type=pa.date32(), mask=mask if mask.any() else None)
        elif isinstance(values, np.ndarray) and values.dtype.kind in "iu" and col.type == "i":
            arr = pa.array(values.astype(np.int64, copy=False))
        else:
            arr = pa.array(values, type=typ)
        arrays.append(arr)
        names.append(col.name)
    return pa.Table.from_arrays(arrays, names=names)


def build_chunk(
    rng: np.random.Generator,
    profile: HospitalProfile,
    n: int,
    first_person_id: int,
    reference: date,
    ids: IdCounter,
) -> dict[str, pa.Table]:
    """Generate *n* children and everything recorded about them, as CDM tables."""
    picu_rng = rng.spawn(1)[0]  # spawning draws nothing from rng: the other rows are as without PICU
    pop = make_population(rng, n, first_person_id, profile, reference)
    latent = draw_latent(rng, n)
    visits = clip_to_observation(base_visits(rng, pop, profile), pop)
    meas = [_measure(rng, pop, latent, visits, 0)]

    # Ground truth: asthma admissions within a year of diagnosis, from the BMI measured at diagnosis.
    outcome, ics_drug = _ground_truth(rng, pop, visits, meas[0])
    outcome = clip_to_observation(outcome, pop)
    meas.append(_measure(rng, pop, latent, outcome, visits.size))
    visits = Visits.concat([visits, outcome])
    # Ground truth 2: PICU admissions, their admission values and sepsis (picu_truth).
    picu = draw_picu(picu_rng, pop, profile.picu)
    meas.append(picu_measurements(picu, visits.size, len(KINDS)))
    picu_first_row = visits.size
    visits = Visits.concat([visits, picu.visits])
    m = Measurements.concat(meas)

    order = np.lexsort((visits.start, visits.pidx))
    visits = visits.take(order)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    m.visit_row = rank[m.visit_row]
    visit_id = ids.take("visit_occurrence", visits.size)

    conditions = Events.concat(
        [conditions_at(visits, pop), _sepsis(picu.sepsis_day, rank, picu_first_row, visits)]
    )
    drugs = drugs_at(rng, visits, pop, ics_drug)
    procedures = procedures_at(rng, visits)
    return _tables(pop, visits, visit_id, conditions, drugs, procedures, m, ids)


def _measure(
    rng: np.random.Generator, pop: Population, latent: GrowthLatent, v: Visits, row_offset: int
) -> Measurements:
    """Growth at admissions, half the clinics, the asthma diagnosis visit; weights in the ED; HbA1c."""
    u = rng.random(v.size)
    force = (v.reason == ASTHMA) & (v.role == DIAGNOSIS)
    full = (
        (v.concept == codes.INPATIENT)
        | ((v.concept == codes.OUTPATIENT) & (u < P_MEASURED_OUTPATIENT))
        | force
    )
    weight_only = ~full & (v.concept == codes.EMERGENCY) & (u < P_WEIGHED_EMERGENCY)
    rows = np.flatnonzero(full | weight_only)
    g = growth_at(
        rng,
        latent,
        pop.male,
        pop.birth,
        pop.onset["obesity"],
        v.pidx[rows],
        rows + row_offset,
        v.start[rows],
        weight_only[rows],
    )
    dm = np.flatnonzero((v.reason == T1D) & role_in(v.role, DIAGNOSIS, FOLLOWUP))
    h = hba1c_at(rng, latent, v.pidx[dm], dm + row_offset, v.start[dm], v.role[dm] == DIAGNOSIS)
    cf = np.flatnonzero((v.reason == CF) & (v.role == DIAGNOSIS))
    s = sweat_test_at(rng, v.pidx[cf], cf + row_offset, v.start[cf])
    return Measurements.concat([g, h, s])


def _ground_truth(
    rng: np.random.Generator, pop: Population, v: Visits, m: Measurements
) -> tuple[Visits, IntArray]:
    """The outcome admissions of :mod:`truth`, and each child's inhaled corticosteroid (0: none)."""
    diag_rows = np.flatnonzero((v.reason == ASTHMA) & (v.role == DIAGNOSIS))
    who = v.pidx[diag_rows]
    index = v.start[diag_rows]
    bmi_value = np.full(pop.size, np.nan)
    is_bmi = m.kind == KINDS.index("bmi")
    is_index = np.zeros(v.size, dtype=bool)
    is_index[diag_rows] = True
    sel = is_bmi & is_index[m.visit_row]
    bmi_value[m.pidx[sel]] = m.value[sel]
    age = (index - pop.birth[who]) / 365.25
    sex = np.where(pop.male[who], codes.MALE, codes.FEMALE)
    bmi_sds = sds_from_value("bmi", sex, age, bmi_value[who])
    ics = (rng.random(who.shape[0]) < tr.ics_probability(age)).astype(np.float64)
    x = tr.Covariates(age, pop.male[who].astype(np.float64), np.nan_to_num(bmi_sds), ics)
    admitted = tr.draw_outcome(rng, x)
    days = index + rng.integers(1, tr.WINDOW_DAYS + 1, who.shape[0])
    stay = length_of_stay(rng, 2.0, who.shape[0])
    outcome = make_visits(who[admitted], days[admitted], codes.INPATIENT, ASTHMA, OUTCOME, stay[admitted])
    ics_concepts = np.array(codes.ICS, dtype=np.int64)
    ics_drug = np.zeros(pop.size, dtype=np.int64)
    choice = ics_concepts[rng.integers(0, len(ics_concepts), who.shape[0])]
    ics_drug[who] = np.where(ics > 0, choice, 0)
    return outcome, ics_drug


def _sepsis(sepsis_day: IntArray, rank: IntArray, first_row: int, v: Visits) -> Events:
    """Sepsis records at the PICU visits (rows *first_row* … before sorting) that have one."""
    has = np.flatnonzero(sepsis_day >= 0)
    rows = rank[first_row + has]
    assert (v.role[rows] == PICU_ROLE).all()
    start = v.start[rows] + sepsis_day[has]
    n = rows.shape[0]
    return Events(
        v.pidx[rows],
        rows,
        np.full(n, codes.SEPSIS, np.int64),
        start,
        np.full(n, -1, np.int64),
        np.zeros(n, np.int64),
    )


def _tables(
    pop: Population,
    v: Visits,
    visit_id: IntArray,
    conds: Events,
    drugs: Events,
    procs: Events,
    m: Measurements,
    ids: IdCounter,
) -> dict[str, pa.Table]:
    pid = pop.person_id
    ehr = codes.EHR
    births = pop.birth.astype("datetime64[D]")
    months = births.astype("datetime64[M]")
    out: dict[str, pa.Table] = {}
    out["person"] = arrow_table(
        "person",
        {
            "person_id": pid,
            "gender_concept_id": np.where(pop.male, codes.MALE, codes.FEMALE),
            "year_of_birth": births.astype("datetime64[Y]").astype(np.int64) + 1970,
            "month_of_birth": months.astype(np.int64) % 12 + 1,
            "day_of_birth": (births - months).astype(np.int64) + 1,
            "birth_datetime": pa.array(pop.birth * 86400, type=pa.timestamp("s")),
            "race_concept_id": np.zeros(pop.size, np.int64),
            "ethnicity_concept_id": np.zeros(pop.size, np.int64),
            "location_id": np.ones(pop.size, np.int64),
        },
    )
    out["observation_period"] = arrow_table(
        "observation_period",
        {
            "observation_period_id": ids.take("observation_period", pop.size),
            "person_id": pid,
            "observation_period_start_date": pop.obs_start,
            "observation_period_end_date": pop.obs_end,
            "period_type_concept_id": np.full(pop.size, codes.OBSERVATION_PERIOD_TYPE, np.int64),
        },
    )
    dead = np.flatnonzero(pop.death >= 0)
    cause_concept = np.array([0, *(codes.CONDITION[k] or 0 for k in CONDITION_KEYS)], dtype=np.int64)
    causes = cause_concept[pop.death_cause[dead] + 1]
    out["death"] = arrow_table(
        "death",
        {
            "person_id": pid[dead],
            "death_date": pop.death[dead],
            "death_type_concept_id": np.full(dead.shape[0], ehr),
            "cause_concept_id": pa.array(causes, mask=causes == 0),
        },
    )
    care_site = np.select([v.concept == c for c in CARE_SITE_BY_VISIT], list(CARE_SITE_BY_VISIT.values()), 0)
    out["visit_occurrence"] = arrow_table(
        "visit_occurrence",
        {
            "visit_occurrence_id": visit_id,
            "person_id": pid[v.pidx],
            "visit_concept_id": v.concept,
            "visit_start_date": v.start,
            "visit_end_date": v.end,
            "visit_type_concept_id": np.full(v.size, ehr),
            "care_site_id": care_site,
        },
    )
    c_order = np.argsort(conds.visit_row, kind="stable")
    c = _take(conds, c_order)
    out["condition_occurrence"] = arrow_table(
        "condition_occurrence",
        {
            "condition_occurrence_id": ids.take("condition_occurrence", c.pidx.shape[0]),
            "person_id": pid[c.pidx],
            "condition_concept_id": c.concept,
            "condition_start_date": c.start,
            "condition_end_date": c.end,
            "condition_type_concept_id": np.full(c.pidx.shape[0], ehr),
            "visit_occurrence_id": visit_id[c.visit_row],
        },
    )
    d = _take(drugs, np.argsort(drugs.visit_row, kind="stable"))
    out["drug_exposure"] = arrow_table(
        "drug_exposure",
        {
            "drug_exposure_id": ids.take("drug_exposure", d.pidx.shape[0]),
            "person_id": pid[d.pidx],
            "drug_concept_id": d.concept,
            "drug_exposure_start_date": d.start,
            "drug_exposure_end_date": d.end,
            "drug_type_concept_id": np.full(d.pidx.shape[0], ehr),
            "days_supply": d.extra,
            "visit_occurrence_id": visit_id[d.visit_row],
        },
    )
    p = _take(procs, np.argsort(procs.visit_row, kind="stable"))
    out["procedure_occurrence"] = arrow_table(
        "procedure_occurrence",
        {
            "procedure_occurrence_id": ids.take("procedure_occurrence", p.pidx.shape[0]),
            "person_id": pid[p.pidx],
            "procedure_concept_id": p.concept,
            "procedure_date": p.start,
            "procedure_type_concept_id": np.full(p.pidx.shape[0], ehr),
            "visit_occurrence_id": visit_id[p.visit_row],
        },
    )
    out["measurement"] = _measurement_table(pop, m, visit_id, ids)
    ce = build_eras(c.pidx, c.concept, c.start, c.end)
    out["condition_era"] = arrow_table(
        "condition_era",
        {
            "condition_era_id": ids.take("condition_era", ce.pidx.shape[0]),
            "person_id": pid[ce.pidx],
            "condition_concept_id": ce.concept,
            "condition_era_start_date": ce.start,
            "condition_era_end_date": ce.end,
            "condition_occurrence_count": ce.count,
        },
    )
    de = build_eras(d.pidx, d.concept, d.start, d.end)
    out["drug_era"] = arrow_table(
        "drug_era",
        {
            "drug_era_id": ids.take("drug_era", de.pidx.shape[0]),
            "person_id": pid[de.pidx],
            "drug_concept_id": de.concept,
            "drug_era_start_date": de.start,
            "drug_era_end_date": de.end,
            "drug_exposure_count": de.count,
            "gap_days": de.gap_days,
        },
    )
    return out


def _take(e: Events, order: npt.NDArray[np.intp]) -> Events:
    return Events(
        e.pidx[order], e.visit_row[order], e.concept[order], e.start[order], e.end[order], e.extra[order]
    )


def _measurement_table(pop: Population, m: Measurements, visit_id: IntArray, ids: IdCounter) -> pa.Table:
    order = np.argsort(m.visit_row * 16 + m.kind, kind="stable")
    kinds = m.kind[order]
    concept = np.array([codes.MEASUREMENT[k][0] for k in ALL_KINDS], dtype=np.int64)[kinds]
    unit = np.array([codes.MEASUREMENT[k][1] for k in ALL_KINDS], dtype=np.int64)[kinds]
    n = order.shape[0]
    return arrow_table(
        "measurement",
        {
            "measurement_id": ids.take("measurement", n),
            "person_id": pop.person_id[m.pidx[order]],
            "measurement_concept_id": concept,
            "measurement_date": m.day[order],
            "measurement_type_concept_id": np.full(n, codes.EHR, np.int64),
            "value_as_number": m.value[order],
            "unit_concept_id": unit,
            "visit_occurrence_id": visit_id[m.visit_row[order]],
        },
    )
