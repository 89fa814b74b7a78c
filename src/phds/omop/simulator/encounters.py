"""Visits of one chunk of children, and the conditions, drugs and procedures recorded at them.

Visits come from independent Poisson streams, all vectorised over children:

- background contacts by age band (outpatient, emergency, inpatient), infants most;
- a diagnosis visit at each condition's onset (setting and length of stay from the condition table);
- condition follow-up clinics while the condition is in active care;
- further episodes of acute conditions; asthma emergency visits and later asthma admissions;
- the ground-truth asthma admissions (:mod:`phds.omop.simulator.truth`), added by the chunk builder.

Rates are illustrative, chosen to give plausible hospital activity (infants and chronic patients visit
most), not fitted to a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from phds.omop.simulator import codes
from phds.omop.simulator.casemix import CONDITION_KEYS, CONDITIONS, HospitalProfile
from phds.omop.simulator.population import Population

IntArray = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

BACKGROUND, DIAGNOSIS, FOLLOWUP, EPISODE, OUTCOME, EXACERBATION, LATER_ADMISSION = range(7)
ASTHMA = CONDITION_KEYS.index("asthma")
OBESITY = CONDITION_KEYS.index("obesity")
T1D = CONDITION_KEYS.index("type1_diabetes")
CF = CONDITION_KEYS.index("cystic_fibrosis")

#: Background contacts per child-year by age band: (from age, to age, outpatient, emergency, inpatient).
BACKGROUND_RATES = (
    (0.0, 1.0, 0.8, 0.5, 0.06),
    (1.0, 5.0, 0.35, 0.3, 0.025),
    (5.0, 18.0, 0.2, 0.15, 0.012),
)
ASTHMA_ED_PER_YEAR = 0.15
ASTHMA_LATER_ADMISSIONS_PER_YEAR = 0.03
YEAR = 365.25


@dataclass
class Visits:
    """Visit rows: child row, start and end day, visit concept, reason (condition index, -1) and role."""

    pidx: IntArray
    start: IntArray
    end: IntArray
    concept: IntArray
    reason: I8
    role: I8

    @staticmethod
    def concat(parts: list[Visits]) -> Visits:
        return Visits(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Visits)))

    def take(self, idx: npt.NDArray[np.intp]) -> Visits:
        return Visits(*(getattr(self, f.name)[idx] for f in fields(Visits)))

    @property
    def size(self) -> int:
        return int(self.pidx.shape[0])


def role_in(role: I8, *roles: int) -> npt.NDArray[np.bool_]:
    """Whether each visit's role is one of *roles* (a table lookup, faster than ``np.isin``)."""
    lut = np.zeros(8, dtype=bool)
    lut[list(roles)] = True
    return np.asarray(lut[role])


def in_window(
    rng: np.random.Generator,
    pidx: IntArray,
    lo: IntArray,
    hi: IntArray,
    rate_per_year: float | npt.NDArray[np.float64],
) -> tuple[IntArray, IntArray]:
    """Poisson(rate × length) days uniform on ``[lo, hi]`` for each child; empty where ``hi < lo``."""
    span = np.maximum(hi - lo + 1, 0)
    n = rng.poisson(np.asarray(rate_per_year) * span / YEAR)
    rep = np.repeat(np.arange(pidx.shape[0]), n)
    day = lo[rep] + np.floor(rng.random(rep.shape[0]) * span[rep]).astype(np.int64)
    return pidx[rep], day


def length_of_stay(rng: np.random.Generator, mean_days: float, n: int) -> IntArray:
    """Inpatient nights, log-normal with the given mean (sd of log 0.7), at least one."""
    sigma = 0.7
    los = rng.lognormal(np.log(mean_days) - sigma**2 / 2, sigma, n)
    return np.maximum(np.round(los), 1).astype(np.int64)


def make_visits(
    pidx: IntArray,
    start: IntArray,
    concept: IntArray | int,
    reason: int,
    role: int,
    stay: IntArray | None = None,
) -> Visits:
    """Visits of one stream (same-day unless *stay* nights are given)."""
    n = pidx.shape[0]
    end = start + (stay if stay is not None else 0)
    return Visits(
        pidx,
        start,
        end,
        np.broadcast_to(np.asarray(concept, dtype=np.int64), (n,)).copy(),
        np.full(n, reason, dtype=np.int8),
        np.full(n, role, dtype=np.int8),
    )


def _setting(
    rng: np.random.Generator, n: int, p_ip: float, p_er: float, los: float
) -> tuple[IntArray, IntArray]:
    """Visit concepts and nights for *n* diagnosis or episode visits."""
    u = rng.random(n)
    concept = np.where(
        u < p_ip, codes.INPATIENT, np.where(u < p_ip + p_er, codes.EMERGENCY, codes.OUTPATIENT)
    )
    stay = np.where(concept == codes.INPATIENT, length_of_stay(rng, los, n), 0)
    return concept.astype(np.int64), stay


def base_visits(rng: np.random.Generator, pop: Population, profile: HospitalProfile) -> Visits:
    """Every visit of the chunk except the ground-truth asthma admissions."""
    everyone = np.arange(pop.size, dtype=np.int64)
    parts: list[Visits] = []
    for lo_y, hi_y, op, er, ip in BACKGROUND_RATES:
        lo = np.maximum(pop.obs_start, pop.birth + int(lo_y * YEAR))
        hi = np.minimum(pop.obs_end, pop.birth + int(hi_y * YEAR) - 1)
        for kind, rate in (
            (codes.OUTPATIENT, op * profile.visit_rr),
            (codes.EMERGENCY, er),
            (codes.INPATIENT, ip * profile.inpatient_rr),
        ):
            who, day = in_window(rng, everyone, lo, hi, rate)
            stay = length_of_stay(rng, 2.0, who.shape[0]) if kind == codes.INPATIENT else None
            parts.append(make_visits(who, day, kind, -1, BACKGROUND, stay))

    for r, spec in enumerate(CONDITIONS):
        onset = pop.onset[spec.key]
        who = np.flatnonzero(onset >= 0).astype(np.int64)
        day = onset[who]
        p_ip = min(spec.p_inpatient * profile.inpatient_rr, 1.0)
        concept, stay = _setting(rng, who.shape[0], p_ip, spec.p_emergency, spec.los_days)
        parts.append(make_visits(who, day, concept, r, DIAGNOSIS, stay))
        if spec.kind == "chronic" and spec.followup_per_year > 0:
            stop = pop.obs_end[who]
            if spec.active_years is not None:
                stop = np.minimum(stop, day + int(spec.active_years * YEAR))
            f_who, f_day = in_window(rng, who, day + 1, stop, spec.followup_per_year * profile.visit_rr)
            parts.append(make_visits(f_who, f_day, codes.OUTPATIENT, r, FOLLOWUP))
        if spec.kind == "acute" and spec.extra_episodes > 0:
            stop = np.minimum(pop.obs_end[who], day + int(spec.episode_years * YEAR))
            rate = spec.extra_episodes / spec.episode_years
            e_who, e_day = in_window(rng, who, day + 14, stop, rate)
            concept, stay = _setting(rng, e_who.shape[0], p_ip, spec.p_emergency, spec.los_days)
            parts.append(make_visits(e_who, e_day, concept, r, EPISODE, stay))
        if r == ASTHMA:
            a_who, a_day = in_window(rng, who, day + 1, pop.obs_end[who], ASTHMA_ED_PER_YEAR)
            parts.append(make_visits(a_who, a_day, codes.EMERGENCY, r, EXACERBATION))
            l_who, l_day = in_window(
                rng, who, day + 366, pop.obs_end[who], ASTHMA_LATER_ADMISSIONS_PER_YEAR * profile.inpatient_rr
            )
            stay = length_of_stay(rng, 2.0, l_who.shape[0])
            parts.append(make_visits(l_who, l_day, codes.INPATIENT, r, LATER_ADMISSION, stay))
    return Visits.concat(parts)


def clip_to_observation(v: Visits, pop: Population) -> Visits:
    """Drop visits outside the child's observation period; end stays within it."""
    keep = (v.start >= pop.obs_start[v.pidx]) & (v.start <= pop.obs_end[v.pidx])
    v = v.take(np.flatnonzero(keep))
    v.end = np.minimum(v.end, pop.obs_end[v.pidx])
    return v


@dataclass
class Events:
    """Rows derived from visits: child row, visit row, concept, start day, end day (-1: none), extra int."""

    pidx: IntArray
    visit_row: IntArray
    concept: IntArray
    start: IntArray
    end: IntArray
    extra: IntArray  # days_supply for drugs, 0 otherwise

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Events)))


def _events(
    v: Visits, rows: npt.NDArray[np.intp], concept: int, end: IntArray | None = None, extra: int = 0
) -> Events:
    n = rows.shape[0]
    return Events(
        v.pidx[rows],
        rows.astype(np.int64),
        np.full(n, concept, dtype=np.int64),
        v.start[rows],
        end if end is not None else np.full(n, -1, dtype=np.int64),
        np.full(n, extra, dtype=np.int64),
    )


#: Days a condition record of an acute condition lasts.
ACUTE_DAYS = {"bronchiolitis": 14, "otitis_media": 7}


def conditions_at(v: Visits, pop: Population) -> Events:
    """One condition record per visit that has a reason; acute ones carry an end date."""
    rows = np.flatnonzero(v.reason >= 0)
    reason = v.reason[rows]
    concept = np.array([codes.CONDITION[k] or 0 for k in CONDITION_KEYS], dtype=np.int64)[reason]
    acute = np.array([ACUTE_DAYS.get(k, -1) for k in CONDITION_KEYS], dtype=np.int64)[reason]
    start = v.start[rows]
    end = np.where(acute >= 0, np.minimum(start + acute, pop.obs_end[v.pidx[rows]]), -1)
    return Events(v.pidx[rows], rows.astype(np.int64), concept, start, end, np.zeros(rows.shape[0], np.int64))


def drugs_at(rng: np.random.Generator, v: Visits, pop: Population, ics_drug: IntArray) -> Events:
    """Prescriptions at condition visits, following the condition table's drug rules.

    *ics_drug* holds, per child, the concept of the inhaled corticosteroid they were started on (0: none).
    """
    n_children = pop.size
    parts: list[Events] = []

    def add(rows: npt.NDArray[np.intp], drug: int | None, days: int) -> None:
        if drug is None:  # not in the shipped vocabulary (codes.MISSING)
            return
        end = np.minimum(v.start[rows] + days - 1, pop.obs_end[v.pidx[rows]])
        parts.append(_events(v, rows, drug, end, days))

    for r, spec in enumerate(CONDITIONS):
        mine = np.flatnonzero(v.reason == r)
        role = v.role[mine]
        since_onset = v.start[mine] - np.maximum(pop.onset[spec.key][v.pidx[mine]], 0)
        u_group = rng.random(n_children)  # one draw per child for each group of alternatives
        cum = np.zeros(n_children)
        for rule in spec.drugs:
            drug = codes.DRUG[rule.drug]
            share = (
                rule.share if rule.female_share is None else np.where(pop.male, rule.share, rule.female_share)
            )
            if rule.setting == "episode":
                rows = mine[role_in(role, DIAGNOSIS, EPISODE)]
                rows = rows[rng.random(rows.shape[0]) < rule.share]
            else:
                if rule.group:
                    lo, cum = cum, cum + share
                    chosen = (u_group >= lo) & (u_group < cum)
                else:
                    chosen = rng.random(n_children) < share
                in_phase = since_onset >= rule.start_day
                if rule.stop_day is not None:
                    in_phase &= since_onset <= rule.stop_day
                rows = mine[role_in(role, DIAGNOSIS, FOLLOWUP) & in_phase & chosen[v.pidx[mine]]]
            add(rows, drug, rule.days_supply)

    asthma = np.flatnonzero(v.reason == ASTHMA)
    role = v.role[asthma]
    controller = asthma[role_in(role, DIAGNOSIS, FOLLOWUP) & (ics_drug[v.pidx[asthma]] > 0)]
    if controller.shape[0]:
        end = np.minimum(v.start[controller] + 89, pop.obs_end[v.pidx[controller]])
        ev = _events(v, controller, 0, end, 90)
        ev.concept = ics_drug[v.pidx[controller]]
        parts.append(ev)
    acute_attack = asthma[role_in(role, EXACERBATION, OUTCOME, LATER_ADMISSION)]
    add(acute_attack, codes.DRUG["salbutamol"], 30)
    add(acute_attack, codes.DRUG["prednisolone"], 3)  # BTS/SIGN 158: 3 days of oral prednisolone
    return Events.concat(parts) if parts else _events(v, np.zeros(0, np.intp), 0)


def procedures_at(rng: np.random.Generator, v: Visits) -> Events:
    """Diagnostic and treatment procedures at diagnosis visits (oxygen only for admitted children)."""
    parts = []
    for r, spec in enumerate(CONDITIONS):
        base = (v.reason == r) & (v.role == DIAGNOSIS)
        for key, p in spec.procedures:
            concept = codes.PROCEDURE[key]
            if concept is None:  # not in the shipped vocabulary (codes.MISSING)
                continue
            mask = base & (v.concept == codes.INPATIENT) if key == "oxygen_therapy" else base
            rows = np.flatnonzero(mask)
            rows = rows[rng.random(rows.shape[0]) < p]
            parts.append(_events(v, rows, concept))
    nebuliser = codes.PROCEDURE["nebuliser"]
    if nebuliser is not None:  # BTS/SIGN 158: nebulised bronchodilator for severe attacks
        rows = np.flatnonzero((v.reason == ASTHMA) & role_in(v.role, OUTCOME, LATER_ADMISSION))
        parts.append(_events(v, rows[rng.random(rows.shape[0]) < 0.5], nebuliser))
    return Events.concat(parts) if parts else _events(v, np.zeros(0, np.intp), 0)
