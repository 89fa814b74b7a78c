"""Small counts, network totals, GLM and quantile rules (phds.privacy.disclosure)."""

from __future__ import annotations

import json

import pytest

from phds.errors import DisclosureRefused, InputError
from phds.privacy.disclosure import (
    check_binary_levels,
    check_glm_saturation,
    is_small,
    network_total,
    release_count,
)
from phds.protocol.releases import ReleasedCount


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_counts_below_five_leave_only_as_less_than_five(n: int) -> None:
    rc = release_count(n)
    assert rc.suppressed
    assert rc.value is None
    assert str(rc) == "<5"
    assert (rc.lower, rc.upper) == (1, 4)
    shown = {k: v for k, v in rc.model_dump(mode="json").items() if k not in {"lower", "upper"}}
    assert str(n) not in json.dumps(shown)


def test_five_and_above_leave_exactly() -> None:
    assert release_count(5) == ReleasedCount.exact(5, 5)
    assert str(release_count(1234)) == "1234"


def test_zero_is_released_by_default_as_ohdsi_does() -> None:
    rc = release_count(0)
    assert not rc.suppressed
    assert rc.value == 0
    assert str(rc) == "0"


def test_zero_is_suppressed_when_the_policy_says_so() -> None:
    rc = release_count(0, release_zero=False)
    assert rc.suppressed
    assert str(rc) == "<5"
    assert (rc.lower, rc.upper) == (0, 4)
    assert is_small(0, 5, release_zero=False)
    assert not is_small(0, 5)


@pytest.mark.parametrize("n", [1, 5, 10])
def test_raised_threshold_eleven_suppresses_up_to_ten(n: int) -> None:
    rc = release_count(n, 11)
    assert rc.suppressed
    assert str(rc) == "<11"
    assert (rc.lower, rc.upper) == (1, 10)
    assert release_count(11, 11).value == 11


def test_threshold_below_the_network_floor_is_refused() -> None:
    with pytest.raises(InputError, match="below the network floor 5"):
        release_count(7, 3)


def test_negative_count_is_an_input_error() -> None:
    with pytest.raises(InputError, match="negative"):
        release_count(-1)


def test_network_total_is_exact_without_suppression() -> None:
    total = network_total([release_count(10), release_count(0), release_count(7)])
    assert (total.lower, total.upper, total.exact) == (17, 17, True)
    assert str(total) == "17"


def test_network_total_bounds_when_hospitals_suppressed() -> None:
    counts = [release_count(10), release_count(3), release_count(2), release_count(0, release_zero=False)]
    total = network_total(counts)
    assert (total.lower, total.upper) == (10 + 1 + 1 + 0, 10 + 4 + 4 + 4)
    assert total.suppressed_contributions == 3
    assert not total.exact
    assert str(total) == "12–22"
    assert total.lower <= 10 + 3 + 2 + 0 <= total.upper


def test_glm_saturation_follows_datashield_nfilter_glm() -> None:
    check_glm_saturation(33, 100)  # 33 ≤ 0.33 × 100
    with pytest.raises(DisclosureRefused, match=r"nfilter.glm 0.33"):
        check_glm_saturation(34, 100)
    with pytest.raises(DisclosureRefused):
        check_glm_saturation(20, 100, nfilter_glm=0.1)


def test_binary_level_with_too_few_patients_is_refused() -> None:
    check_binary_levels("sex", {"F": 50, "M": 5}, 5)
    with pytest.raises(DisclosureRefused, match=r"'sex'.*nfilter\.tab = 5"):
        check_binary_levels("sex", {"F": 50, "M": 4}, 5)
    with pytest.raises(DisclosureRefused):
        check_binary_levels("outcome", {"0": 90, "1": 10}, 11)


def test_one_level_or_many_levels_are_not_binary_as_in_datashield() -> None:
    check_binary_levels("constant", {"0": 40, "1": 0}, 5)  # one observed level: constant, not binary
    check_binary_levels("three", {"a": 40, "b": 1, "c": 9}, 5)  # not binary; breakdown rules apply
