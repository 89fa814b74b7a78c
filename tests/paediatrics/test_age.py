"""Exact ages: Python, numpy and ibis (DuckDB, and PostgreSQL when reachable) agree on one rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.errors import InputError
from phds.paediatrics.age import (
    age_days_array,
    age_in_days,
    age_in_months,
    age_in_years,
    age_months_array,
    age_years_array,
    ibis_age_days,
    ibis_age_months,
    ibis_age_years,
)

D = date
# (birth, at, days, completed months, completed years), worked out by hand
EDGE_CASES = [
    (D(2020, 2, 29), D(2020, 2, 29), 0, 0, 0),
    (D(2020, 2, 29), D(2020, 3, 28), 28, 0, 0),
    (D(2020, 2, 29), D(2020, 3, 29), 29, 1, 0),
    (D(2020, 2, 29), D(2021, 2, 28), 365, 11, 0),  # leap-day birthday: not yet 1 on 28 February
    (D(2020, 2, 29), D(2021, 3, 1), 366, 12, 1),  # ... but on 1 March
    (D(2020, 2, 29), D(2024, 2, 28), 1460, 47, 3),
    (D(2020, 2, 29), D(2024, 2, 29), 1461, 48, 4),
    (D(2020, 1, 31), D(2020, 2, 29), 29, 0, 0),  # 31st: February has no 31st
    (D(2020, 1, 31), D(2020, 3, 1), 30, 1, 0),
    (D(2019, 1, 31), D(2019, 3, 1), 29, 1, 0),
    (D(2020, 3, 31), D(2020, 4, 30), 30, 0, 0),
    (D(2020, 3, 31), D(2020, 5, 1), 31, 1, 0),
    (D(2020, 3, 31), D(2020, 5, 31), 61, 2, 0),
    (D(2010, 6, 15), D(2020, 6, 14), 3652, 119, 9),  # day before the 10th birthday
    (D(2010, 6, 15), D(2020, 6, 15), 3653, 120, 10),
    (D(2002, 3, 10), D(2020, 3, 9), 6574, 215, 17),
    (D(2002, 3, 10), D(2020, 3, 10), 6575, 216, 18),
    (D(1999, 12, 31), D(2000, 1, 1), 1, 0, 0),
    (D(1969, 12, 31), D(1970, 1, 31), 31, 1, 0),  # before the numpy epoch
    (D(2023, 12, 1), D(2023, 12, 28), 27, 0, 0),
    (D(2023, 12, 1), D(2023, 12, 29), 28, 0, 0),
    (D(2023, 12, 1), D(2024, 1, 1), 31, 1, 0),
]


@pytest.mark.parametrize(("birth", "at", "days", "months", "years"), EDGE_CASES)
def test_scalar_ages_on_edge_cases(birth: date, at: date, days: int, months: int, years: int) -> None:
    assert age_in_days(birth, at) == days
    assert age_in_months(birth, at) == months
    assert age_in_years(birth, at) == years


def test_datetimes_count_by_their_date() -> None:
    assert age_in_days(datetime(2020, 1, 1, 23, 59), datetime(2020, 1, 2, 0, 1)) == 1
    assert age_in_years(datetime(2000, 5, 5, 12), date(2018, 5, 5)) == 18


@pytest.mark.parametrize("function", [age_in_days, age_in_months, age_in_years])
def test_at_before_birth_is_an_input_error_on_at(function: object) -> None:
    with pytest.raises(InputError) as caught:
        function(date(2020, 1, 2), date(2020, 1, 1))  # type: ignore[operator]
    assert caught.value.field == "at"


def test_a_non_date_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        age_in_days("2020-01-01", date(2020, 1, 2))  # type: ignore[arg-type]
    assert caught.value.field == "birth"


def _dense_pairs() -> tuple[list[date], list[date]]:
    """Births around leap days and month ends, each observed on many days over six years."""
    births = [D(2019, 12, 25) + timedelta(days=i) for i in range(0, 100, 3)]
    births += [D(1969, 12, 31), D(2000, 2, 29), D(2018, 8, 31), D(2019, 5, 31)]
    ats = [D(2020, 2, 20) + timedelta(days=i) for i in range(0, 2200, 7)]
    ats += [D(2021, 2, 28), D(2021, 3, 1), D(2024, 2, 29), D(2024, 3, 1), D(2025, 2, 28)]
    pairs = [(b, a) for b in births for a in ats if a >= b]
    return [b for b, _ in pairs], [a for _, a in pairs]


def test_numpy_arrays_agree_with_the_scalar_functions() -> None:
    births, ats = _dense_pairs()
    b = np.array(births, dtype="datetime64[D]")
    a = np.array(ats, dtype="datetime64[D]")
    assert age_days_array(b, a).tolist() == [age_in_days(x, y) for x, y in zip(births, ats, strict=True)]
    assert age_months_array(b, a).tolist() == [age_in_months(x, y) for x, y in zip(births, ats, strict=True)]
    assert age_years_array(b, a).tolist() == [age_in_years(x, y) for x, y in zip(births, ats, strict=True)]
    assert age_years_array(b, a).dtype == np.int64


def test_pandas_series_and_broadcasting() -> None:
    birth = pd.Series(pd.to_datetime(["2020-02-29 00:00", "2010-06-15 23:30"]))
    at = np.datetime64("2021-03-01")
    assert age_years_array(birth, at).tolist() == [1, 10]
    assert age_days_array(birth, at).tolist() == [366, age_in_days(D(2010, 6, 15), D(2021, 3, 1))]


def test_arrays_refuse_missing_dates_and_reversed_pairs() -> None:
    with pytest.raises(InputError) as missing:
        age_days_array(pd.Series(pd.to_datetime(["2020-01-01", None])), np.datetime64("2021-01-01"))
    assert missing.value.field == "birth"
    with pytest.raises(InputError) as reversed_:
        age_years_array(np.array(["2020-01-02"], dtype="datetime64[D]"), np.datetime64("2020-01-01"))
    assert reversed_.value.field == "at"


def _ibis_ages(con: ibis.BaseBackend, births: list[date], ats: list[date]) -> pd.DataFrame:
    frame = pd.DataFrame({"birth": births, "at": ats})
    table = ibis.memtable(frame).cast({"birth": "date", "at": "date"})
    expr = table.select(
        days=ibis_age_days(table.birth, table.at),
        months=ibis_age_months(table.birth, table.at),
        years=ibis_age_years(table.birth, table.at),
    )
    return con.execute(expr)


def _assert_ibis_matches_python(con: ibis.BaseBackend) -> None:
    births = [case[0] for case in EDGE_CASES] + [D(2020, 1, 2)]
    ats = [case[1] for case in EDGE_CASES] + [D(2020, 1, 1)]  # the last pair is reversed
    got = _ibis_ages(con, births, ats)
    for row, (_, _, days, months, years) in zip(got.itertuples(), EDGE_CASES, strict=False):
        assert (row.days, row.months, row.years) == (days, months, years)
    assert got.iloc[-1].isna().all()  # SQL cannot raise: at < birth gives NULL


def test_ibis_on_duckdb_matches_python_on_edge_cases_and_dense_pairs() -> None:
    con = ibis.duckdb.connect()
    _assert_ibis_matches_python(con)
    births, ats = _dense_pairs()
    got = _ibis_ages(con, births, ats)
    assert got["months"].astype(int).tolist() == [
        age_in_months(b, a) for b, a in zip(births, ats, strict=True)
    ]
    assert got["years"].astype(int).tolist() == [age_in_years(b, a) for b, a in zip(births, ats, strict=True)]


def test_ibis_accepts_timestamps() -> None:
    con = ibis.duckdb.connect()
    frame = pd.DataFrame(
        {"birth": pd.to_datetime(["2020-02-29 22:00"]), "at": pd.to_datetime(["2021-03-01 01:00"])}
    )
    table = ibis.memtable(frame)
    got = con.execute(
        table.select(d=ibis_age_days(table.birth, table.at), y=ibis_age_years(table.birth, table.at))
    )
    assert (int(got.d[0]), int(got.y[0])) == (366, 1)


@pytest.mark.postgres
def test_ibis_on_postgresql_matches_python(pg_dsn: str) -> None:
    con = ibis.connect(pg_dsn)
    try:
        _assert_ibis_matches_python(con)
    finally:
        con.disconnect()


def _month_anniversary(birth: date, months: int) -> date:
    """Independent oracle: ``months`` after birth; a missing day of the month moves to the 1st of the next."""
    y, m = divmod(birth.month - 1 + months, 12)
    try:
        return date(birth.year + y, m + 1, birth.day)
    except ValueError:
        y2, m2 = divmod(m + 1, 12)
        return date(birth.year + y + y2, m2 + 1, 1)


@settings(max_examples=300, deadline=None)
@given(
    birth=st.dates(min_value=D(1950, 1, 1), max_value=D(2030, 12, 31)),
    offset=st.integers(min_value=0, max_value=40 * 366),
)
def test_completed_months_are_the_last_anniversary_passed(birth: date, offset: int) -> None:
    at = birth + timedelta(days=offset)
    months = age_in_months(birth, at)
    assert _month_anniversary(birth, months) <= at < _month_anniversary(birth, months + 1)
    assert age_in_years(birth, at) == months // 12
    assert age_months_array(np.datetime64(birth), np.datetime64(at)).item() == months
