"""The second planted ground truth: sepsis after a paediatric intensive care (PICU) admission.

See docs/ground-truth.md, "PICU sepsis". Each child admitted to intensive care (visit concept 32037, at
most one admission per child) has seven vital signs and labs measured on the admission day. Whether
sepsis (132797) is recorded within :data:`WINDOW_DAYS` days of admission follows a logistic model of
those *recorded* values and the age at admission::

    logit P(sepsis) = β0 + β_age·age_years + β_hr·heart_rate + β_rr·respiratory_rate + β_t·temperature
                      + β_sbp·systolic_bp + β_lac·lactate + β_wbc·wbc + β_crp·crp

The coefficients are the same in every hospital (no hospital term): hospitals differ in how often children
are admitted, in the severity of those admitted and in their ages (:class:`PicuMix`), so a federated
model meets non-IID data whose conditional law P(sepsis | x) is shared.

Age-appropriate normal values (what a child with no physiological derangement shows):

- heart rate and respiratory rate medians by age: Fleming et al. 2011, Lancet 377:1011 (centiles from
  69 studies). The abstract gives heart rate 127/min at birth, a peak of 145 at about 1 month and 113 by
  2 years; respiratory rate 44/min at birth and 26 at 2 years. The knots after 2 years are this
  module's own round values, falling to adolescent levels as the paper's charts do (not read off them);
- systolic blood pressure: the APLS rule of thumb, median ≈ 90 + 2 × age in years from 1 to 10 years
  (Advanced Life Support Group, APLS), and lower in infants;
- white cell count: below the upper limits of the International Pediatric Sepsis Consensus (Goldstein
  et al. 2005, Pediatr Crit Care Med 6:2, table 3), which are also :data:`SIRS_LIMITS`;
- core temperature 37.0 °C (SIRS: > 38.5 or < 36.0, Goldstein 2005); lactate about 1 mmol/L; CRP a few
  mg/L.

A latent severity ``s`` (per admission, drawn from the hospital's :class:`PicuMix`) moves every value away
from normal; noise is added; the values are rounded as recorded. The sepsis draw uses only the recorded
values and age, so a logistic regression on the analysis table is correctly specified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: True coefficients of the sepsis model (log-odds per unit as recorded; units in :data:`UNITS`).
COEFFICIENTS: dict[str, float] = {
    "intercept": -19.8,
    "age_years": -0.05,  # per year of age at admission
    "heart_rate": 0.012,  # per beat/min
    "respiratory_rate": 0.02,  # per breath/min
    "temperature": 0.45,  # per °C
    "systolic_bp": -0.015,  # per mmHg: hypotension raises the risk
    "lactate": 0.35,  # per mmol/L
    "wbc": 0.04,  # per 10^3/µL
    "crp": 0.008,  # per mg/L
}
#: The covariates, in model order (every coefficient but the intercept).
TERMS: tuple[str, ...] = tuple(k for k in COEFFICIENTS if k != "intercept")
#: The measured covariates (all but age), in the order they are written.
MEASURED: tuple[str, ...] = TERMS[1:]
#: Units of the recorded values (UCUM), as the measurement rows carry them.
UNITS: dict[str, str] = {
    "heart_rate": "/min",
    "respiratory_rate": "/min",
    "temperature": "Cel",
    "systolic_bp": "mm[Hg]",
    "lactate": "mmol/L",
    "wbc": "10*3/uL",
    "crp": "mg/L",
}
#: Sepsis counts when recorded between the admission day (0) and this many days after it.
WINDOW_DAYS = 2
#: Every hospital's effect on the log-odds: none.
HOSPITAL_EFFECT = 0.0

#: Heart-rate median by age, (years, /min): Fleming et al. 2011 (birth, 1 month, 2 years from the abstract).
HEART_RATE_MEDIAN = ((0.0, 127.0), (1 / 12, 145.0), (2.0, 113.0), (6.0, 95.0), (12.0, 82.0), (18.0, 76.0))
#: Respiratory-rate median by age, (years, /min): Fleming et al. 2011 (birth and 2 years from the abstract).
RESPIRATORY_RATE_MEDIAN = ((0.0, 44.0), (2.0, 26.0), (6.0, 21.0), (12.0, 18.0), (18.0, 15.0))
#: Systolic BP median by age, (years, mmHg): APLS 90 + 2 × age from 1 to 10 years; infants lower.
SYSTOLIC_BP_MEDIAN = ((0.0, 70.0), (1.0, 92.0), (10.0, 110.0), (18.0, 118.0))
#: White cell count median by age, (years, 10^3/µL): below the Goldstein 2005 upper limits.
WBC_MEDIAN = ((0.0, 12.0), (1.0, 10.0), (6.0, 8.0), (18.0, 7.0))

#: Goldstein et al. 2005, table 3 (age-specific vital signs and laboratory variables): (age from, age to
#: in years, tachycardia > /min, tachypnoea > /min, leukocytosis > 10^3/µL, hypotension: systolic < mmHg).
#: The bands are 0–1 week, 1 week–1 month, 1 month–1 year, >1–5 years, >5–12 years and >12–<18 years,
#: here in completed years. Used by the tests: sepsis admissions exceed these limits more often.
SIRS_LIMITS = (
    (0.0, 7 / 365.25, 180, 50, 34.0, 59),
    (7 / 365.25, 1 / 12, 180, 40, 19.5, 79),
    (1 / 12, 1.0, 180, 34, 17.5, 75),
    (1.0, 6.0, 140, 22, 15.5, 74),
    (6.0, 13.0, 130, 18, 13.5, 83),
    (13.0, 18.0, 110, 14, 11.0, 90),
)


@dataclass(frozen=True)
class PicuMix:
    """A hospital's intensive-care case mix (illustrative figures, not fitted to a registry).

    ``rate``: share of the hospital's children with a PICU admission by the reference date;
    ``severity_mean``/``severity_sd``: the latent severity of those admitted; ``infant_share``: share of
    admissions placed in the first year of life (the rest fall uniformly over the observation).
    """

    rate: float = 0.015
    severity_mean: float = 0.0
    severity_sd: float = 1.0
    infant_share: float = 0.25


def _curve(knots: tuple[tuple[float, float], ...], age: FloatArray) -> FloatArray:
    xs = np.array([k[0] for k in knots])
    ys = np.array([k[1] for k in knots])
    return np.asarray(np.interp(age, xs, ys), dtype=np.float64)


def draw_measurements(
    rng: np.random.Generator, age: FloatArray, severity: FloatArray
) -> dict[str, FloatArray]:
    """The recorded admission values (rounded as a chart records them) for each admission."""
    n = age.shape[0]
    e = rng.standard_normal((7, n))
    s = severity
    hr = _curve(HEART_RATE_MEDIAN, age) * np.exp(0.10 * s + 0.08 * e[0])
    rr = _curve(RESPIRATORY_RATE_MEDIAN, age) * np.exp(0.14 * s + 0.12 * e[1])
    temp = 37.0 + 0.55 * s + 0.5 * e[2]
    sbp = _curve(SYSTOLIC_BP_MEDIAN, age) - 7.0 * s + 9.0 * e[3]
    lactate = 1.0 + 0.8 * np.log1p(np.exp(1.2 * s + 0.6 * e[4] - 0.5))
    wbc = _curve(WBC_MEDIAN, age) * np.exp(0.18 * s + 0.22 * e[5])
    crp = 5.0 + 25.0 * np.log1p(np.exp(1.0 * s + 0.8 * e[6] - 0.3))
    return {
        "heart_rate": np.round(np.clip(hr, 40, 250)),
        "respiratory_rate": np.round(np.clip(rr, 8, 90)),
        "temperature": np.round(np.clip(temp, 34.0, 42.0), 1),
        "systolic_bp": np.round(np.clip(sbp, 40, 180)),
        "lactate": np.round(np.clip(lactate, 0.3, 20.0), 1),
        "wbc": np.round(np.clip(wbc, 0.5, 60.0), 1),
        "crp": np.round(np.clip(crp, 0.2, 400.0), 1),
    }


def linear_predictor(age: FloatArray, x: dict[str, FloatArray]) -> FloatArray:
    """The log-odds of sepsis within the window for each admission."""
    c = COEFFICIENTS
    eta = c["intercept"] + c["age_years"] * age + HOSPITAL_EFFECT
    for name in MEASURED:
        eta = eta + c[name] * x[name]
    return np.asarray(eta, dtype=np.float64)


def sepsis_probability(age: FloatArray, x: dict[str, FloatArray]) -> FloatArray:
    """P(sepsis recorded within the window) for each admission."""
    return 1 / (1 + np.exp(-linear_predictor(age, x)))


def draw_sepsis(rng: np.random.Generator, age: FloatArray, x: dict[str, FloatArray]) -> npt.NDArray[np.bool_]:
    """Whether each admitted child has sepsis recorded within the window."""
    return rng.random(age.shape[0]) < sepsis_probability(age, x)
