"""Differential privacy through real OpenDP (phds.privacy.dp): losses, noisy counts, sums, quantiles.

OpenDP's samplers cannot be seeded, so the empirical checks use wide enough samples that a false failure
is rarer than 1 in 10,000 (the bands are ≥ 3.7 standard errors from the expected coverage).
"""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pytest
from scipy.stats import norm

from phds.errors import InputError
from phds.privacy.dp import (
    DEFAULT_DELTA,
    DP_ALPHA,
    NoisyValues,
    PrivacyLoss,
    clamp_nonnegative,
    noisy_counts,
    noisy_quantile,
    noisy_sums,
    quantiles_from_counts,
    sum_ci95,
)

dp.enable_features("contrib")

WIDE = PrivacyLoss(1e-4)  # σ ≈ 70.7: the discrete intervals' rounding is negligible at this scale
DRAWS = 2_000


def _covered(releases: list[NoisyValues], truth: float) -> float:
    return float(np.mean([lo <= truth <= hi for r in releases for lo, hi in [r.interval(0)]]))


# -- PrivacyLoss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0, 2.0, 8.0])
def test_from_epsilon_round_trips_and_never_exceeds_epsilon(epsilon: float) -> None:
    loss = PrivacyLoss.from_epsilon(epsilon, DEFAULT_DELTA)
    back = loss.epsilon(DEFAULT_DELTA)
    assert back <= epsilon
    assert back == pytest.approx(epsilon, rel=1e-9)
    # OpenDP's conversion (CKS20) is tighter than Bun-Steinke's closed form, so it allows a larger ρ
    bs = loss.rho + 2 * math.sqrt(loss.rho * math.log(1 / DEFAULT_DELTA))
    assert bs > epsilon
    assert loss.to_json(DEFAULT_DELTA) == {"rho": loss.rho, "epsilon": back, "delta": DEFAULT_DELTA}


def test_losses_add_order_and_split() -> None:
    a, b = PrivacyLoss(0.1), PrivacyLoss(0.25)
    assert (a + b).rho == pytest.approx(0.35)
    assert a + PrivacyLoss.zero() == a
    assert PrivacyLoss.zero() < a < b
    assert sorted([b, a, PrivacyLoss.zero()]) == [PrivacyLoss.zero(), a, b]
    assert max(a, b) == b
    assert b.split(5) == PrivacyLoss(0.05)
    parts = [b.split(5)] * 5
    assert sum(parts, PrivacyLoss.zero()).rho == pytest.approx(b.rho)
    # more ρ, more ε; and zero ρ is zero ε
    assert a.epsilon(DEFAULT_DELTA) < b.epsilon(DEFAULT_DELTA)
    assert PrivacyLoss.zero().epsilon(DEFAULT_DELTA) == 0.0
    assert PrivacyLoss.from_epsilon(0.0, DEFAULT_DELTA) == PrivacyLoss.zero()


def test_bad_losses_name_their_field() -> None:
    with pytest.raises(InputError) as neg:
        PrivacyLoss(-0.1)
    assert neg.value.field == "dp.rho"
    with pytest.raises(InputError) as delta:
        PrivacyLoss(0.1).epsilon(0.0)
    assert delta.value.field == "dp.delta"
    with pytest.raises(InputError):
        PrivacyLoss(0.1).split(0)
    with pytest.raises(InputError):
        noisy_counts([1], PrivacyLoss.zero())


# -- noisy_counts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [1e-4, 0.0243559703595368, 0.123456, 1.0, 7.0])
def test_opendp_privacy_map_equals_the_requested_rho(rho: float) -> None:
    gauss = noisy_counts([3, 4], PrivacyLoss(rho))
    m = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=gauss.scale)
    assert m.map(1) <= rho
    assert m.map(1) == pytest.approx(rho, rel=1e-9)
    assert gauss.loss.rho == pytest.approx(rho, rel=1e-9)
    assert gauss.loss.rho <= rho
    assert gauss.ci95 == dp.discrete_gaussian_scale_to_accuracy(gauss.scale, alpha=DP_ALPHA)

    lap = noisy_counts([3, 4], PrivacyLoss(rho), mechanism="discrete_laplace")
    pure = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=lap.scale)
    assert pure.map(1) == pytest.approx(math.sqrt(2 * rho), rel=1e-9)  # ε = √(2ρ): BS16 Prop. 1.4
    assert dp.c.make_pureDP_to_zCDP(pure).map(1) == pytest.approx(rho, rel=1e-9)
    assert lap.loss.rho <= rho
    assert lap.ci95 == dp.discrete_laplacian_scale_to_accuracy(lap.scale, alpha=DP_ALPHA)


@pytest.mark.parametrize("mechanism", ["discrete_gaussian", "discrete_laplace"])
def test_reported_interval_covers_the_true_count_95_percent_of_the_time(mechanism: str) -> None:
    truth = 37
    releases = [noisy_counts([truth], WIDE, mechanism=mechanism) for _ in range(DRAWS)]  # type: ignore[arg-type]
    assert all(isinstance(r.values[0], int) for r in releases)
    assert 0.93 <= _covered(releases, truth) <= 0.97
    noise = np.array([r.values[0] - truth for r in releases])
    assert abs(noise.mean()) < 6 * releases[0].scale / math.sqrt(DRAWS)  # unbiased


def test_sensitivity_scales_the_noise() -> None:
    loss = PrivacyLoss(0.5)
    one, two = noisy_counts([5], loss), noisy_counts([5], loss, l2_sensitivity=2.0)
    assert two.scale == pytest.approx(2 * one.scale)
    assert two.loss.rho == pytest.approx(one.loss.rho)
    assert (one.sensitivity, two.sensitivity) == (1.0, 2.0)
    lap_one = noisy_counts([5], loss, mechanism="discrete_laplace")
    lap_two = noisy_counts([5], loss, mechanism="discrete_laplace", l1_sensitivity=2.0)
    assert lap_two.scale == pytest.approx(2 * lap_one.scale)
    # a non-integer L2 sensitivity (a person in two cells of a vector: √2) goes through a float metric
    root2 = noisy_counts([5, 6], loss, l2_sensitivity=math.sqrt(2))
    assert root2.scale == pytest.approx(math.sqrt(2) * one.scale)


def test_counts_are_integers_and_clamping_is_post_processing() -> None:
    with pytest.raises(InputError) as bad:
        noisy_counts([1.5], PrivacyLoss(1.0))
    assert bad.value.field == "dp.counts"
    with pytest.raises(InputError):
        noisy_counts([1], PrivacyLoss(1.0), mechanism="gaussian")  # type: ignore[arg-type]
    zeros = noisy_counts([0] * 200, PrivacyLoss(0.01))
    assert any(v < 0 for v in zeros.values)  # no clamping by default
    clamped = clamp_nonnegative(zeros)
    assert all(v >= 0 for v in clamped.values)
    assert (clamped.scale, clamped.loss, clamped.ci95) == (zeros.scale, zeros.loss, zeros.ci95)
    assert noisy_counts([], PrivacyLoss(1.0)).values == []


# -- noisy_sums ------------------------------------------------------------------------------------


def test_sums_clip_each_person_to_the_bounds() -> None:
    x = np.ones(100)
    x[-1] = 1e9  # one huge outlier
    out = noisy_sums({"cost": x}, {"cost": (0.0, 10.0)}, PrivacyLoss(0.5))
    release = out["cost"]
    assert release.mechanism == "gaussian"
    assert isinstance(release.values[0], float)
    assert abs(release.values[0] - (99 + 10)) <= 6 * release.scale
    assert release.ci95 == dp.gaussian_scale_to_accuracy(release.scale, alpha=DP_ALPHA)


def test_sums_need_bounds_for_every_column_and_sane_bounds() -> None:
    cols = {"a": np.ones(5), "b": np.ones(5)}
    with pytest.raises(InputError) as missing:
        noisy_sums(cols, {"a": (0.0, 1.0)}, PrivacyLoss(1.0))
    assert missing.value.field == "dp.bounds.b"
    assert "dp.bounds.b" in str(missing.value)
    with pytest.raises(InputError) as upside:
        noisy_sums(cols, {"a": (0.0, 1.0), "b": (2.0, 1.0)}, PrivacyLoss(1.0))
    assert upside.value.field == "dp.bounds.b"
    with pytest.raises(InputError):
        noisy_sums({"a": np.ones(5), "b": np.ones(4)}, {"a": (0, 1), "b": (0, 1)}, PrivacyLoss(1.0))


def test_sums_share_one_joint_sensitivity_and_spend_the_loss_once() -> None:
    rho = 0.2
    out = noisy_sums(
        {"a": np.full(50, 2.0), "b": np.full(50, -1.0)}, {"a": (0.0, 3.0), "b": (-4.0, 2.0)}, PrivacyLoss(rho)
    )
    assert set(out) == {"a", "b"}
    a, b = out["a"], out["b"]
    assert a.sensitivity == b.sensitivity == pytest.approx(5.0, rel=1e-9)  # √(3² + 4²)
    assert a.scale == b.scale == pytest.approx(5.0 / math.sqrt(2 * rho), rel=1e-9)
    assert a.loss == b.loss and a.loss.rho == pytest.approx(rho, rel=1e-9) and a.loss.rho <= rho
    m = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float), scale=a.scale
    )
    assert m.map(a.sensitivity) <= rho


# -- quantiles -------------------------------------------------------------------------------------


def test_private_median_of_uniform_values_is_close() -> None:
    values = np.random.default_rng(7).random(1_000)
    median, spent = noisy_quantile(values, np.linspace(0, 1, 101).tolist(), 0.5, PrivacyLoss(1.0))
    assert abs(median - float(np.median(values))) <= 0.1
    assert spent.rho <= 1.0
    assert spent.rho == pytest.approx(1.0, rel=1e-6)
    assert median in set(np.linspace(0, 1, 101).tolist())


def test_quantiles_from_a_noiseless_histogram_are_exact() -> None:
    data = np.arange(100) + 0.5  # evenly spread: 10 values in each bin of width 10
    edges = list(range(0, 101, 10))
    counts, _ = np.histogram(data, bins=edges)
    alphas = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    assert quantiles_from_counts(edges, counts.tolist(), alphas) == pytest.approx([0, 10, 25, 50, 90, 100])
    # negative (noisy) counts count as 0, empty end bins drop out, linear inside a bin
    got = quantiles_from_counts([0, 1, 2, 3, 4, 5], [-2, 4, 0, 4, -1], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert got == pytest.approx([1.0, 1.5, 2.0, 3.5, 4.0])
    with pytest.raises(InputError):
        quantiles_from_counts([0, 1], [0, 1], [0.5])
    with pytest.raises(InputError):
        quantiles_from_counts([0, 1, 2], [-1, 0], [0.5])


# -- sums of releases ------------------------------------------------------------------------------


def test_ci95_of_a_network_total_of_five_noisy_counts_covers() -> None:
    hospitals = [3, 12, 40, 7, 25]
    truth = sum(hospitals)
    hits, width = [], 0.0
    for _ in range(DRAWS):
        releases = [noisy_counts([n], WIDE) for n in hospitals]
        width = sum_ci95(releases)
        total = sum(r.values[0] for r in releases)
        hits.append(abs(total - truth) <= width)
    assert 0.93 <= float(np.mean(hits)) <= 0.97
    sigma = noisy_counts([0], WIDE).scale
    assert width == pytest.approx(norm.ppf(0.975) * sigma * math.sqrt(5), rel=0.02)


def test_ci95_of_laplace_and_mixed_sums_is_conservative() -> None:
    hospitals = [3, 12, 40, 7, 25]
    truth = sum(hospitals)
    hits = []
    for _ in range(1_000):
        releases = [noisy_counts([n], WIDE, mechanism="discrete_laplace") for n in hospitals]
        width = sum_ci95(releases)
        hits.append(abs(sum(r.values[0] for r in releases) - truth) <= width)
    assert float(np.mean(hits)) >= 0.95
    one = noisy_counts([5], WIDE, mechanism="discrete_laplace")
    assert sum_ci95([one]) == pytest.approx(one.ci95)  # one value: that release's own interval
    gauss = noisy_counts([5], WIDE)
    assert sum_ci95([gauss]) == gauss.ci95
    assert max(one.ci95, gauss.ci95) < sum_ci95([one, gauss]) < 2 * (one.ci95 + gauss.ci95)
    assert sum_ci95([]) == 0.0
