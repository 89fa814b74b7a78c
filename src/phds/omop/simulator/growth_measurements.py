"""Anthropometry, HbA1c and sweat-test measurements at visits.

Growth is generated as UK-WHO SDS (Wright et al. 2010, BMJ 340:c1140) and turned into values with
:func:`phds.paediatrics.growth.value_from_sds`. Each child has a latent height, BMI and head
circumference SDS, correlated with each other, that tracks over time: the SDS at a visit is
``sqrt(1 - v) * latent + sqrt(v) * noise`` (v = 0.1 height, 0.2 BMI, 0.15 OFC), so the marginal SDS is
N(0, 1). After obesity onset a child's BMI SDS sits at its own obese level (mean +2.6, at least +2.1;
UK clinical obesity cut-off is the 98th centile, SDS +2.05; NICE CG189). Heights under 2 years are
lengths. HbA1c (%, DCCT) of children with type 1 diabetes: ~10.5% at diagnosis, then a child-level mean
around 7.8% (NPDA 2022/23: national median 58.6 mmol/mol = 7.5%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from phds.omop.simulator.codes import FEMALE, MALE
from phds.paediatrics.growth import value_from_sds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Correlation of latent height, BMI and OFC SDS (illustrative: taller children have larger heads).
LATENT_CORR = np.array([[1.0, 0.2, 0.5], [0.2, 1.0, 0.2], [0.5, 0.2, 1.0]])
NOISE_SHARE = {"height": 0.10, "bmi": 0.20, "ofc": 0.15}
#: BMI is undefined in UK-WHO before 2 weeks after term; OFC is measured in the first two years.
MIN_BMI_AGE_YEARS = 15 / 365.25
MAX_OFC_AGE_YEARS = 2.0
DAYS_PER_YEAR = 365.25


@dataclass
class GrowthLatent:
    """Per-child latent SDS (rows of one chunk) and the obese BMI SDS level."""

    height: FloatArray
    bmi: FloatArray
    ofc: FloatArray
    obese_bmi: FloatArray
    hba1c_mean: FloatArray


def draw_latent(rng: np.random.Generator, n: int) -> GrowthLatent:
    """Latent SDS of *n* children."""
    z = rng.standard_normal((n, 3)) @ np.linalg.cholesky(LATENT_CORR).T
    obese = np.maximum(rng.normal(2.6, 0.4, n), 2.1)
    hba1c = rng.normal(7.8, 0.9, n)
    return GrowthLatent(z[:, 0].copy(), z[:, 1].copy(), z[:, 2].copy(), obese, hba1c)


@dataclass
class Measurements:
    """Measurement rows: child row, visit row (in the chunk's visit arrays), concept key, day, value."""

    pidx: IntArray
    visit_row: IntArray
    kind: npt.NDArray[np.int8]  # index into KINDS
    day: IntArray
    value: FloatArray

    @staticmethod
    def concat(parts: list[Measurements]) -> Measurements:
        return Measurements(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("pidx", "visit_row", "kind", "day", "value")
            )
        )


KINDS = ("weight", "height", "bmi", "ofc", "hba1c", "sweat_test")


def _sds(latent: FloatArray, share: float, rng: np.random.Generator) -> FloatArray:
    noise = rng.standard_normal(latent.shape[0])
    return np.asarray(np.sqrt(1 - share) * latent + np.sqrt(share) * noise, dtype=np.float64)


def growth_at(
    rng: np.random.Generator,
    lat: GrowthLatent,
    male: npt.NDArray[np.bool_],
    birth: IntArray,
    obesity_onset: IntArray,
    pidx: IntArray,
    visit_row: IntArray,
    day: IntArray,
    weight_only: npt.NDArray[np.bool_],
) -> Measurements:
    """Weight, length/height, BMI (from 2 weeks) and OFC (under 2 years) at each measured visit.

    Rows with ``weight_only`` (emergency visits: weighed for drug dosing) get just a weight.
    """
    age = (day - birth[pidx]) / DAYS_PER_YEAR
    sex = np.where(male[pidx], MALE, FEMALE)
    z_h = _sds(lat.height[pidx], NOISE_SHARE["height"], rng)
    z_b = _sds(lat.bmi[pidx], NOISE_SHARE["bmi"], rng)
    onset = obesity_onset[pidx]
    obese = (onset >= 0) & (day >= onset)
    z_b = np.where(obese, lat.obese_bmi[pidx] + 0.15 * rng.standard_normal(pidx.shape[0]), z_b)
    z_o = _sds(lat.ofc[pidx], NOISE_SHARE["ofc"], rng)

    height = np.round(value_from_sds("height", sex, age, z_h), 1)
    has_bmi = age >= MIN_BMI_AGE_YEARS
    weight = np.full(age.shape[0], np.nan)
    bmi_raw = value_from_sds("bmi", sex[has_bmi], age[has_bmi], z_b[has_bmi])
    weight[has_bmi] = bmi_raw * (height[has_bmi] / 100) ** 2
    # Newborns (no BMI reference yet): weight-for-age SDS from the same latents.
    young = np.flatnonzero(~has_bmi)
    z_w = (lat.height[pidx[young]] + lat.bmi[pidx[young]]) / np.sqrt(2 + 2 * LATENT_CORR[0, 1])
    weight[young] = value_from_sds("weight", sex[young], age[young], z_w)
    weight = np.round(weight, 2)
    bmi = np.round(weight / (height / 100) ** 2, 2)
    infant = age < MAX_OFC_AGE_YEARS
    ofc = np.full(age.shape[0], np.nan)
    ofc[infant] = np.round(value_from_sds("ofc", sex[infant], age[infant], z_o[infant]), 1)

    full = ~weight_only
    parts = [
        (np.ones_like(full), 0, weight),
        (full, 1, height),
        (full & has_bmi, 2, bmi),
        (full & infant, 3, ofc),
    ]
    out = []
    for mask, kind, values in parts:
        keep = mask & np.isfinite(values)
        out.append(
            Measurements(
                pidx[keep],
                visit_row[keep],
                np.full(int(keep.sum()), kind, dtype=np.int8),
                day[keep],
                values[keep],
            )
        )
    return Measurements.concat(out)


def hba1c_at(
    rng: np.random.Generator,
    lat: GrowthLatent,
    pidx: IntArray,
    visit_row: IntArray,
    day: IntArray,
    at_diagnosis: npt.NDArray[np.bool_],
) -> Measurements:
    """HbA1c (%) at diabetes visits: high at diagnosis, then around the child's own mean."""
    value = np.where(
        at_diagnosis,
        rng.normal(10.5, 1.5, pidx.shape[0]),
        lat.hba1c_mean[pidx] + rng.normal(0.0, 0.5, pidx.shape[0]),
    )
    value = np.round(np.clip(value, 5.0, 16.0), 1)
    return Measurements(pidx, visit_row, np.full(pidx.shape[0], 4, dtype=np.int8), day, value)


def sweat_test_at(
    rng: np.random.Generator, pidx: IntArray, visit_row: IntArray, day: IntArray
) -> Measurements:
    """Sweat chloride (mmol/L) at cystic fibrosis diagnosis: >= 60 is diagnostic (Farrell et al. 2017,
    J Pediatr 181S:S4); values around 100 are typical."""
    value = np.round(np.clip(rng.normal(100.0, 15.0, pidx.shape[0]), 60.0, 150.0))
    return Measurements(pidx, visit_row, np.full(pidx.shape[0], 5, dtype=np.int8), day, value)
