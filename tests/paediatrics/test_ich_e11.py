"""ICH E11 age groups: boundaries, the preterm rule, and the ibis expression against Python."""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from phds.errors import InputError
from phds.paediatrics import AgeGroup, ich_e11_group
from phds.paediatrics.ich_e11 import ibis_ich_e11_group, ich_e11_group_for_dates, is_preterm

D = date


def test_labels_and_order() -> None:
    assert [g.label for g in AgeGroup.ordered()] == [
        "preterm newborn",
        "term newborn (0-27 d)",
        "infant (28 d-23 m)",
        "child (2-11 y)",
        "adolescent (12-17 y)",
        "adult (18+ y)",
    ]
    assert AgeGroup("child (2-11 y)") is AgeGroup.CHILD
    assert AgeGroup.INFANT == "infant (28 d-23 m)"


@pytest.mark.parametrize(
    ("age_days", "preterm", "expected"),
    [
        (0, False, AgeGroup.TERM_NEWBORN),
        (27, False, AgeGroup.TERM_NEWBORN),
        (0, True, AgeGroup.PRETERM_NEWBORN),
        (27, True, AgeGroup.PRETERM_NEWBORN),
        (28, True, AgeGroup.INFANT),  # preterm babies become infants at 28 days like everyone
        (28, False, AgeGroup.INFANT),
        (700, False, AgeGroup.INFANT),
        (800, False, AgeGroup.CHILD),
        (4300, False, AgeGroup.CHILD),
        (4400, False, AgeGroup.ADOLESCENT),
        (6500, True, AgeGroup.ADOLESCENT),
        (6600, False, AgeGroup.ADULT),
    ],
)
def test_groups_by_days(age_days: int, preterm: bool, expected: AgeGroup) -> None:
    assert ich_e11_group(age_days, preterm=preterm) is expected


def test_days_alone_estimate_years_and_age_years_makes_them_exact() -> None:
    # born 2021-03-01, observed 2023-03-01: 730 days and 2 completed years (no 29 February between)
    birth, at = D(2021, 3, 1), D(2023, 3, 1)
    assert ich_e11_group_for_dates(birth, at) is AgeGroup.CHILD
    assert ich_e11_group(730) is AgeGroup.INFANT  # 730 / 365.25 < 2: one day off, as documented
    assert ich_e11_group(730, age_years=2) is AgeGroup.CHILD


@pytest.mark.parametrize(
    ("birth", "at", "expected"),
    [
        (D(2020, 1, 1), D(2020, 1, 28), AgeGroup.TERM_NEWBORN),  # day 27
        (D(2020, 1, 1), D(2020, 1, 29), AgeGroup.INFANT),  # day 28
        (D(2020, 2, 29), D(2022, 2, 28), AgeGroup.INFANT),  # 23 completed months
        (D(2020, 2, 29), D(2022, 3, 1), AgeGroup.CHILD),  # second birthday of a leap-day baby
        (D(2008, 5, 5), D(2020, 5, 4), AgeGroup.CHILD),
        (D(2008, 5, 5), D(2020, 5, 5), AgeGroup.ADOLESCENT),
        (D(2002, 5, 5), D(2020, 5, 4), AgeGroup.ADOLESCENT),
        (D(2002, 5, 5), D(2020, 5, 5), AgeGroup.ADULT),
    ],
)
def test_calendar_boundaries(birth: date, at: date, expected: AgeGroup) -> None:
    assert ich_e11_group_for_dates(birth, at) is expected


def test_preterm_is_before_37_completed_weeks() -> None:
    assert is_preterm(36)
    assert not is_preterm(37)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"age_days": -1}, "age_days"),
        ({"age_days": True}, "age_days"),
        ({"age_days": 10.5}, "age_days"),
        ({"age_days": 400, "age_years": 2}, "age_years"),
        ({"age_days": 1200, "age_years": 1}, "age_years"),
    ],
)
def test_bad_input_names_its_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        ich_e11_group(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def _assert_ibis_matches_python(con: ibis.BaseBackend) -> None:
    births = [D(2020, 2, 29), D(2008, 5, 5), D(2002, 5, 5), D(2019, 12, 31)]
    rows = []
    for birth in births:
        for offset in [0, 27, 28, 364, 365, 366, 729, 730, 731, 4382, 4383, 4384, 6573, 6574, 6575, 6576]:
            for preterm in (True, False, None):
                rows.append((birth, birth + timedelta(days=offset), preterm))
    rows.append((D(2020, 1, 2), D(2020, 1, 1), True))  # reversed dates give NULL
    frame = pd.DataFrame(rows, columns=["birth", "at", "preterm"])
    table = ibis.memtable(frame).cast({"birth": "date", "at": "date", "preterm": "boolean"})
    got = con.execute(
        table.select(
            group=ibis_ich_e11_group(table.birth, table.at, table.preterm),
            no_flag=ibis_ich_e11_group(table.birth, table.at),
        )
    )
    expected = [ich_e11_group_for_dates(b, a, preterm=bool(p)).value for b, a, p in rows[:-1]]
    assert got["group"].tolist()[:-1] == expected
    assert got["no_flag"].tolist()[:-1] == [ich_e11_group_for_dates(b, a).value for b, a, _ in rows[:-1]]
    assert got["group"].iloc[-1] is None
    assert set(expected) == {g.value for g in AgeGroup}  # every group was exercised


def test_ibis_expression_matches_python_on_duckdb() -> None:
    _assert_ibis_matches_python(ibis.duckdb.connect())


@pytest.mark.postgres
def test_ibis_expression_matches_python_on_postgresql(pg_dsn: str) -> None:
    con = ibis.connect(pg_dsn)
    try:
        _assert_ibis_matches_python(con)
    finally:
        con.disconnect()


def test_array_version_matches_the_scalar_one() -> None:
    from phds.paediatrics.age import age_days_array, age_years_array
    from phds.paediatrics.ich_e11 import ich_e11_group_array

    birth = np.datetime64("2020-02-29")
    at = birth + np.arange(0, 7000, 9)
    days, years = age_days_array(birth, at), age_years_array(birth, at)
    preterm = days % 2 == 0
    got = ich_e11_group_array(days, years, preterm)
    expected = [
        ich_e11_group(int(d), preterm=bool(p), age_years=int(y))
        for d, y, p in zip(days, years, preterm, strict=True)
    ]
    assert got.tolist() == [g.value for g in expected]
    assert ich_e11_group(np.int64(5), preterm=True) is AgeGroup.PRETERM_NEWBORN
    with pytest.raises(InputError):
        ich_e11_group_array(np.array([-1]), np.array([0]))
