"""Implausible growth measurements: DQD ``plausibleValueLow``/``plausibleValueHigh``, the paediatric way.

Weight, height (or length), BMI and head circumference (OFC) are found by LOINC code through the
concept table (29463-7 and 3141-9 body weight; 8302-2 and 8306-3 body height/length; 39156-5 BMI;
9843-4 and 8287-5 head circumference), so the check works on any CDM with its vocabulary; without
those concepts it falls back to the ids of :mod:`phds.omop.vocabulary.concepts` (3025315, 3036277,
3038553, 3000053).

- **Children** (under 18 years at the measurement, ICH E11) are read as SDS against UK-WHO through
  :func:`phds.paediatrics.growth.sds_from_value`. A value is implausible when its SDS is outside the WHO
  flag limits for biologically implausible values: weight-for-age below -6 or above +5, length/height-
  for-age below -6 or above +6, BMI-for-age below -5 or above +5 (WHO, "Recommendations for data
  collection, analysis and reporting on anthropometric indicators in children under 5 years old", 2019,
  and the WHO Anthro / igrowup flagging rules); head circumference uses ±5 like BMI. Rows without a
  reference (sex unknown, OFC beyond 17/18 y, BMI in the first two weeks) are not counted.
- **Adults** are checked against absolute bounds beyond which a value is almost surely an error (PHDS
  choice, outside recorded human extremes: weight 20-350 kg, height 100-250 cm, BMI 10-100 kg/m², OFC
  40-70 cm).

Values are converted to kg, cm and kg/m² from the unit concept (UCUM code through the concept table) or,
when it is 0 or NULL, from ``unit_source_value``; rows in other units are not counted.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from phds.omop.quality import CheckResult, result
from phds.omop.vocabulary import concepts as vc
from phds.paediatrics.age import ibis_age_days
from phds.paediatrics.growth import Measurement, sds_from_value

log = logging.getLogger(__name__)

LOINC: dict[Measurement, tuple[str, ...]] = {
    "weight": ("29463-7", "3141-9"),
    "height": ("8302-2", "8306-3"),
    "bmi": ("39156-5",),
    "ofc": ("9843-4", "8287-5"),
}
FALLBACK_CONCEPTS: dict[int, Measurement] = {
    vc.BODY_WEIGHT: "weight",
    vc.BODY_HEIGHT: "height",
    vc.BMI: "bmi",
    vc.HEAD_CIRCUMFERENCE: "ofc",
}
#: Conversion to kg, cm or kg/m² by UCUM code.
FACTORS: dict[str, dict[str, float]] = {
    "weight": {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237},
    "height": {"cm": 1.0, "mm": 0.1, "m": 100.0, "[in_i]": 2.54},
    "bmi": {"kg/m2": 1.0},
    "ofc": {"cm": 1.0, "mm": 0.1, "m": 100.0, "[in_i]": 2.54},
}
#: UCUM unit concepts (g, mm, m and [in_i] as in Synthea27Nj's concept table), when the CDM lacks them.
FALLBACK_UNITS = {
    vc.UNIT_KG: "kg",
    8504: "g",
    vc.UNIT_CM: "cm",
    8588: "mm",
    9546: "m",
    9327: "[in_i]",
    vc.UNIT_KG_PER_M2: "kg/m2",
}
WHO_SDS_LIMITS = {"weight": (-6.0, 5.0), "height": (-6.0, 6.0), "bmi": (-5.0, 5.0), "ofc": (-5.0, 5.0)}
ADULT_BOUNDS = {"weight": (20.0, 350.0), "height": (100.0, 250.0), "bmi": (10.0, 100.0), "ofc": (40.0, 70.0)}
CHILD_BELOW_YEARS = 18
THRESHOLD_PERCENT = 1.0


def _measurement_concepts(con: Any, with_concepts: bool) -> dict[int, Measurement]:
    if with_concepts:
        c = con.table("concept")
        codes = {code: name for name, cs in LOINC.items() for code in cs}
        rows = (
            c.filter((c.vocabulary_id == "LOINC") & c.concept_code.isin(list(codes)))
            .select("concept_id", "concept_code")
            .to_pyarrow()
            .to_pylist()
        )
        found = {int(r["concept_id"]): codes[r["concept_code"]] for r in rows}
        if found:
            return found
    return dict(FALLBACK_CONCEPTS)


def _unit_codes(con: Any, with_concepts: bool) -> dict[int, str]:
    units = dict(FALLBACK_UNITS)
    if with_concepts:
        c = con.table("concept")
        wanted = sorted({code for f in FACTORS.values() for code in f})
        rows = c.filter((c.vocabulary_id == "UCUM") & c.concept_code.isin(wanted)).select(
            "concept_id", "concept_code"
        )
        units.update({int(r["concept_id"]): r["concept_code"] for r in rows.to_pyarrow().to_pylist()})
    return units


def _rows(con: Any, concepts: dict[int, Measurement]) -> pd.DataFrame:
    from phds.omop.profile import birth_date

    m, p = con.table("measurement"), con.table("person")
    m = m.filter(m.measurement_concept_id.isin(list(concepts)) & m.value_as_number.notnull())
    j = m.join(p, m.person_id == p.person_id)
    days = ibis_age_days(birth_date(j), j.measurement_date)
    out = j.select(
        concept=j.measurement_concept_id,
        value=j.value_as_number,
        unit=j.unit_concept_id,
        unit_source=j.unit_source_value,
        sex=j.gender_concept_id,
        days=days,
    )
    frame: pd.DataFrame = out.to_pandas()
    return frame


def growth_checks(con: Any, filled: bool) -> list[CheckResult]:
    """``plausibleValueLow`` and ``plausibleValueHigh`` for weight, height, BMI and OFC.

    *con* is the store's ibis backend; *filled* says whether measurement and person hold rows.
    """
    names = list(LOINC)
    if not filled:
        return [_result(n, side, 0, 0, "no measurements") for n in names for side in ("Low", "High")]
    with_concepts = bool(con.table("concept").count().execute())
    concepts = _measurement_concepts(con, with_concepts)
    units = _unit_codes(con, with_concepts)
    df = _rows(con, concepts)
    out: list[CheckResult] = []
    for name in names:
        part = df[df["concept"].map(concepts) == name]
        low, high, checked = _flags(name, part, units)
        out.append(_result(name, "Low", low, checked))
        out.append(_result(name, "High", high, checked))
    return out


def _flags(name: Measurement, df: pd.DataFrame, units: dict[int, str]) -> tuple[int, int, int]:
    """Implausibly low and high rows, and rows checked, for one measurement."""
    if df.empty:
        return 0, 0, 0
    factors = FACTORS[name]
    code = df["unit"].map(lambda u: units.get(int(u)) if pd.notna(u) and int(u) != 0 else None)
    source = df["unit_source"].map(lambda s: s.strip() if isinstance(s, str) else None)
    code = code.where(code.isin(list(factors)), source)
    factor = code.map(lambda c: factors.get(c, np.nan) if isinstance(c, str) else np.nan).astype(float)
    value = df["value"].astype(float) * factor
    days = pd.to_numeric(df["days"], errors="coerce").astype(float)
    years = days / 365.25
    known = value.notna() & days.notna()
    child = known & (years < CHILD_BELOW_YEARS)
    adult = known & (years >= CHILD_BELOW_YEARS)
    lo_sds, hi_sds = WHO_SDS_LIMITS[name]
    sds = pd.Series(np.nan, index=df.index)
    if child.any():
        sds[child] = sds_from_value(
            name, df.loc[child, "sex"].to_numpy(), years[child].to_numpy(), value[child].to_numpy()
        )
    scored = child & sds.notna()
    lo_abs, hi_abs = ADULT_BOUNDS[name]
    low = int((scored & (sds < lo_sds)).sum() + (adult & (value < lo_abs)).sum())
    high = int((scored & (sds > hi_sds)).sum() + (adult & (value > hi_abs)).sum())
    return low, high, int(scored.sum() + adult.sum())


def _result(name: str, side: str, failing: int, checked: int, note: str | None = None) -> CheckResult:
    lo_sds, hi_sds = WHO_SDS_LIMITS[name]
    lo_abs, hi_abs = ADULT_BOUNDS[name]
    if side == "Low":
        desc = f"{name}: child SDS below {lo_sds:+g} (UK-WHO) or adult value below {lo_abs:g}"
    else:
        desc = f"{name}: child SDS above {hi_sds:+g} (UK-WHO) or adult value above {hi_abs:g}"
    return result(
        f"plausibleValue{side}",
        "measurement",
        f"value_as_number[{name}]",
        desc,
        failing,
        checked,
        THRESHOLD_PERCENT,
        note=note,
    )


__all__ = ["ADULT_BOUNDS", "LOINC", "WHO_SDS_LIMITS", "growth_checks"]
