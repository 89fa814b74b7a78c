"""Exact ages in days, completed months and completed years: in Python, in numpy and in SQL (ibis).

One calendar rule everywhere, so that a node's SQL, the synthetic generator and the analyses agree:

* **days** are calendar days between the two dates (``at - birth``);
* a **month is completed** on the day of the month whose number is at least the day of birth.
  When the month lacks that day (born on the 31st, or on 29 February), it is completed on the
  1st of the next month: born 31 January → 1 completed month on 1 March (0 on 28/29 February);
* **completed years** are completed months // 12, so a person born on 29 February is a year older
  on 1 March in common years. This is PostgreSQL's ``age()`` convention (it compares days of the
  month, not clamped anniversaries), not ``dateutil.relativedelta``'s (which would say 28 February).

Python functions raise :class:`~phds.errors.InputError` (``field="at"``) when ``at < birth``;
the ibis expressions cannot raise inside SQL and return NULL instead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from phds.errors import InputError

__all__ = [
    "age_days_array",
    "age_in_days",
    "age_in_months",
    "age_in_years",
    "age_months_array",
    "age_years_array",
    "ibis_age_days",
    "ibis_age_months",
    "ibis_age_years",
]


def _as_date(value: date, field: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if not isinstance(value, date):
        raise InputError(f"expected a date, got {type(value).__name__}", field=field)
    return value


def _checked(birth: date, at: date) -> tuple[date, date]:
    b, a = _as_date(birth, "birth"), _as_date(at, "at")
    if a < b:
        raise InputError(f"{a.isoformat()} is before the birth date {b.isoformat()}", field="at")
    return b, a


def age_in_days(birth: date, at: date) -> int:
    """Calendar days from ``birth`` to ``at`` (0 on the day of birth)."""
    b, a = _checked(birth, at)
    return (a - b).days


def age_in_months(birth: date, at: date) -> int:
    """Completed calendar months (see the module docstring for month ends and 29 February)."""
    b, a = _checked(birth, at)
    return (a.year - b.year) * 12 + (a.month - b.month) - (1 if a.day < b.day else 0)


def age_in_years(birth: date, at: date) -> int:
    """Completed years: the birthday counts; 29 February birthdays fall on 1 March in common years."""
    return age_in_months(birth, at) // 12


# -- numpy ---------------------------------------------------------------------------------------


def _days(values: Any, field: str) -> npt.NDArray[np.datetime64]:
    """Dates as datetime64[D]; accepts numpy datetime64 arrays of any unit, pandas Series, scalars."""
    if hasattr(values, "to_numpy"):  # pandas Series / Index
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        try:
            arr = arr.astype("datetime64[D]")
        except (TypeError, ValueError) as exc:
            raise InputError(f"expected dates (datetime64), got dtype {arr.dtype}", field=field) from exc
    arr = arr.astype("datetime64[D]")  # floors finer units, also before 1970
    if np.isnat(arr).any():
        raise InputError(f"{int(np.isnat(arr).sum())} missing date(s) (NaT)", field=field)
    return arr


def _pair(birth: Any, at: Any) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.datetime64]]:
    b, a = np.broadcast_arrays(_days(birth, "birth"), _days(at, "at"))
    early = a < b
    if early.any():
        raise InputError(f"{int(early.sum())} date(s) before the birth date", field="at")
    return b, a


def _ymd(d: npt.NDArray[np.datetime64]) -> tuple[npt.NDArray[np.int64], ...]:
    months = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64)  # years since 1970; only differences are used
    month = months.astype(np.int64) % 12
    day = (d - months).astype(np.int64)
    return year, month, day


def age_days_array(birth: Any, at: Any) -> npt.NDArray[np.int64]:
    """Vectorised :func:`age_in_days` for datetime64 arrays or pandas Series (broadcast)."""
    b, a = _pair(birth, at)
    return (a - b).astype(np.int64)


def age_months_array(birth: Any, at: Any) -> npt.NDArray[np.int64]:
    """Vectorised :func:`age_in_months`."""
    b, a = _pair(birth, at)
    by, bm, bd = _ymd(b)
    ay, am, ad = _ymd(a)
    return ((ay - by) * 12 + (am - bm) - (ad < bd)).astype(np.int64)


def age_years_array(birth: Any, at: Any) -> npt.NDArray[np.int64]:
    """Vectorised :func:`age_in_years`."""
    return age_months_array(birth, at) // 12


# -- ibis (SQL side) -----------------------------------------------------------------------------


def _ibis_date(expr: Any) -> Any:
    """A date expression; timestamps are truncated to their date."""
    return expr.date() if expr.type().is_timestamp() else expr


def ibis_age_days(birth_expr: Any, at_expr: Any) -> Any:
    """Calendar days from birth to at, as an int64 expression; NULL when at < birth or either is NULL."""
    import ibis

    b, a = _ibis_date(birth_expr), _ibis_date(at_expr)
    return ibis.ifelse(a >= b, a.delta(b, unit="day"), ibis.null("int64"))


def ibis_age_months(birth_expr: Any, at_expr: Any) -> Any:
    """Completed calendar months (same rule as :func:`age_in_months`); NULL when at < birth."""
    import ibis

    b, a = _ibis_date(birth_expr), _ibis_date(at_expr)
    months = (a.year() - b.year()) * 12 + (a.month() - b.month()) - ibis.ifelse(a.day() < b.day(), 1, 0)
    return ibis.ifelse(a >= b, months.cast("int64"), ibis.null("int64"))


def ibis_age_years(birth_expr: Any, at_expr: Any) -> Any:
    """Completed years (same rule as :func:`age_in_years`); NULL when at < birth."""
    months = ibis_age_months(birth_expr, at_expr)
    return (months // 12).cast("int64")


def ibis_birth_date(person: Any) -> Any:
    """An OMOP person's birth date: ``birth_datetime`` when recorded, else year/month/day of birth
    (a missing month or day counts as the 1st)."""
    import ibis

    from_parts = ibis.date(
        person.year_of_birth.cast("int32"),
        person.month_of_birth.fill_null(1).cast("int32"),
        person.day_of_birth.fill_null(1).cast("int32"),
    )
    return person.birth_datetime.date().coalesce(from_parts)
