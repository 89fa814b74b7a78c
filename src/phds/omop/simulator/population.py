"""Children of one chunk: sex, birth dates, condition onsets, observation periods and deaths.

All dates are integer days since 1970-01-01 (``-1``: none). Every child is 0–17 years old at the
reference date: births fall in the 18 years up to and including it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from phds.omop.simulator import codes
from phds.omop.simulator.casemix import (
    CONDITION_KEYS,
    MALE_SHARE,
    MAX_AGE_YEARS,
    HospitalProfile,
    condition,
    risk_at_age,
    sample_onset_days,
)

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
EPOCH = date(1970, 1, 1)

#: Infant (first-year) death probability of a child without the modelled conditions. With prematurity
#: and CHD as modelled this gives ~3.6 deaths per 1000 live births (ONS, Child and infant mortality in
#: England and Wales 2021: 3.6 per 1000).
INFANT_DEATH_BASE = 0.0025
#: Yearly death hazard from age 1 to 17 (ONS 2021: ~10-15 deaths per 100,000 children a year).
CHILD_DEATH_HAZARD = 0.00012

#: Relative RSV bronchiolitis activity by calendar month, Jan..Dec (UKHSA RSV surveillance: the season
#: runs from October to March and peaks in December).
RSV_MONTH_WEIGHT = np.array([0.8, 0.45, 0.25, 0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.4, 0.9, 1.0])


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def years_before(d: date, years: int) -> date:
    """The same calendar day *years* earlier; 29 February falls back to 28 February."""
    try:
        return d.replace(year=d.year - years)
    except ValueError:
        return d.replace(year=d.year - years, day=28)


@dataclass
class Population:
    """One chunk of children, as parallel arrays."""

    person_id: IntArray
    male: npt.NDArray[np.bool_]
    birth: IntArray
    obs_start: IntArray
    obs_end: IntArray
    death: IntArray
    #: index into CONDITION_KEYS of the cause of death; -1 when none or not a modelled condition
    death_cause: npt.NDArray[np.int64]
    #: condition key -> onset day (-1: never)
    onset: dict[str, IntArray]

    @property
    def size(self) -> int:
        return int(self.person_id.shape[0])


def _seasonal_onset(key: str, rng: np.random.Generator, birth: IntArray, age_days: IntArray) -> IntArray:
    """Onset ages redrawn until their calendar month passes a thinning by RSV activity."""
    onset = sample_onset_days(key, rng, age_days)
    pending = np.arange(onset.shape[0])
    for _ in range(25):
        months = (birth[pending] + onset[pending]).astype("datetime64[D]").astype("datetime64[M]")
        month_idx = months.astype(np.int64) % 12
        accept = rng.random(pending.shape[0]) < RSV_MONTH_WEIGHT[month_idx]
        pending = pending[~accept]
        if pending.shape[0] == 0:
            break
        onset[pending] = sample_onset_days(key, rng, age_days[pending])
    return onset


def make_population(
    rng: np.random.Generator, n: int, first_person_id: int, profile: HospitalProfile, reference: date
) -> Population:
    """Draw *n* children of *profile*'s hospital, observed up to *reference* (or death)."""
    ref = day_number(reference)
    earliest_birth = day_number(years_before(reference, MAX_AGE_YEARS)) + 1
    male = rng.random(n) < MALE_SHARE
    age = rng.integers(0, ref - earliest_birth + 1, size=n, dtype=np.int64)
    birth = ref - age

    onset: dict[str, IntArray] = {}
    for key in CONDITION_KEYS:
        has = rng.random(n) < risk_at_age(key, profile.rr(key), age, male)
        if codes.CONDITION[key] is None:  # not in the shipped vocabulary: cannot be recorded
            has[:] = False
        days = np.full(n, -1, dtype=np.int64)
        idx = np.flatnonzero(has)
        if condition(key).seasonal:
            days[idx] = birth[idx] + _seasonal_onset(key, rng, birth[idx], age[idx])
        else:
            days[idx] = birth[idx] + sample_onset_days(key, rng, age[idx])
        onset[key] = days

    # First contact: birth, or (late entrants) a random day - but never after a modelled condition began,
    # since that condition is why a child comes to the hospital.
    late = rng.random(n) < profile.late_entry
    entry = birth + np.where(late, np.floor(rng.random(n) * (age + 1)).astype(np.int64), 0)
    for days in onset.values():
        entry = np.where(days >= 0, np.minimum(entry, days), entry)

    death, cause = _deaths(rng, birth, entry, ref, onset)
    obs_end = np.where(death >= 0, death, ref)
    for key, days in onset.items():
        onset[key] = np.where(days > obs_end, -1, days)
    return Population(
        person_id=np.arange(first_person_id, first_person_id + n, dtype=np.int64),
        male=male,
        birth=birth,
        obs_start=entry,
        obs_end=obs_end,
        death=death,
        death_cause=cause,
        onset=onset,
    )


def _deaths(
    rng: np.random.Generator, birth: IntArray, entry: IntArray, ref: int, onset: dict[str, IntArray]
) -> tuple[IntArray, IntArray]:
    """Death day (-1: alive at *ref*) and cause (condition index, -1); competing risks, the earliest wins."""
    n = birth.shape[0]
    death = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    cause = np.full(n, -1, dtype=np.int64)

    def compete(occurs: npt.NDArray[np.bool_], day: IntArray, key: int) -> None:
        nonlocal death
        take = occurs & (day < death) & (day <= ref)
        death = np.where(take, day, death)
        cause[take] = key

    # First year: most infant deaths are neonatal, so the age at death is skewed towards birth.
    # The cause is the condition with the largest hazard ratio; death never precedes its onset.
    hr = np.ones(n)
    main = np.full(n, -1, dtype=np.int64)
    main_onset = birth.copy()
    top = np.ones(n)
    for k, (key, days) in enumerate(onset.items()):
        spec = condition(key)
        if spec.infant_death_hr != 1.0:
            affected = (days >= 0) & (days - birth < 365)
            bigger = affected & (spec.infant_death_hr > top)
            main = np.where(bigger, k, main)
            main_onset = np.where(bigger, days, main_onset)
            top = np.where(affected, np.maximum(top, spec.infant_death_hr), top)
            hr = np.where(affected, hr * spec.infant_death_hr, hr)
    age_at_death = np.floor(365 * rng.random(n) ** 3).astype(np.int64)
    day = np.maximum.reduce([birth + age_at_death, entry, main_onset])
    occurs = (rng.random(n) < INFANT_DEATH_BASE * hr) & (day < birth + 365) & (day <= ref)
    death = np.where(occurs, day, death)
    cause = np.where(occurs, main, cause)

    # From age one: background hazard, then each condition's extra hazard for its risk window.
    start = np.maximum(birth + 365, entry)
    years = np.maximum(ref - start, 0) / 365.25
    occurs = rng.random(n) < 1 - np.exp(-CHILD_DEATH_HAZARD * years)
    compete(occurs, start + np.floor(rng.random(n) * years * 365.25).astype(np.int64), -1)
    for k, (key, days) in enumerate(onset.items()):
        spec = condition(key)
        if spec.death_hazard <= 0:
            continue
        at_risk = days >= 0
        lo = np.maximum(days, start)
        span = np.clip(np.minimum(days + spec.death_years * 365.25, ref) - lo, 0, None) / 365.25
        occurs = at_risk & (rng.random(n) < 1 - np.exp(-spec.death_hazard * span))
        compete(occurs, lo + np.floor(rng.random(n) * span * 365.25).astype(np.int64), k)
    died = death <= ref
    return np.where(died, death, -1), cause
