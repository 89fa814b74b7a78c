"""Fixed-point encoding into Z_{2^64}: sums decode within n/(2·scale), integers exactly, overflow refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.errors import InputError
from phds.secagg.encoding import CAPACITY, FixedPoint, add, sub, total_of
from phds.secagg.prg import mask

SCALES = st.sampled_from([1, 10, 2**16, 10**6, 2**24])


@settings(max_examples=200, deadline=None)
@given(
    scale=SCALES,
    rows=st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=3, max_size=3),
        min_size=1,
        max_size=12,
    ),
)
def test_decoded_sum_is_within_n_over_two_scale(scale: int, rows: list[list[float]]) -> None:
    fp = FixedPoint(scale=scale, clip=1e6)
    fp.check_capacity(len(rows))
    total = total_of([fp.encode(row, len(rows)) for row in rows], 3)
    exact = np.sum(np.array(rows), axis=0)
    # the bound plus float64's own rounding of the exact sum and of the division
    slack = fp.max_error(len(rows)) + 1e-9 * float(np.max(np.abs(exact), initial=1.0))
    assert np.all(np.abs(fp.decode(total) - exact) <= slack)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.integers(-(2**40), 2**40), min_size=4, max_size=4), min_size=1, max_size=20))
def test_integers_at_scale_one_are_exact_including_negative(rows: list[list[int]]) -> None:
    fp = FixedPoint(scale=1)
    total = total_of([fp.encode(np.array(row, dtype=np.float64)) for row in rows], 4)
    exact = [sum(col) for col in zip(*rows, strict=True)]
    assert fp.decode_int(total).tolist() == exact
    assert fp.decode(total).tolist() == [float(x) for x in exact]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    values=st.lists(st.integers(-1000, 1000), min_size=5, max_size=5),
)
def test_a_mask_added_then_subtracted_leaves_the_value(seed: bytes, values: list[int]) -> None:
    """The group is Z_{2^64}: uint64 arithmetic wraps, so masking is exactly undone."""
    fp = FixedPoint()
    x = fp.encode(np.array(values, dtype=float))
    m = mask(seed, 5)
    assert np.array_equal(sub(add(x, m), m), x)
    assert fp.decode_int(sub(add(x, m), m)).tolist() == values


def test_clipping_and_the_documented_bound() -> None:
    fp = FixedPoint(scale=100, clip=1.0)
    assert fp.decode(fp.encode([5.0, -5.0, 0.004, 0.005, -0.016])).tolist() == [1.0, -1.0, 0.0, 0.0, -0.02]
    assert fp.max_error(10) == 10 / 200


def test_capacity_is_checked_against_two_to_the_62() -> None:
    FixedPoint(scale=2**20, clip=2**30).check_capacity(2**11)  # 2^61
    with pytest.raises(InputError, match="field secure_aggregation"):
        FixedPoint(scale=2**20, clip=2**30).check_capacity(2**12)  # 2^62
    with pytest.raises(InputError, match="field secure_aggregation"):
        FixedPoint(scale=1).encode([float(CAPACITY)])
    with pytest.raises(InputError, match="field secure_aggregation"):
        FixedPoint(scale=1).encode([float(CAPACITY // 4)], n_parties=4)


@pytest.mark.parametrize("bad", [[float("nan")], [float("inf")], [[1.0, 2.0]]])
def test_non_finite_or_not_one_dimensional_values_are_refused(bad: list[object]) -> None:
    with pytest.raises(InputError, match="field values"):
        FixedPoint().encode(bad)


@pytest.mark.parametrize(("scale", "clip"), [(0, None), (1.5, None), (1, 0.0), (1, float("inf"))])
def test_bad_parameters_are_refused(scale: int, clip: float | None) -> None:
    with pytest.raises(InputError):
        FixedPoint(scale=scale, clip=clip)


def test_vectors_must_be_uint64_of_one_length() -> None:
    with pytest.raises(InputError, match="uint64"):
        add(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.uint64))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="3 entries"):
        sub(np.zeros(3, dtype=np.uint64), np.zeros(4, dtype=np.uint64))
