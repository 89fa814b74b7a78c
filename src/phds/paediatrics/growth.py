"""Growth SDS and centiles against the UK-WHO reference, through RCPCH's ``rcpchgrowth``.

Two ways in:

* **scalar** :func:`sds` / :func:`centile` call ``rcpchgrowth.sds_for_measurement`` with the
  ``"uk-who"`` reference, on rcpchgrowth's decimal age (days / 365.25) corrected for gestation
  exactly as its ``Measurement`` class does for UK-WHO (every gestation, term included, shifts the
  age by ``(280 - gestation in days) / 365.25``).
* **vectorised** :func:`lms`, :func:`sds_from_value`, :func:`value_from_sds` for millions of rows.
  The L, M and S tables are read once from rcpchgrowth's own reference data
  (``select_reference_data_for_uk_who_chart``) and interpolated per age with rcpchgrowth's own
  scheme: the tabulated value on an exact age match (to 4 decimals), otherwise 4-point Lagrange
  cubic interpolation, linear next to a table end. SDS and values then follow the LMS method
  (Cole 1990, Eur J Clin Nutr 44:45-60; Cole & Green 1992, Stat Med 11:1305-19):
  ``z = ((y/M)**L - 1) / (L*S)`` (``log(y/M)/S`` when L = 0) and ``y = M * (1 + L*S*z)**(1/L)``.

UK-WHO (Wright et al., BMJ 2010;340:c1140) joins four tables, chosen by (corrected) decimal age:
UK90 preterm (23 weeks gestation to 2 weeks after term), WHO 2006 under-2s (lengths), WHO 2006
2-4 years (standing heights), UK90 4-20 years.

Out of range, explicitly: ages with no reference give **NaN**, exactly where rcpchgrowth
raises ``LookupError``: below 23 weeks gestation (25 weeks for length), BMI before 2 weeks after
term, above 20 years, head circumference (OFC) above 18 y in boys and 17 y in girls. NaN ages,
values that are not positive, unknown sex and ``1 + L*S*z <= 0`` give NaN too.

Heights under 2 years are **supine lengths**: the UK-WHO under-2 reference is WHO length, and
the 2-year join steps by about 0.7 cm (WHO MGRS: length exceeds height by about 0.7 cm). Generated
"heights" under 2 years are lengths; a standing height under 2 years reads slightly short.

Sex coding: ``"male"``/``"female"`` (as rcpchgrowth), ISO/IEC 5218 codes 1 (male) / 2 (female),
or OMOP gender concepts 8507 (MALE) / 8532 (FEMALE). Codes for not known / not applicable
(ISO 0 and 9; OMOP 0, 8551 UNKNOWN, 8521 OTHER, 8570 AMBIGUOUS) and missing values give NaN;
any other value raises :class:`~phds.errors.InputError`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
import rcpchgrowth
from rcpchgrowth import constants as rc

from phds.errors import InputError

__all__ = [
    "MEASUREMENTS",
    "UNITS",
    "Measurement",
    "centile",
    "corrected_age_years",
    "lms",
    "sds",
    "sds_from_value",
    "value_from_sds",
]

Measurement = Literal["weight", "height", "bmi", "ofc"]
MEASUREMENTS: tuple[str, ...] = get_args(Measurement)
UNITS = {"weight": "kg", "height": "cm", "bmi": "kg/m²", "ofc": "cm"}
SEXES = ("male", "female")
FloatArray = npt.NDArray[np.float64]

_MALE_CODES = (1, 8507)
_FEMALE_CODES = (2, 8532)
_UNKNOWN_CODES = (0, 9, 8551, 8521, 8570)
# UK-WHO tables and the decimal ages where the next one starts (rcpchgrowth.uk_who.uk_who_reference)
_TABLES = (rc.UK90_PRETERM, rc.UK_WHO_INFANT, rc.UK_WHO_CHILD, rc.UK90_CHILD)
_STARTS = np.array(
    [rc.UK_WHO_INFANT_LOWER_THRESHOLD, rc.WHO_CHILD_LOWER_THRESHOLD, rc.WHO_CHILDREN_UPPER_THRESHOLD]
)


@dataclass(frozen=True)
class _Table:
    ages: FloatArray
    rounded: FloatArray  # ages to 4 decimals, rcpchgrowth's exact-match test
    lms: FloatArray  # shape (3, n): L, M, S


def _measurement(measurement: str) -> str:
    if measurement not in MEASUREMENTS:
        raise InputError(
            f"unknown measurement {measurement!r}; one of {', '.join(MEASUREMENTS)}", field="measurement"
        )
    return measurement


@functools.cache
def _tables(measurement: str, sex: str) -> tuple[_Table, ...]:
    """The four UK-WHO LMS tables for a measurement and sex, from rcpchgrowth (empty when absent)."""
    tables = []
    for name in _TABLES:
        rows = rcpchgrowth.select_reference_data_for_uk_who_chart(name, measurement, sex)
        rows = [r for r in rows if "" not in (r["L"], r["M"], r["S"])]  # UK90 preterm has no BMI
        ages = np.array([r["decimal_age"] for r in rows], dtype=np.float64)
        lms_ = np.array([[r["L"], r["M"], r["S"]] for r in rows], dtype=np.float64).T.reshape(3, -1)
        tables.append(_Table(ages, np.round(ages, 4), lms_))
    return tuple(tables)


def _age_range(measurement: str, sex: str) -> tuple[float, float]:
    """Ages with reference data (rcpchgrowth.uk_who.reference_data_absent), both ends included."""
    low = {"height": rc.TWENTY_FIVE_WEEKS_GESTATION, "bmi": rc.FORTY_TWO_WEEKS_GESTATION}.get(
        measurement, rc.UK90_REFERENCE_LOWER_THRESHOLD
    )
    high = float(rc.UK90_UPPER_THRESHOLD)
    if measurement == "ofc":
        high = rc.EIGHTEEN_YEARS if sex == "male" else rc.SEVENTEEN_YEARS
    return float(low), high


def _interpolate(table: _Table, age: FloatArray) -> FloatArray:
    """rcpchgrowth.global_functions.fetch_lms, vectorised; ages are clamped to the table's span."""
    n = table.ages.size
    x = np.clip(age, table.ages[0], table.ages[-1])  # only the < 1 day gaps at the 2-year join
    rx = np.round(x, 4)
    j = np.minimum(np.searchsorted(table.rounded, rx), n - 1)
    exact = table.rounded[j] == rx
    i = np.clip(np.searchsorted(table.ages, x, side="left") - 1, 0, n - 2)  # last age below x
    a1, a2 = table.ages[i], table.ages[i + 1]
    p1, p2 = table.lms[:, i], table.lms[:, i + 1]
    out = p1 + (p2 - p1) * (x - a1) / (a2 - a1)
    cubic = (i >= 1) & (i < n - 2)
    if cubic.any():
        k = i[cubic]
        t = x[cubic]
        a0, a1c, a2c, a3 = (table.ages[k + d] for d in (-1, 0, 1, 2))
        q0, q1, q2, q3 = (table.lms[:, k + d] for d in (-1, 0, 1, 2))
        w0 = (t - a1c) * (t - a2c) * (t - a3) / ((a0 - a1c) * (a0 - a2c) * (a0 - a3))
        w1 = (t - a0) * (t - a2c) * (t - a3) / ((a1c - a0) * (a1c - a2c) * (a1c - a3))
        w2 = (t - a0) * (t - a1c) * (t - a3) / ((a2c - a0) * (a2c - a1c) * (a2c - a3))
        w3 = (t - a0) * (t - a1c) * (t - a2c) / ((a3 - a0) * (a3 - a1c) * (a3 - a2c))
        out[:, cubic] = q0 * w0 + q1 * w1 + q2 * w2 + q3 * w3
    out[:, exact] = table.lms[:, j[exact]]
    return out


def _sex_index(sex: Any) -> npt.NDArray[np.int8]:
    """0 male, 1 female, -1 not known (see the module docstring for the accepted codes)."""
    if hasattr(sex, "to_numpy"):
        sex = sex.to_numpy()
    arr = np.asarray(sex)
    out = np.full(arr.shape, -1, dtype=np.int8)
    if arr.dtype.kind in "iu":
        out[np.isin(arr, _MALE_CODES)] = 0
        out[np.isin(arr, _FEMALE_CODES)] = 1
        bad = (out < 0) & ~np.isin(arr, _UNKNOWN_CODES)
    elif arr.dtype.kind in "UO":
        out[arr == "male"] = 0
        out[arr == "female"] = 1
        bad = (out < 0) & ~pd.isna(arr)  # None / NaN / pd.NA are missing, not wrong
    else:
        raise InputError(f"sex must be 'male'/'female' or integer codes, got dtype {arr.dtype}", field="sex")
    if bad.any():
        raise InputError(f"unknown sex value {arr[bad].flat[0]!r}; use 'male'/'female' or 1/2", field="sex")
    return out


def lms(measurement: Measurement, sex: Any, age_years: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """UK-WHO L, M and S at each decimal age (already corrected for gestation when wanted).

    ``sex`` and ``age_years`` broadcast against each other (a single ``"female"`` is fine).
    NaN where there is no reference (see the module docstring).
    """
    m = _measurement(measurement)
    sex_idx, age = np.broadcast_arrays(_sex_index(sex), np.asarray(age_years, dtype=np.float64))
    shape = age.shape
    sex_idx, age = sex_idx.ravel(), age.ravel()
    out = np.full((3, age.size), np.nan)
    segment = np.searchsorted(_STARTS, age, side="right")
    for k, sex_name in enumerate(SEXES):
        low, high = _age_range(m, sex_name)
        with np.errstate(invalid="ignore"):
            ok = (sex_idx == k) & (age >= low) & (age <= high)
        for s, table in enumerate(_tables(m, sex_name)):
            chosen = ok & (segment == s)
            if chosen.any() and table.ages.size:
                out[:, chosen] = _interpolate(table, age[chosen])
    return out[0].reshape(shape), out[1].reshape(shape), out[2].reshape(shape)


def sds_from_value(measurement: Measurement, sex: Any, age_years: Any, value: Any) -> FloatArray:
    """SDS of each measurement value (units: see ``UNITS``) by the LMS method; NaN when undefined."""
    big_l, big_m, big_s = lms(measurement, sex, age_years)
    y = np.asarray(value, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(y > 0, y, np.nan)
        ratio = y / big_m
        z = np.where(big_l == 0, np.log(ratio) / big_s, (ratio**big_l - 1) / (big_l * big_s))
    return np.asarray(z, dtype=np.float64)


def value_from_sds(measurement: Measurement, sex: Any, age_years: Any, sds: Any) -> FloatArray:
    """Measurement value at each SDS by the LMS method; NaN where ``1 + L*S*z <= 0``."""
    big_l, big_m, big_s = lms(measurement, sex, age_years)
    z = np.asarray(sds, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        base = 1 + big_l * big_s * z
        power = np.where(base > 0, base, np.nan) ** (1 / big_l)
        y = np.where(big_l == 0, big_m * np.exp(big_s * z), big_m * power)
    return np.asarray(y, dtype=np.float64)


def corrected_age_years(age_years: Any, gestation_weeks: Any = 40, gestation_days: Any = 0) -> Any:
    """Decimal age corrected for gestation as rcpchgrowth does: ``age - (280 - gestation) / 365.25``."""
    gestation = np.asarray(gestation_weeks) * 7 + np.asarray(gestation_days)
    return np.asarray(age_years, dtype=np.float64) - (rc.TERM_PREGNANCY_LENGTH_DAYS - gestation) / 365.25


def _clamp_to_table(measurement: str, sex: str, age: float) -> float:
    """Move an age in a < 1 day gap at a table join onto the table (rcpchgrowth raises there)."""
    table = _tables(measurement, sex)[int(np.searchsorted(_STARTS, age, side="right"))]
    if not table.ages.size:
        return age
    return float(min(max(age, table.ages[0]), table.ages[-1]))


def sds(
    measurement: Measurement,
    value: float,
    sex: Literal["male", "female"],
    age_years: float,
    *,
    gestation_weeks: int = 40,
    gestation_days: int = 0,
) -> float:
    """UK-WHO SDS of one measurement by rcpchgrowth, at chronological decimal age ``age_years``.

    The age is corrected for the gestation at birth (``gestation_weeks`` + ``gestation_days``).
    Returns NaN where UK-WHO has no reference for this age, measurement and sex.
    """
    m = _measurement(measurement)
    if sex not in SEXES:
        raise InputError(f"sex must be 'male' or 'female', got {sex!r}", field="sex")
    if not (rc.MINIMUM_GESTATION_WEEKS <= gestation_weeks <= rc.MAXIMUM_GESTATION_WEEKS):
        raise InputError(f"gestation of {gestation_weeks} weeks is implausible", field="gestation_weeks")
    if not 0 <= gestation_days <= 6:
        raise InputError(f"gestation days must be 0-6, got {gestation_days}", field="gestation_days")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"a {m} must be a positive number, got {value!r}", field="value")
    if not math.isfinite(age_years) or age_years < 0:
        raise InputError(f"age must be a non-negative number of years, got {age_years!r}", field="age_years")
    age = float(corrected_age_years(age_years, gestation_weeks, gestation_days))
    low, high = _age_range(m, sex)
    if not low <= age <= high:
        return math.nan
    try:
        z = rcpchgrowth.sds_for_measurement(
            reference=rc.UK_WHO,
            age=_clamp_to_table(m, sex, age),
            measurement_method=m,
            observation_value=float(value),
            sex=sex,
        )
    except LookupError:  # rcpchgrowth: no reference data for this age
        return math.nan
    return float(z)


def centile(
    measurement: Measurement,
    value: float,
    sex: Literal["male", "female"],
    age_years: float,
    *,
    gestation_weeks: int = 40,
    gestation_days: int = 0,
) -> float:
    """UK-WHO centile (0-100) of one measurement: ``rcpchgrowth.centile`` of :func:`sds`."""
    z = sds(
        measurement, value, sex, age_years, gestation_weeks=gestation_weeks, gestation_days=gestation_days
    )
    return math.nan if math.isnan(z) else float(rcpchgrowth.centile(z))
