"""The known ground truth planted in every synthetic hospital (see docs/ground-truth.md).

Among children with asthma, the outcome *asthma admission within 365 days after the index* (the first
asthma diagnosis, always an outpatient visit) follows a logistic model::

    logit P(admission) = β0 + β_age·age + β_male·male + β_bmi·bmi_sds + β_ics·ics + β_hospital

with the coefficients below. The hospital effect is 0 for every hospital, so a pooled or federated GLM
over any set of hospitals estimates the same coefficients. Children whose observation ends less than
365 days after the index are outside the cohort (they do not have full follow-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: True coefficients of the asthma-admission model (log-odds scale).
COEFFICIENTS: dict[str, float] = {
    "intercept": -1.6,
    "age_years": -0.12,  # per year of age at index: younger children are admitted more
    "male": 0.35,
    "bmi_sds": 0.30,  # per SDS of UK-WHO BMI measured at the index visit
    "ics": -0.80,  # inhaled corticosteroid started within 30 days of the index: protective
}
#: Every hospital's effect on the log-odds (none: pooled and per-hospital models agree).
HOSPITAL_EFFECT = 0.0
#: Follow-up window after the index, in days (index + 1 … index + 365).
WINDOW_DAYS = 365
#: ICS prescriptions count as "use at index" when started within this many days of the index.
ICS_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Covariates:
    """Covariates of the cohort, one entry per child."""

    age_years: FloatArray
    male: FloatArray
    bmi_sds: FloatArray
    ics: FloatArray


def ics_probability(age_years: FloatArray) -> FloatArray:
    """Chance that an inhaled corticosteroid is started at diagnosis: more likely in older children
    (BTS/SIGN 158: preventer therapy when symptoms are not controlled; under-5s are often managed on
    salbutamol alone)."""
    return 1 / (1 + np.exp(-(-0.6 + 0.15 * age_years)))


def linear_predictor(x: Covariates, hospital_effect: float = HOSPITAL_EFFECT) -> FloatArray:
    """The log-odds of admission for each child."""
    c = COEFFICIENTS
    return (
        c["intercept"]
        + c["age_years"] * x.age_years
        + c["male"] * x.male
        + c["bmi_sds"] * x.bmi_sds
        + c["ics"] * x.ics
        + hospital_effect
    )


def admission_probability(x: Covariates, hospital_effect: float = HOSPITAL_EFFECT) -> FloatArray:
    """P(asthma admission within the window) for each child."""
    return 1 / (1 + np.exp(-linear_predictor(x, hospital_effect)))


def draw_outcome(rng: np.random.Generator, x: Covariates) -> npt.NDArray[np.bool_]:
    """Whether each child is admitted for asthma within the window."""
    return rng.random(x.age_years.shape[0]) < admission_probability(x)
