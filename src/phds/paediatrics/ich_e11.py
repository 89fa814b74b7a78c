"""Paediatric age groups of ICH E11.

ICH E11 "Clinical investigation of medicinal products in the pediatric population" (2000),
section 2.5 "Age classification of pediatric patients", and its addendum E11(R1) (2017), which
keeps that classification and stresses that it is a convention, not physiology. The groups:

======================  ==============================================================
group                   rule used here (``days`` = :func:`~phds.paediatrics.age.age_in_days`,
                        ``years`` = completed years, :func:`~phds.paediatrics.age.age_in_years`)
======================  ==============================================================
preterm newborn         ``days <= 27`` and born before 37 completed weeks of gestation
term newborn (0-27 d)   ``days <= 27`` and not known to be preterm
infant (28 d-23 m)      ``days >= 28`` and ``years < 2``
child (2-11 y)          ``2 <= years <= 11``
adolescent (12-17 y)    ``12 <= years <= 17``
adult (18+ y)           ``years >= 18``
======================  ==============================================================

Decisions:

* **Preterm newborn.** E11 names the group but gives no age span. We use the neonatal window of
  the term newborn, 0-27 days after birth, for babies born before 37 completed weeks (WHO, ICD-10
  volume 2: pre-term is "less than 37 completed weeks (less than 259 days) of gestation"), as the
  HL7 FHIR code system ``medicinal-product-pediatric-use`` does ("Preterm newborn infants (0 – 27
  days)"). When the gestation is unknown, the baby counts as a term newborn. The EMA's longer
  window for preterm neonates (to the expected date of delivery + 27 days) is not used: it needs
  the gestation.
* **Adolescents** end at 17 completed years. E11 says "12 to 16-18 years (dependent on region)";
  the EU Paediatric Regulation (EC) 1901/2006 sets the paediatric population below 18 years.
* **Year boundaries** are completed calendar years. :func:`ich_e11_group` given only ``age_days``
  estimates completed years with the mean year of 365.25 days, which can be one day off around
  the 2nd, 12th and 18th birthdays; pass ``age_years`` (or use :func:`ich_e11_group_for_dates`
  or the ibis expression) for the exact calendar rule.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from phds.errors import InputError
from phds.paediatrics.age import age_in_days, age_in_years, ibis_age_days, ibis_age_years

__all__ = [
    "AgeGroup",
    "ibis_ich_e11_group",
    "ich_e11_group",
    "ich_e11_group_array",
    "ich_e11_group_for_dates",
    "is_preterm",
]

NEWBORN_LAST_DAY = 27  # ICH E11 §2.5.2: term newborn infants, 0 to 27 days
PRETERM_WEEKS = 37  # born before 37 completed weeks of gestation (WHO)
DAYS_PER_YEAR = 365.25


class AgeGroup(StrEnum):
    """ICH E11 age groups; the value is the human label."""

    PRETERM_NEWBORN = "preterm newborn"
    TERM_NEWBORN = "term newborn (0-27 d)"
    INFANT = "infant (28 d-23 m)"
    CHILD = "child (2-11 y)"
    ADOLESCENT = "adolescent (12-17 y)"
    ADULT = "adult (18+ y)"

    @property
    def label(self) -> str:
        """The human label (same as the value)."""
        return self.value

    @classmethod
    def ordered(cls) -> tuple[AgeGroup, ...]:
        """The groups from youngest to oldest."""
        return tuple(cls)


def is_preterm(gestation_weeks: int) -> bool:
    """True when born before 37 completed weeks of gestation."""
    return gestation_weeks < PRETERM_WEEKS


def _group(days: int, years: int, preterm: bool) -> AgeGroup:
    if days <= NEWBORN_LAST_DAY:
        return AgeGroup.PRETERM_NEWBORN if preterm else AgeGroup.TERM_NEWBORN
    if years < 2:
        return AgeGroup.INFANT
    if years < 12:
        return AgeGroup.CHILD
    if years < 18:
        return AgeGroup.ADOLESCENT
    return AgeGroup.ADULT


def ich_e11_group(age_days: int, *, preterm: bool = False, age_years: int | None = None) -> AgeGroup:
    """The ICH E11 group for an age in days (``preterm``: born before 37 weeks, when known).

    ``age_years``, the completed calendar years, makes the 2/12/18-year boundaries exact;
    without it they are estimated as ``floor(age_days / 365.25)``.
    """
    if isinstance(age_days, bool) or not isinstance(age_days, int | np.integer):
        raise InputError(f"expected whole days, got {age_days!r}", field="age_days")
    if age_days < 0:
        raise InputError(f"age cannot be negative ({age_days} days)", field="age_days")
    if age_years is None:
        age_years = int(age_days // DAYS_PER_YEAR)
    elif age_years < 0 or age_years * 365 > age_days or age_days >= (age_years + 1) * 366:
        raise InputError(f"{age_years} years does not fit an age of {age_days} days", field="age_years")
    age_days, age_years = int(age_days), int(age_years)
    return _group(age_days, age_years, preterm)


def ich_e11_group_for_dates(birth: date, at: date, *, preterm: bool = False) -> AgeGroup:
    """The ICH E11 group on date ``at`` with exact calendar boundaries."""
    return _group(age_in_days(birth, at), age_in_years(birth, at), preterm)


def ich_e11_group_array(age_days: Any, age_years: Any, preterm: Any = False) -> npt.NDArray[np.str_]:
    """Vectorised labels from exact ages (e.g. ``age_days_array`` and ``age_years_array``).

    Arguments broadcast; ``preterm`` is a boolean array or scalar. Negative ages raise InputError.
    """
    days, years, pre = np.broadcast_arrays(np.asarray(age_days), np.asarray(age_years), np.asarray(preterm))
    if (days < 0).any() or (years < 0).any():
        raise InputError("ages cannot be negative", field="age_days")
    newborn = days <= NEWBORN_LAST_DAY
    conditions = [newborn & pre.astype(bool), newborn, years < 2, years < 12, years < 18]
    labels = [g.value for g in AgeGroup.ordered()]
    return np.select(conditions, labels[:-1], default=labels[-1])


def ibis_ich_e11_group(birth_expr: Any, at_expr: Any, preterm_expr: Any = None) -> Any:
    """The ICH E11 label as an ibis string expression (exact calendar rule).

    ``preterm_expr`` is a boolean expression (born before 37 weeks); NULL or omitted counts as
    not preterm. The result is NULL when either date is NULL or ``at`` is before birth.
    """
    import ibis

    days = ibis_age_days(birth_expr, at_expr)
    years = ibis_age_years(birth_expr, at_expr)
    preterm = ibis.literal(False) if preterm_expr is None else preterm_expr.fill_null(False)
    newborn = days <= NEWBORN_LAST_DAY
    return ibis.cases(
        (days.isnull(), ibis.null("string")),
        (newborn & preterm, AgeGroup.PRETERM_NEWBORN.value),
        (newborn, AgeGroup.TERM_NEWBORN.value),
        (years < 2, AgeGroup.INFANT.value),
        (years < 12, AgeGroup.CHILD.value),
        (years < 18, AgeGroup.ADOLESCENT.value),
        else_=AgeGroup.ADULT.value,
    )
