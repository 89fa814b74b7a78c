"""Distributed differential privacy under secure aggregation: each node adds a share of the noise.

When a study runs under both DP and secure aggregation, only the network sum is ever seen, so each of
the nodes adds discrete Gaussian noise of a *local* scale σ_l (OpenDP's ``make_gaussian`` on integer
vectors) and the sum carries the noise of all of them. A sum of discrete Gaussians is not exactly a
discrete Gaussian; Kairouz, Liu & Steinke (2021, "The Distributed Discrete Gaussian Mechanism for
Federated Learning with Secure Aggregation", ICML; arXiv:2102.06387, Theorem 1 and Proposition 14)
bound its Rényi DP. With m nodes each adding N_Z(0, σ_l²), total scale σ = √m·σ_l, L2 and L1
sensitivities Δ₂, Δ₁ over d coordinates, and

    τ = 10 · Σ_{k=1}^{m−1} exp(−2π²σ_l² · k/(k+1)),

the sum is (α, α·ρ)-RDP for every α > 1, i.e. ρ-zCDP, with

    ρ = ½ · min((Δ₂/σ)² + 2(Δ₁/σ)τ + dτ²,  (Δ₂/σ + √d·τ)²).

The node calibrates σ_l for the smallest number of contributors the protocol allows (its threshold t:
fewer and the session fails), so the guarantee holds whoever drops out. What the hub and requester see
is the sum; a participant colluding with the hub can subtract its own share, which this accounting
does not cover (as for any distributed noise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from phds.errors import InputError
from phds.privacy.dp import NoisyValues, PrivacyLoss, noisy_counts

MECHANISM = "distributed_discrete_gaussian"


def distributed_rho(local_scale: float, contributors: int, *, l2: float, l1: float, dim: int) -> float:
    """ρ (zCDP) of the sum of *contributors* discrete Gaussians of scale *local_scale* (module docstring)."""
    if local_scale <= 0 or contributors < 1:
        raise InputError("the local noise scale and the contributors must be positive", field="dp")
    tau = 10 * sum(math.exp(-2 * math.pi**2 * local_scale**2 * k / (k + 1)) for k in range(1, contributors))
    sigma = math.sqrt(contributors) * local_scale
    a, b = l2 / sigma, l1 / sigma
    return 0.5 * min(a * a + 2 * b * tau + dim * tau * tau, (a + math.sqrt(dim) * tau) ** 2)


def local_scale_for(loss: PrivacyLoss, contributors: int, *, l2: float, l1: float, dim: int) -> float:
    """The smallest local scale whose sum over *contributors* spends at most *loss* (bisection)."""
    if loss.rho <= 0:
        raise InputError("a distributed release needs a positive loss", field="dp.rho")
    lo, hi = 1e-3, 1.0
    while distributed_rho(hi, contributors, l2=l2, l1=l1, dim=dim) > loss.rho:
        hi *= 2
        if hi > 1e9:
            raise InputError("no noise scale reaches this loss", field="dp.rho")
    for _ in range(80):
        mid = (lo + hi) / 2
        if distributed_rho(mid, contributors, l2=l2, l1=l1, dim=dim) > loss.rho:
            lo = mid
        else:
            hi = mid
    return hi


def distributed_counts(counts: Sequence[int], loss: PrivacyLoss, contributors: int) -> NoisyValues:
    """This node's share: its counts plus discrete Gaussian noise of the local scale (sampled by OpenDP),
    described as the network sum's release: its scale, the loss it spends, its 95% half-width.

    One person changes one count by 1 (Δ₂ = Δ₁ = 1), as for :func:`phds.privacy.dp.noisy_counts`."""
    import opendp.prelude as dp

    dim = len(counts)
    scale = local_scale_for(loss, contributors, l2=1.0, l1=1.0, dim=dim)
    # OpenDP samples the share: the discrete Gaussian whose scale is the local one. Its own privacy map
    # (ρ = 1/(2σ_l²)) describes the share alone, which never leaves the node in the clear.
    share = noisy_counts(counts, PrivacyLoss(1.0 / (2 * scale * scale)), mechanism="discrete_gaussian")
    used = max(scale, share.scale)  # OpenDP's calibration never goes below the scale asked for
    total_scale = math.sqrt(contributors) * used
    spent = distributed_rho(used, contributors, l2=1.0, l1=1.0, dim=dim)
    # The sum is close to a discrete Gaussian of the total scale; its 95% half-width is OpenDP's.
    dp.enable_features("contrib")
    half = float(dp.gaussian_scale_to_accuracy(total_scale, 0.05))
    return NoisyValues(
        values=list(share.values), mechanism=MECHANISM, scale=total_scale, loss=PrivacyLoss(spent),
        sensitivity=1.0, ci95=half,
    )  # fmt: skip


__all__ = ["MECHANISM", "distributed_counts", "distributed_rho", "local_scale_for"]
