"""Paediatric helpers: exact ages, ICH E11 age groups and UK-WHO growth SDS (rcpchgrowth).

The submodules are the API; this front door re-exports the names most callers need. The growth
names load lazily, so that age and age-group users do not pay for importing rcpchgrowth and scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from phds.paediatrics.age import age_in_days, age_in_months, age_in_years
from phds.paediatrics.ich_e11 import AgeGroup, ich_e11_group

if TYPE_CHECKING:
    from phds.paediatrics.growth import Measurement, centile, sds

__all__ = [
    "AgeGroup",
    "Measurement",
    "age_in_days",
    "age_in_months",
    "age_in_years",
    "centile",
    "ich_e11_group",
    "sds",
]

_GROWTH = frozenset({"Measurement", "centile", "sds"})


def __getattr__(name: str) -> Any:
    if name in _GROWTH:
        return getattr(importlib.import_module("phds.paediatrics.growth"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
