"""Complementary suppression: no hidden cell of one breakdown can be recovered from what was released.

The property test plays an independent attacker: it knows every released value, what each marker means
("<k" is 1..k-1, or 0..k-1 when zeros are hidden; "≥k" is at least k and, as complementary cells are
chosen smallest first, at most every cell still released; "suppressed" is anything) and that the cells
add up to the total. It enumerates achievable sums (not the library's interval formula) and requires
every hidden value to keep at least two possible values.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.privacy.disclosure import ReleasedBreakdown, ReleasedCount, protect_breakdown


def _sums(boxes: list[tuple[int, int]]) -> int:
    """Bitmask of every sum the boxes can reach (bit s set: sum s reachable)."""
    mask = 1
    for lo, hi in boxes:
        nxt = 0
        for v in range(lo, hi + 1):
            nxt |= mask << v
        mask = nxt
    return mask


def attacker_view(bd: ReleasedBreakdown, k: int, release_zero: bool) -> dict[str, set[int]]:
    """Every value each hidden cell (and a hidden total) can still take, by enumeration."""
    floor = 1 if release_zero else 0
    released = {n: c.value for n, c in bd.cells.items() if not c.suppressed}
    released_sum = sum(v for v in released.values() if v is not None)
    bound = bd.total.value if not bd.total.suppressed else k - 1
    assert bound is not None
    big = [v for v in released.values() if v is not None and v >= k]
    cap = min(big) if big else bound

    def prior(c: ReleasedCount) -> tuple[int, int]:
        if c.kind == "small":
            return (floor, min(k - 1, bound))
        if c.kind == "complementary":
            return (k, min(cap, bound))
        return (0, bound)

    hidden = {n: prior(c) for n, c in bd.cells.items() if c.suppressed}
    totals = {bd.total.value} if not bd.total.suppressed else set(range(floor, k))
    view: dict[str, set[int]] = {}
    for name, (lo, hi) in hidden.items():
        others = _sums([b for n, b in hidden.items() if n != name])
        view[name] = {
            v
            for v in range(lo, hi + 1)
            if any(t is not None and t - released_sum - v >= 0 and others >> (t - released_sum - v) & 1
                   for t in totals)
        }  # fmt: skip
    if bd.total.suppressed:
        all_hidden = _sums(list(hidden.values()))
        view["<total>"] = {
            t for t in totals if t - released_sum >= 0 and all_hidden >> (t - released_sum) & 1
        }
    return view


cells_strategy = st.lists(
    st.one_of(st.integers(0, 6), st.integers(0, 16), st.sampled_from([0, 1, 4, 5, 10, 11])),
    min_size=1,
    max_size=5,
)


@settings(max_examples=400, deadline=None)
@given(cells=cells_strategy, k=st.sampled_from([5, 6, 11]), release_zero=st.booleans())
def test_no_hidden_cell_is_recoverable_by_subtraction(cells: list[int], k: int, release_zero: bool) -> None:
    table = {f"c{i}": v for i, v in enumerate(cells)}
    bd = protect_breakdown(table, k, release_zero=release_zero)
    total = sum(cells)
    # Released cells are exact and never small.
    for name, rc in bd.cells.items():
        if not rc.suppressed:
            assert rc.value == table[name]
            assert rc.value >= k or (rc.value == 0 and release_zero)
        else:
            assert rc.value is None
            assert rc.lower <= table[name] <= rc.upper
    if not bd.total.suppressed:
        assert bd.total.value == total
        assert total >= k or (total == 0 and release_zero)
    view = attacker_view(bd, k, release_zero)
    truth = {**table, "<total>": total}
    for name, possible in view.items():
        assert truth[name] in possible, (name, possible)
        assert len(possible) >= 2, f"{name} recoverable as {possible} from {bd}"
        if name != "<total>":
            # The published interval is exactly what the attacker can deduce: nothing more, nothing less.
            assert (bd.cells[name].lower, bd.cells[name].upper) == (min(possible), max(possible))


def test_one_small_cell_with_released_total_also_hides_the_next_smallest() -> None:
    bd = protect_breakdown({"a": 2, "b": 7, "c": 30})
    assert [str(c) for c in bd.cells.values()] == ["<5", "≥5", "30"]
    assert str(bd.total) == "39"
    assert (bd.cells["a"].lower, bd.cells["a"].upper) == (1, 4)
    assert (bd.cells["b"].lower, bd.cells["b"].upper) == (5, 8)


def test_total_minus_cells_cannot_pin_a_small_cell() -> None:
    # 1 + 5 + 5: hiding the 1 and one 5 would still pin the 1 (sum 6, the 5 is ≥ 5), so all are withheld.
    bd = protect_breakdown({"a": 1, "b": 5, "c": 5})
    assert all(c.suppressed for c in bd.cells.values())
    assert {c.kind for c in bd.cells.values()} == {"withheld"}
    assert str(bd.total) == "11"
    assert str(bd.cells["a"]) == "suppressed"


def test_small_cells_adding_up_to_the_total_are_withheld() -> None:
    # Five cells of 1 make a total of 5: five cells of at least 1 each would all be exactly 1.
    bd = protect_breakdown({f"c{i}": 1 for i in range(5)})
    assert str(bd.total) == "5"
    assert all(c.kind == "withheld" and c.lower == 0 and c.upper == 5 for c in bd.cells.values())


def test_two_cells_of_four_are_not_both_pinned() -> None:
    bd = protect_breakdown({"a": 4, "b": 4})
    assert all(c.suppressed and c.upper - c.lower >= 1 for c in bd.cells.values())


def test_small_total_is_suppressed_and_zero_cells_released() -> None:
    bd = protect_breakdown({"a": 3, "b": 0})
    assert str(bd.total) == "<5"
    assert str(bd.cells["a"]) == "<5"
    assert str(bd.cells["b"]) == "0"


def test_zero_cell_is_not_chosen_as_the_complement() -> None:
    bd = protect_breakdown({"a": 1, "b": 0, "c": 50})
    assert str(bd.cells["b"]) == "0"
    assert bd.cells["c"].kind == "complementary"
    assert bd.cells["a"].upper > bd.cells["a"].lower


def test_raised_threshold_applies_to_every_cell() -> None:
    bd = protect_breakdown({"a": 10, "b": 12, "c": 40}, 11)
    assert str(bd.cells["a"]) == "<11"
    assert str(bd.cells["b"]) == "≥11"
    assert str(bd.cells["c"]) == "40"


def test_nothing_small_means_nothing_suppressed() -> None:
    bd = protect_breakdown({"a": 5, "b": 0, "c": 17})
    assert [c.value for c in bd.cells.values()] == [5, 0, 17]
    assert bd.total.value == 22


def test_negative_cells_are_refused() -> None:
    from phds.errors import InputError

    with pytest.raises(InputError):
        protect_breakdown({"a": -1, "b": 10})
