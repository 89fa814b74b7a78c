"""N-K and p% dominance, residual dof, few-valued columns as counts (phds.privacy.dominance), on CNSIM."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.errors import ConfigError, DisclosureRefused
from phds.privacy.dominance import (
    DISCRETE_MAX_LEVELS,
    DominanceRules,
    as_count_if_discrete,
    check_nk,
    check_p_percent,
    check_residual_dof,
    check_sum,
)

SITES = (1, 2, 3)


def cnsim(shared_data: Path, site: int) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "tabular" / "datashield" / "CNSIM" / f"CNSIM{site}.csv", index_col=0)
    return df.rename(columns=lambda c: c.strip())  # CNSIM headers carry trailing spaces


def test_defaults_are_acros_default_yaml() -> None:
    """AI-SDC/ACRO acro/default.yaml: safe_nk_n 2, safe_nk_k 0.90, safe_pratio_p 0.10, safe_dof 10."""
    assert DominanceRules() == DominanceRules(nk_n=2, nk_k=0.9, p_ratio=0.1, min_dof=10)


def test_a_policy_may_tighten_the_rules() -> None:
    rules = DominanceRules.from_policy({"nk_n": 3, "nk_k": 0.8, "p_ratio": 0.2, "min_dof": 20})
    assert rules == DominanceRules(3, 0.8, 0.2, 20)
    assert DominanceRules.from_policy(None) == DominanceRules()


@pytest.mark.parametrize(
    "override", [{"nk_n": 1}, {"nk_k": 0.95}, {"p_ratio": 0.05}, {"min_dof": 5}, {"safe_threshold": 3}]
)
def test_a_policy_may_not_loosen_the_rules(override: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DominanceRules.from_policy(override)


def test_nk_refuses_two_rows_carrying_the_sum_and_passes_at_the_boundary() -> None:
    check_nk("x", [45, 45, 10])  # top two exactly 90 %: ACRO's agg_nk refuses only above k
    with pytest.raises(DisclosureRefused, match="N-K"):
        check_nk("x", [46, 45, 9])
    check_nk("x", [0, 0, 0])  # a zero total has no dominant contributor


def test_nk_uses_absolute_values() -> None:
    with pytest.raises(DisclosureRefused, match="'x'"):
        check_nk("x", [-1000.0, 1.0, 1.0, 1.0])


def test_p_percent_refuses_one_or_two_contributors_and_a_close_estimate() -> None:
    for few in ([5.0], [5.0, 3.0]):
        with pytest.raises(DisclosureRefused, match="p%"):
            check_p_percent("x", few)
    with pytest.raises(DisclosureRefused, match="p%"):
        check_p_percent("x", [100.0, 50.0, 9.0])  # the rest is below 10 % of the largest
    check_p_percent("x", [100.0, 50.0, 10.0])
    check_p_percent("x", [0.0, 0.0])


def test_check_sum_skips_a_zero_total_and_runs_both_rules() -> None:
    """With ACRO's defaults N-K implies p%: rest ≥ 0.1·total gives rest ≥ (top1 + top2)/9 > 0.1·top1."""
    check_sum("x", np.zeros(7))
    check_sum("x", np.ones(20))
    with pytest.raises(DisclosureRefused, match="N-K"):
        check_sum("x", [100.0, 3.0, 3.0, 3.0])
    with pytest.raises(DisclosureRefused, match="p%"):
        check_sum("x", [100.0, 50.0, 9.0], DominanceRules(nk_k=0.99))


def test_residual_dof_follows_acros_threshold() -> None:
    check_residual_dof(15, 5)
    with pytest.raises(DisclosureRefused, match="degrees of freedom") as info:
        check_residual_dof(14, 5)
    assert not re.search(r"\d", info.value.message)
    with pytest.raises(DisclosureRefused):
        check_residual_dof(19, 5, DominanceRules(min_dof=15))


@pytest.mark.parametrize("site", SITES)
def test_cnsim_sums_pass_dominance(shared_data: Path, site: int) -> None:
    df = cnsim(shared_data, site)
    for column in ("LAB_TSC", "LAB_TRIG", "LAB_HDL", "PM_BMI_CONTINUOUS"):
        values = df[column].dropna().to_numpy()
        check_sum(column, values)
        check_sum(f"{column} squared", values**2)


@pytest.mark.parametrize("site", SITES)
def test_attack_one_large_value_carries_a_sum_is_refused(shared_data: Path, site: int) -> None:
    """Attack: a summary's sum of exp(50·x) is the maximum's exp: one row carries it (N-K and p%)."""
    hdl = cnsim(shared_data, site)["LAB_HDL"].dropna().to_numpy()
    with pytest.raises(DisclosureRefused, match="N-K"):
        check_sum("exp(50*LAB_HDL)", np.exp(50 * hdl))


@pytest.mark.parametrize("site", SITES)
def test_attack_mean_of_a_zero_one_column_is_a_count(shared_data: Path, site: int) -> None:
    """Attack: the mean of I(LAB_HDL == v) for one patient's value v is 1/N: a count of one."""
    df = cnsim(shared_data, site)
    hdl = df["LAB_HDL"].dropna()
    v = hdl.value_counts().loc[lambda c: c == 1].index[0]
    with pytest.raises(DisclosureRefused, match="treated as a count") as info:
        as_count_if_discrete("I(LAB_HDL == v)", (hdl == v).astype(float), k=5)
    assert not re.search(r"\d", info.value.message)
    # the real 0/1 and few-valued columns have every value on at least five rows at every site
    for column in ("DIS_DIAB", "GENDER", "PM_BMI_CATEGORICAL"):
        assert as_count_if_discrete(column, df[column].dropna(), k=5)
    assert not as_count_if_discrete("LAB_HDL", hdl, k=5)


@pytest.mark.parametrize("site", SITES)
def test_attack_three_valued_column_is_a_count(shared_data: Path, site: int) -> None:
    """Attack: (x > v) + (x >= v) has three values, so passes nfilter.tab; its middle value is v's row."""
    hdl = cnsim(shared_data, site)["LAB_HDL"].dropna()
    v = hdl.value_counts().loc[lambda c: c == 1].index[0]
    three = (hdl > v).astype(float) + (hdl >= v).astype(float)
    assert three.nunique() == 3 <= DISCRETE_MAX_LEVELS
    with pytest.raises(DisclosureRefused, match="treated as a count"):
        as_count_if_discrete("three", three, k=5)


def refusal(call: Callable[[], object]) -> str | None:
    """The message of the DisclosureRefused *call* raises, or None if it passes."""
    try:
        call()
    except DisclosureRefused as exc:
        return exc.message
    return None


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(name=names, values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40))
def test_dominance_messages_never_carry_a_digit(name: str, values: list[float]) -> None:
    for rule in (check_nk, check_p_percent, check_sum):
        message = refusal(lambda rule=rule: rule(name, values))
        if message is not None:
            assert not re.search(r"\d", message)
            assert repr(name) in message


@settings(max_examples=200, deadline=None)
@given(
    name=names,
    values=st.lists(st.integers(0, 4), min_size=1, max_size=60),
    k=st.integers(5, 12),
)
def test_count_messages_never_carry_a_digit(name: str, values: list[int], k: int) -> None:
    smallest = min(np.unique(values, return_counts=True)[1])
    message = refusal(lambda: as_count_if_discrete(name, values, k))
    if message is not None:
        assert not re.search(r"\d", message)
        assert smallest < k
    else:
        assert as_count_if_discrete(name, values, k) and smallest >= k


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_rules_match_their_definitions(values: list[float]) -> None:
    ordered = sorted(values, reverse=True)
    total = sum(ordered)
    nk_fails = total > 0 and sum(ordered[:2]) > 0.9 * total
    rest = total - ordered[0] - (ordered[1] if len(ordered) > 1 else 0.0)
    p_fails = total > 0 and rest < 0.1 * ordered[0]
    for rule, fails in ((check_nk, nk_fails), (check_p_percent, p_fails)):
        refused = refusal(lambda rule=rule: rule("x", values)) is not None
        # float rounding at the exact boundary may go either way
        boundary = abs(sum(ordered[:2]) - 0.9 * total) < 1e-9 * max(total, 1) or abs(
            rest - 0.1 * ordered[0]
        ) < 1e-9 * max(total, 1)
        assert refused == fails or boundary
