"""The overlap audit (phds.privacy.overlap): each differencing attack with its ground truth, and the
legitimate releases that must pass."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.privacy.overlap import (
    REASON,
    ReleasedSet,
    Violation,
    atoms,
    audit_release,
    person_keys,
)

K = 5
SALT = b"test-salt-0123456789abcdef"
Band = Callable[[ReleasedSet, ReleasedSet], int]


def exact(s: ReleasedSet, t: ReleasedSet) -> int:
    """A band without secret: exactly k, so the ground truth is the textbook rule."""
    return K


def widest(s: ReleasedSet, t: ReleasedSet) -> int:
    return 2 * K - 1


def R(name: str, ids: Iterable[int] | np.ndarray) -> ReleasedSet:  # noqa: N802 - a set, like in the maths
    return ReleasedSet(name, person_keys(ids, SALT))


def refused(new: list[ReleasedSet], history: list[ReleasedSet], band: Band = exact) -> Violation | None:
    return audit_release(new, history, K, band)


# -- keys ---------------------------------------------------------------------------------------------


def test_person_keys_sorted_unique_keyed_and_type_blind() -> None:
    keys = person_keys([3, 1, 2, 3, "2"], SALT)
    assert keys.dtype == np.uint64
    assert keys.size == 3
    assert bool(np.all(keys[1:] > keys[:-1]))
    assert not np.array_equal(keys, person_keys([1, 2, 3], b"another-salt-0123456"))
    assert np.array_equal(person_keys(np.array([1, 2, 3]), SALT), keys)


def test_released_set_rejects_unsorted_keys() -> None:
    with pytest.raises(ValueError, match="sorted"):
        ReleasedSet("x", np.array([3, 1], dtype=np.uint64))
    assert ReleasedSet.of("x", np.array([3, 1, 3])).size == 2


# -- attacks ---------------------------------------------------------------------------------------------


def test_two_cohorts_differing_by_few_persons() -> None:
    """Stops plain differencing: |A| − |B| with A, B differing by 1..k−1 persons (and their sums)."""
    a = R("A", range(100))
    for d in range(1, K):
        v = refused([R("B", range(d, 100))], [a])
        assert v is not None
        assert v.kind == "pairwise"


def test_refusal_names_no_distance_and_band_hides_it() -> None:
    """Stops the refusal oracle: a refusal says nothing of the distance, and with the widest band a
    cohort 5..9 persons away is refused exactly like one 1..4 away."""
    a = R("A", range(100))
    v = refused([R("B", range(2, 100))], [a])
    assert v is not None
    assert v.reason == REASON
    assert not any(ch.isdigit() for ch in v.reason)
    for d in range(1, 2 * K - 1):
        assert refused([R("B", range(d, 100))], [a], widest) is not None
    assert refused([R("B", range(2 * K - 1, 100))], [a], widest) is None


def test_cohort_and_partition_of_slightly_smaller_cohort() -> None:
    """Stops A versus (A′∩female, A′∩male): the sum of the cells subtracted from |A| gives |A| − |A′|."""
    a = R("A", range(100))
    smaller = range(2, 100)
    cells = [R("female", [i for i in smaller if i % 2]), R("male", [i for i in smaller if not i % 2])]
    v = refused(cells, [a])
    assert v is not None
    assert v.kind == "combination"
    assert "2 persons" in v.detail


def test_cohort_after_partition_of_slightly_smaller_cohort() -> None:
    """Stops the same attack in the other order (the breakdown first, the larger cohort later)."""
    smaller = range(2, 100)
    cells = [R("female", [i for i in smaller if i % 2]), R("male", [i for i in smaller if not i % 2])]
    assert refused([R("A", range(100))], cells) is not None


def test_union_of_two_cohorts_plus_few() -> None:
    """Stops A = B ∪ C ∪ {few}: |A| − |B| − |C| counts the few, whichever of the three comes last."""
    a, b, c = R("A", range(100)), R("B", range(50)), R("C", range(50, 97))
    for new, hist in (([a], [b, c]), ([b], [a, c]), ([c], [a, b])):
        assert refused(new, hist) is not None


def test_collusion_two_requesters_each_get_one_count() -> None:
    """Stops collusion: history is per dataset, not per requester, so the second count is refused."""
    history = [R("A for org 1", range(200))]
    assert refused([R("A minus one, for org 2", range(1, 200))], history) is not None


def test_shifted_quantile_bins_isolate_one_person() -> None:
    """Stops shifted bins: old bins [0,20),[20,40),…; new [0,30),[30,41),[41,100): person 40 by difference
    although every bin is ≥ k persons from every other."""
    old = [R(f"q{i}", range(20 * i, 20 * i + 20)) for i in range(5)]
    new = [R("n0", range(30)), R("n1", range(30, 41)), R("n2", range(41, 100))]
    v = refused(new, old)
    assert v is not None
    assert v.kind == "combination"
    assert "1 persons" in v.detail


def test_nested_time_bins_isolate_two_persons() -> None:
    """Stops nested chains: cumulative counts by day 10, 20, 30 and a later chain cut 2 persons later."""
    old = [R(f"by {d}", range(d * 10)) for d in (1, 2, 3)]
    new = [R(f"to {d}", range(d * 10 - 10 + 2, d * 10 + 2)) for d in (1, 2, 3)]  # sliding windows
    assert refused(new, old) is not None


def test_two_linked_breakdowns_pin_a_small_cell() -> None:
    """Stops linked breakdowns: cohort by sex and by sex×group in which one sex's groups miss 3 persons."""
    cohort = range(100)
    by_sex = [R("F", range(50)), R("M", range(50, 100))]
    fine = [R("F group 1", range(0, 25)), R("F group 2", range(25, 47)), R("M all groups", range(50, 100))]
    v = refused(fine, [R("cohort", cohort), *by_sex])
    assert v is not None


def test_small_set_alone_is_refused() -> None:
    """Stops releasing a set of 1..k−1 persons outright."""
    assert refused([R("tiny", range(3))], []) is not None


# -- legitimate -----------------------------------------------------------------------------------------


def test_identical_cohort_repeated_passes() -> None:
    a = R("A", range(100))
    assert refused([R("A again", range(100))], [a]) is None


def test_disjoint_cohorts_pass() -> None:
    assert refused([R("B", range(100, 200))], [R("A", range(100))]) is None


def test_cohorts_2k_apart_pass() -> None:
    assert refused([R("B", range(2 * K, 100))], [R("A", range(100))], widest) is None


def test_breakdown_with_large_cells_of_earlier_cohort_passes() -> None:
    a = R("A", range(100))
    cells = [R(f"group {g}", range(g * 25, g * 25 + 25)) for g in range(4)]
    assert refused(cells, [a], widest) is None


def test_nested_quantile_bins_each_at_least_2k_apart_pass() -> None:
    old = [R(f"q{i}", range(20 * i, 20 * i + 20)) for i in range(5)]
    new = [R(f"r{i}", range(10 * i, 10 * i + 10)) for i in range(10)]  # a refinement: cells ≥ 2k
    assert refused(new, old, widest) is None
    assert refused([R("below", range(40)), R("above", range(40, 100))], old, widest) is None


def test_many_crossed_breakdowns_pass_without_hitting_the_cap() -> None:
    """Twenty random binary breakdowns of one cohort make every person an atom of their own; nothing is
    determined and the disjoint-bases certificate must say so without enumerating."""
    rng = np.random.default_rng(1)
    cohort = np.arange(2000)
    history = [R("cohort", cohort)]
    for j in range(20):
        flag = rng.random(cohort.size) < 0.5
        history += [R(f"b{j}+", cohort[flag]), R(f"b{j}-", cohort[~flag])]
    flag = rng.random(cohort.size) < 0.5
    assert refused([R("new+", cohort[flag]), R("new-", cohort[~flag])], history, widest) is None


# -- the invariant, by brute force -------------------------------------------------------------------------


def _rank(rows: list[list[Fraction]]) -> int:
    m = [r[:] for r in rows]
    rank = 0
    for c in range(len(m[0]) if m else 0):
        piv = next((i for i in range(rank, len(m)) if m[i][c] != 0), None)
        if piv is None:
            continue
        m[rank], m[piv] = m[piv], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][c] != 0:
                f = m[i][c] / m[rank][c]
                m[i] = [x - f * y for x, y in zip(m[i], m[rank], strict=True)]
        rank += 1
    return rank


def small_determined_union(sets: list[ReleasedSet], k: int) -> int | None:
    """Brute force: the size of some union of atoms with 1..k−1 persons whose size is determined."""
    if not sets:
        return None
    _, _, sizes, m = atoms(sets)
    rows = [[Fraction(int(x)) for x in row] for row in m]
    base = _rank(rows)
    n = len(sizes)
    for r in range(1, n + 1):
        for combo in itertools.combinations(range(n), r):
            total = int(sizes[list(combo)].sum())
            if 1 <= total < k:
                u = [Fraction(1 if i in combo else 0) for i in range(n)]
                if _rank([*rows, u]) == base:
                    return total
    return None


@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(2, 4),
    sets=st.lists(st.sets(st.integers(0, 9), min_size=1), min_size=1, max_size=6),
    salt=st.integers(0, 3),
)
def test_whenever_a_release_passes_no_small_union_is_determined(
    k: int, sets: list[set[int]], salt: int
) -> None:
    """The invariant: over every sequence of accepted releases, no union of atoms of 1..k−1 persons has
    a size determined by the released sizes (random bands in [k, 2k))."""

    def band(s: ReleasedSet, t: ReleasedSet) -> int:
        mac = hashlib.sha256(b"".join(sorted((s.digest, t.digest))) + bytes([salt])).digest()
        return k + mac[0] % k

    accepted: list[ReleasedSet] = []
    for i, ids in enumerate(sets):
        s = R(f"s{i}", sorted(ids))
        if audit_release([s], accepted, k, band) is None:
            accepted.append(s)
            assert small_determined_union(accepted, k) is None
