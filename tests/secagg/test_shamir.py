"""t-of-n sharing of 32-byte secrets: any t shares reconstruct, t − 1 do not, arguments are checked."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.errors import InputError
from phds.secagg.shamir import PRIME, Share, combine, split


@st.composite
def sharings(draw: st.DrawFn) -> tuple[bytes, int, int, list[int]]:
    n = draw(st.integers(2, 12))
    t = draw(st.integers(2, n))
    order = draw(st.permutations(range(n)))
    return draw(st.binary(min_size=32, max_size=32)), t, n, list(order)


@settings(max_examples=60, deadline=None)
@given(case=sharings())
def test_any_t_shares_reconstruct_the_secret(case: tuple[bytes, int, int, list[int]]) -> None:
    secret, t, n, order = case
    shares = split(secret, t, n)
    assert [s.index for s in shares] == list(range(1, n + 1))
    assert all(len(s.data) == 32 for s in shares)
    assert combine([shares[i] for i in order[:t]]) == secret


@settings(max_examples=60, deadline=None)
@given(case=sharings())
def test_t_minus_one_shares_give_something_else(case: tuple[bytes, int, int, list[int]]) -> None:
    """Fewer than t shares are independent of the secret: they interpolate to another value (but for a
    probability of 2^-256)."""
    secret, t, n, order = case
    shares = split(secret, t, n)
    assert combine([shares[i] for i in order[: t - 1]]) != secret


def test_two_sharings_of_one_secret_differ() -> None:
    secret = os.urandom(32)
    assert split(secret, 3, 5) != split(secret, 3, 5)


@pytest.mark.parametrize(
    ("secret", "t", "n", "field"),
    [
        (b"x" * 16, 2, 3, "secret"),
        ("x" * 32, 2, 3, "secret"),
        (b"x" * 32, 1, 3, "threshold"),
        (b"x" * 32, 4, 3, "threshold"),
        (b"x" * 32, 2, 256, "field n"),
        (b"x" * 32, True, 3, "threshold"),
    ],
)
def test_bad_split_arguments_are_named(secret: bytes, t: int, n: int, field: str) -> None:
    with pytest.raises(InputError, match=field):
        split(secret, t, n)


def test_bad_shares_are_named() -> None:
    shares = split(os.urandom(32), 2, 3)
    with pytest.raises(InputError, match="at least one"):
        combine([])
    with pytest.raises(InputError, match="twice"):
        combine([shares[0], shares[0]])
    with pytest.raises(InputError, match="32 bytes"):
        combine([shares[0], Share(2, b"short")])
    with pytest.raises(InputError, match="index"):
        combine([shares[0], Share(0, shares[1].data)])


def test_the_field_is_the_smallest_prime_above_2_to_the_256() -> None:
    """Miller–Rabin with 64 random bases (error below 4⁻⁶⁴) for p = 2²⁵⁶ + 297, and no prime between."""
    import random

    def probably_prime(n: int) -> bool:
        d, r = n - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(64):
            x = pow(random.randrange(2, n - 1), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    assert PRIME == 2**256 + 297 and probably_prime(PRIME)
    assert not any(probably_prime(2**256 + k) for k in range(1, 297, 2))


def test_more_than_t_shares_also_reconstruct() -> None:
    secret = os.urandom(32)
    assert combine(split(secret, 3, 7)) == secret
