"""UK-WHO growth: published validation values, agreement with rcpchgrowth, round trips, ranges."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest
import rcpchgrowth

from phds.errors import InputError
from phds.paediatrics.growth import (
    MEASUREMENTS,
    centile,
    corrected_age_years,
    lms,
    sds,
    sds_from_value,
    value_from_sds,
)

# Expected SDS from rcpchgrowth's own validation set, computed by Tim Cole outside rcpchgrowth
# (LMSGrowth) and used by rcpchgrowth's tests with an absolute tolerance of 1e-3:
# github.com/rcpch/rcpchgrowth-python, rcpchgrowth/tests/sds_age_validation_2021.json
# (commit 3a97b7988fe55bd5b301618717de7ce2bb942b61), read by tests/test_global_functions.py.
# (sex, measurement, chronological decimal age, value, gestation weeks + days, corrected SDS, chrono SDS)
COLE_VALIDATION = [
    ("male", "weight", 1.242984257, 11.67, 41, 2, 1.087248564, 1.144163728),
    ("male", "height", 1.242984257, 81.9, 41, 2, 0.994007766, 1.126482725),
    ("male", "ofc", 1.242984257, 48.3, 41, 2, 1.108019948, 1.157393932),
    ("female", "bmi", 9.242984257, 15.44342041, 35, 3, -0.550074875, -0.570935011),
    ("female", "ofc", 9.242984257, 52.4, 35, 3, -0.840830266, -0.864344478),
    ("male", "height", 3.570157426, 100.9, 37, 5, 0.215919584, 0.136411518),
    ("female", "weight", 0.648870637, 6.09, 37, 2, -1.944797158, -2.156439543),
    ("female", "height", 0.648870637, 63.4, 37, 2, -1.777716756, -2.142495871),
    ("male", "weight", 0.629705681, 6.92, 26, 3, -0.397617757, -1.845704198),
    ("male", "ofc", 0.629705681, 41.6, 26, 3, -0.380156964, -2.17541337),
    ("male", "bmi", 4.005475702, 15.31536388, 41, 2, -0.364765644, -0.371139258),
    ("male", "ofc", 3.23340178, 47.8, 32, 4, -1.223942757, -1.303615332),
    ("female", "weight", 13.15811088, 50.37, 44, 4, 0.447166204, 0.498068362),
    ("male", "height", 17.00752909, 167.4, 28, 5, -1.116481304, -1.184678793),
    ("male", "weight", 19.45242984, 68.95, 27, 2, 0.026100188, -0.003848261),
    # no OFC reference above 18 y (boys) / 17 y (girls): the validation set expects null
    ("male", "ofc", 19.45242984, 60.0001, 27, 2, None, None),
    ("female", "ofc", 17.42642026, 60.0001, 29, 1, None, None),
]
COLE_TOLERANCE = 1e-3


@pytest.mark.parametrize(
    ("sex", "m", "age", "value", "weeks", "days", "corrected", "chrono"), COLE_VALIDATION
)
def test_scalar_sds_matches_published_validation_values(
    sex: str, m: str, age: float, value: float, weeks: int, days: int, corrected: float, chrono: float
) -> None:
    got_corrected = sds(m, value, sex, age, gestation_weeks=weeks, gestation_days=days)  # type: ignore[arg-type]
    got_chrono = sds(m, value, sex, age)  # type: ignore[arg-type]
    if corrected is None:
        assert math.isnan(got_corrected)
        assert math.isnan(got_chrono)
        return
    assert got_corrected == pytest.approx(corrected, abs=COLE_TOLERANCE)
    assert got_chrono == pytest.approx(chrono, abs=COLE_TOLERANCE)


def test_vectorised_sds_matches_published_validation_values() -> None:
    sexes, ms, ages, values, weeks, days, expected, _ = zip(*COLE_VALIDATION, strict=True)
    got = np.array(
        [
            sds_from_value(m, sex, corrected_age_years(age, w, d), value)  # type: ignore[arg-type]
            for sex, m, age, value, w, d in zip(sexes, ms, ages, values, weeks, days, strict=True)
        ]
    )
    want = np.array([np.nan if e is None else e for e in expected])
    np.testing.assert_allclose(got, want, atol=COLE_TOLERANCE)  # NaN must meet NaN


def test_centile_is_the_normal_cdf_of_sds_in_percent() -> None:
    z = sds("height", 81.9, "male", 1.242984257)
    assert centile("height", 81.9, "male", 1.242984257) == pytest.approx(
        50 * (1 + math.erf(z / math.sqrt(2)))
    )
    median = float(value_from_sds("weight", "female", 7.5, 0.0))
    assert centile("weight", median, "female", 7.5) == pytest.approx(50.0, abs=1e-9)
    assert math.isnan(centile("ofc", 55.0, "female", 17.5))


def test_corrected_age_matches_rcpchgrowth_dates() -> None:
    birth, at = date(2013, 1, 27), date(2013, 9, 14)
    expected = rcpchgrowth.corrected_decimal_age(birth, at, 26, 3)
    chrono = rcpchgrowth.chronological_decimal_age(birth, at)
    assert float(corrected_age_years(chrono, 26, 3)) == pytest.approx(expected, abs=1e-12)
    assert float(corrected_age_years(chrono)) == pytest.approx(chrono, abs=1e-12)


# Integer-day ages from 17 weeks before term (23 weeks gestation) to past 20 years, plus every edge.
EDGE_DAYS = [-120, -119, -106, -105, -1, 0, 13, 14, 15, 729, 730, 731, 1460, 1461, 1462]
EDGE_DAYS += [6209, 6210, 6574, 6575, 7304, 7305, 7306]
GRID_AGES = np.array(sorted(set(range(-125, 7400, 23)) | set(EDGE_DAYS))) / 365.25
GRID_SDS = (-2.5, 0.0, 1.7)


def _rcpch_sds(m: str, sex: str, age: float, value: float) -> float:
    try:
        return float(rcpchgrowth.sds_for_measurement("uk-who", age, m, value, sex))
    except LookupError:
        return math.nan


@pytest.mark.parametrize("sex", ["male", "female"])
@pytest.mark.parametrize("m", MEASUREMENTS)
def test_vectorised_agrees_with_scalar_rcpchgrowth_over_a_grid(m: str, sex: str) -> None:
    for z in GRID_SDS:
        values = value_from_sds(m, sex, GRID_AGES, z)  # type: ignore[arg-type]
        probe = np.where(np.isfinite(values), values, 10.0)  # any value: rcpchgrowth must refuse the age
        expected = np.array([_rcpch_sds(m, sex, a, v) for a, v in zip(GRID_AGES, probe, strict=True)])
        assert np.array_equal(np.isnan(values), np.isnan(expected)), "no-reference ages differ"
        ok = np.isfinite(expected)
        np.testing.assert_allclose(expected[ok], z, atol=1e-6)
        np.testing.assert_allclose(sds_from_value(m, sex, GRID_AGES, probe)[ok], z, atol=1e-6)  # type: ignore[arg-type]
        rcpch_values = [
            rcpchgrowth.measurement_from_sds("uk-who", z, m, sex, float(a)) for a in GRID_AGES[ok][::7]
        ]
        np.testing.assert_allclose(values[ok][::7], rcpch_values, atol=1e-4)  # rcpchgrowth rounds to 4 dp


def test_round_trip_on_mixed_rows() -> None:
    rng = np.random.default_rng(20261127)
    n = 50_000
    ages = rng.uniform(-0.3, 17.0, n)
    sex = rng.choice(np.array([1, 2, 8507, 8532]), n)
    for m in MEASUREMENTS:
        usable = ages >= (0.04 if m == "bmi" else -0.28)
        z = rng.uniform(-4, 4, n)
        values = value_from_sds(m, sex[usable], ages[usable], z[usable])  # type: ignore[arg-type]
        assert np.isfinite(values).all()
        back = sds_from_value(m, sex[usable], ages[usable], values)  # type: ignore[arg-type]
        np.testing.assert_allclose(back, z[usable], atol=1e-9)
        again = value_from_sds(m, sex[usable], ages[usable], back)  # type: ignore[arg-type]
        np.testing.assert_allclose(again, values, rtol=1e-12)


@pytest.mark.parametrize(
    ("m", "sex", "age_days", "has_reference"),
    [
        ("weight", "male", -120, False),  # before 23 weeks gestation
        ("weight", "male", -119, True),
        ("height", "female", -106, False),  # no length before 25 weeks gestation
        ("height", "female", -105, True),
        ("bmi", "male", 0, False),  # no BMI before 2 weeks after term
        ("bmi", "male", 14, True),
        ("ofc", "male", 6574, True),  # 17.999 y
        ("ofc", "male", 6575, False),  # 18.001 y: boys' OFC ends at 18 y
        ("ofc", "female", 6209, True),
        ("ofc", "female", 6210, False),  # girls' OFC ends at 17 y
        ("weight", "female", 7305, True),  # 20.0 y exactly
        ("weight", "female", 7306, False),
    ],
)
def test_reference_range_is_explicit(m: str, sex: str, age_days: int, has_reference: bool) -> None:
    big_l, big_m, big_s = lms(m, sex, age_days / 365.25)  # type: ignore[arg-type]
    assert bool(np.isfinite(big_m)) is has_reference
    assert bool(np.isfinite(big_l) and np.isfinite(big_s)) is has_reference
    # the scalar API reaches ages before term through the gestation: born at 40 + d // 7 weeks
    before_term = min(age_days, 0)
    weeks, days = 40 + before_term // 7, before_term % 7
    z = sds(m, 10.0, sex, max(age_days, 0) / 365.25, gestation_weeks=weeks, gestation_days=days)  # type: ignore[arg-type]
    assert math.isfinite(z) is has_reference


def test_lengths_under_two_years_and_the_join() -> None:
    # WHO lengths to 730 days, standing heights from 731 days: M drops by about 0.7 cm
    _, m_male, _ = lms("height", "male", np.array([730, 731]) / 365.25)
    _, m_female, _ = lms("height", "female", np.array([730, 731]) / 365.25)
    assert 0.6 < m_male[0] - m_male[1] < 0.8
    assert 0.6 < m_female[0] - m_female[1] < 0.8
    # between the last length day and 2.0 y there is no table row: held at day 730, not NaN
    held = lms("height", "male", 1.9995)
    assert [float(p) for p in held] == [float(p) for p in lms("height", "male", 730 / 365.25)]
    assert math.isfinite(sds("height", 87.0, "male", 1.9995))


def test_nan_for_missing_or_impossible_inputs() -> None:
    assert np.isnan(sds_from_value("weight", "male", [np.nan, 5.0, 5.0], [20.0, 0.0, -3.0])).all()
    assert np.isnan(value_from_sds("height", "male", 10.0, -40.0))  # 1 + L*S*z <= 0
    sex = pd.Series(["female", None, "male"], dtype=object)
    got = sds_from_value("weight", sex, 5.0, 18.0)
    assert np.isfinite(got[[0, 2]]).all()
    assert np.isnan(got[1])


def test_sex_codes() -> None:
    ages = np.array([3.0, 3.0])
    by_name = value_from_sds("weight", np.array(["male", "female"]), ages, 1.0)
    for codes in ([1, 2], [8507, 8532]):
        np.testing.assert_array_equal(value_from_sds("weight", np.array(codes), ages, 1.0), by_name)
    assert np.isnan(value_from_sds("weight", np.array([0, 9, 8551]), 3.0, 1.0)).all()
    for bad in (np.array([3]), np.array(["Male"]), np.array([1.0])):
        with pytest.raises(InputError) as caught:
            lms("weight", bad, 3.0)
        assert caught.value.field == "sex"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"measurement": "length"}, "measurement"),
        ({"sex": "unknown"}, "sex"),
        ({"value": 0.0}, "value"),
        ({"value": math.nan}, "value"),
        ({"age_years": -0.1}, "age_years"),
        ({"gestation_weeks": 20}, "gestation_weeks"),
        ({"gestation_days": 7}, "gestation_days"),
    ],
)
def test_scalar_bad_input_names_its_field(kwargs: dict[str, object], field: str) -> None:
    call: dict[str, object] = {"measurement": "weight", "value": 20.0, "sex": "male", "age_years": 6.0}
    call.update(kwargs)
    with pytest.raises(InputError) as caught:
        sds(**call)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_vectorised_refuses_an_unknown_measurement() -> None:
    with pytest.raises(InputError) as caught:
        lms("length", "male", 1.0)  # type: ignore[arg-type]
    assert caught.value.field == "measurement"


def test_front_door_is_small_and_growth_loads_lazily() -> None:
    import phds.paediatrics

    assert sorted(phds.paediatrics.__all__) == [
        "AgeGroup",
        "Measurement",
        "age_in_days",
        "age_in_months",
        "age_in_years",
        "centile",
        "ich_e11_group",
        "sds",
    ]
    for name in phds.paediatrics.__all__:
        assert getattr(phds.paediatrics, name) is not None
    probe = "import sys, phds.paediatrics; print('rcpchgrowth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
