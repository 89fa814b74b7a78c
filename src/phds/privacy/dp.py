"""Differential privacy through OpenDP 0.16: noisy counts, sums and quantiles, and their accuracy.

Every noise mechanism, privacy map and accuracy figure here is OpenDP's; this module only calibrates
scales, checks OpenDP's privacy map against the requested loss, and post-processes.

* **Neighbours**: datasets that differ by adding or removing one person (unbounded DP; OpenDP's
  symmetric distance, ``d_in = 1``). One person changes a vector of counts by at most the declared L1/L2
  sensitivity (1 when a person falls in one cell).
* **Loss**: zero-concentrated DP, ρ (Bun & Steinke 2016, "BS16"). zCDP composes additively (BS16
  Lemma 1.7), so a budget is a sum of ρ; it is *shown* as (ε, δ) through OpenDP's
  ``make_zCDP_to_approxDP``, which implements the conversion of Canonne, Kamath & Steinke 2020 ("CKS20"),
  §2.3: tighter than BS16 Prop. 1.3's closed form ε = ρ + 2√(ρ ln(1/δ)).
* **Counts**: the discrete Gaussian (CKS20): integer outputs, exact sampling, ρ = Δ₂²/(2σ²) (CKS20 Thm 4,
  and its multivariate form with L2 sensitivity for vectors), or the discrete Laplace (pure ε-DP;
  ε-DP ⇒ ε²/2-zCDP, BS16 Prop. 1.4).
* **Sums**: OpenDP's Gaussian on floats, ρ = Δ₂²/(2σ²) (BS16 Prop. 1.6).
* **Quantiles**: OpenDP's exponential-mechanism quantile (``make_private_quantile``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import opendp.prelude as dp

from phds.errors import InputError

dp.enable_features("contrib")  # OpenDP's docs require it for every mechanism used here

DEFAULT_DELTA = 1e-6
"""δ for showing ρ as (ε, δ). δ must be ≪ 1/n: δ = 1/n allows publishing one random person's record in
full (Dwork & Roth 2014, §2.3); rare-disease networks hold n ≤ 10⁵ persons, so 1e-6 ≪ 1/n."""
DP_ALPHA = 0.05
"""Significance of the intervals reported with releases: 95% intervals."""

Mechanism = Literal["discrete_gaussian", "discrete_laplace"]

_INT_VECTOR = dp.vector_domain(dp.atom_domain(T=int))
_FLOAT_VECTOR = dp.vector_domain(dp.atom_domain(T=float, nan=False))
_ACCURACY: dict[str, Callable[..., Any]] = {
    "discrete_gaussian": dp.discrete_gaussian_scale_to_accuracy,
    "discrete_laplace": dp.discrete_laplacian_scale_to_accuracy,
    "gaussian": dp.gaussian_scale_to_accuracy,
}


def _check_delta(delta: float) -> float:
    if not 0.0 < delta < 1.0:
        raise InputError(f"δ must lie in (0, 1) (got {delta})", field="dp.delta")
    return float(delta)


@lru_cache(maxsize=1)
def _unit_gaussian() -> Any:
    """OpenDP's ρ → (ε, δ) map, carried by a scale-1 Gaussian: at ``d_in = √(2ρ)`` its ρ is ρ."""
    gaussian = dp.m.make_gaussian(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=1.0
    )
    return dp.c.make_zCDP_to_approxDP(gaussian)


@lru_cache(maxsize=4096)
def _epsilon(rho: float, delta: float) -> float:
    if rho == 0.0:
        return 0.0
    return float(_unit_gaussian().map(math.sqrt(2.0 * rho)).epsilon(delta))


@dataclass(frozen=True, order=True)
class PrivacyLoss:
    """Privacy loss in zero-concentrated DP (ρ); shown also as (ε, δ)."""

    rho: float

    def __post_init__(self) -> None:
        rho = float(self.rho)
        if not (math.isfinite(rho) and rho >= 0.0):
            raise InputError(f"ρ must be finite and ≥ 0 (got {self.rho})", field="dp.rho")
        object.__setattr__(self, "rho", rho)

    @classmethod
    def zero(cls) -> PrivacyLoss:
        return cls(0.0)

    @classmethod
    def from_epsilon(cls, epsilon: float, delta: float) -> PrivacyLoss:
        """The largest ρ whose (ε, δ) by OpenDP's conversion (CKS20 §2.3) is ≤ *epsilon*.

        Bisection over ρ on OpenDP's map, started from BS16 Prop. 1.3's inverse
        ρ = (√(ln(1/δ) + ε) − √ln(1/δ))², which the tighter conversion can only raise.
        """
        delta = _check_delta(delta)
        if not (math.isfinite(epsilon) and epsilon >= 0.0):
            raise InputError(f"ε must be finite and ≥ 0 (got {epsilon})", field="dp.epsilon")
        return cls(_rho_for(float(epsilon), delta))

    def epsilon(self, delta: float) -> float:
        """ε such that this ρ-zCDP loss is (ε, δ)-DP (OpenDP's conversion, CKS20 §2.3)."""
        return _epsilon(self.rho, _check_delta(delta))

    def __add__(self, other: PrivacyLoss) -> PrivacyLoss:
        """Composition: ρ adds up (BS16 Lemma 1.7)."""
        return PrivacyLoss(self.rho + other.rho)

    def split(self, parts: int) -> PrivacyLoss:
        """One of *parts* equal shares: ρ/parts (zCDP composes additively)."""
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise InputError(f"parts must be an integer ≥ 1 (got {parts!r})", field="dp.parts")
        return PrivacyLoss(self.rho / parts)

    def to_json(self, delta: float) -> dict[str, float]:
        return {"rho": self.rho, "epsilon": self.epsilon(delta), "delta": _check_delta(delta)}


@lru_cache(maxsize=256)
def _rho_for(epsilon: float, delta: float) -> float:
    if epsilon == 0.0:
        return 0.0
    log = math.log(1.0 / delta)
    lo = (math.sqrt(log + epsilon) - math.sqrt(log)) ** 2
    while _epsilon(lo, delta) > epsilon:  # only by rounding: OpenDP's conversion is the tighter one
        lo /= 2.0
    hi = 2.0 * lo
    while _epsilon(hi, delta) <= epsilon:
        lo, hi = hi, 2.0 * hi
    while hi - lo > 1e-13 * hi:
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _epsilon(mid, delta) <= epsilon else (lo, mid)
    return lo


@dataclass(frozen=True)
class NoisyValues:
    """Values released by one OpenDP measurement, with what it spent and how precise it is."""

    values: list[float]  # ints for counts (as floats only when continuous)
    mechanism: str  # "discrete_gaussian" | "discrete_laplace" | "gaussian"
    scale: float  # noise scale OpenDP used
    loss: PrivacyLoss  # the ρ this release spends (OpenDP's privacy map at the sensitivity)
    sensitivity: float  # L2 (gaussian) or L1 (laplace) sensitivity used
    ci95: float  # half-width of the 95% interval per value (OpenDP's accuracy utilities)

    def interval(self, i: int) -> tuple[float, float]:
        """The closed interval value ± ci95; it holds the noiseless value with probability ≥ 95%.

        OpenDP's accuracy ``a`` satisfies P[|noise| ≥ a] ≤ α (α = 0.05), exactly for the continuous
        Gaussian; for the discrete mechanisms ``a`` is the smallest such integer, so coverage is ≥ 95%.
        """
        return (self.values[i] - self.ci95, self.values[i] + self.ci95)


@dataclass(frozen=True)
class _Calibrated:
    measurement: Any
    scale: float
    rho: float
    sensitivity: float
    ci95: float


def _metric(kind: Callable[..., Any], sensitivity: float) -> tuple[Any, int | float]:
    """An integer metric (and ``d_in``) for whole sensitivities, else a float one."""
    if sensitivity.is_integer():
        return kind(T=int), int(sensitivity)
    return kind(T=float), sensitivity


def _builder(mechanism: str, sensitivity: float) -> tuple[Callable[[float], Any], int | float]:
    """scale → OpenDP measurement (in zCDP) for *mechanism*, and the ``d_in`` its map is read at."""
    if mechanism == "gaussian":  # sums of floats
        l2 = dp.l2_distance(T=float)
        return (lambda s: dp.m.make_gaussian(_FLOAT_VECTOR, l2, scale=s)), sensitivity
    if mechanism == "discrete_gaussian":
        metric, d_in = _metric(dp.l2_distance, sensitivity)
        return (lambda s: dp.m.make_gaussian(_INT_VECTOR, metric, scale=s)), d_in
    metric, d_in = _metric(dp.l1_distance, sensitivity)
    return (lambda s: dp.c.make_pureDP_to_zCDP(dp.m.make_laplace(_INT_VECTOR, metric, scale=s))), d_in


@lru_cache(maxsize=512)
def _calibrated(mechanism: str, sensitivity: float, rho: float) -> _Calibrated:
    """The OpenDP measurement whose privacy map at *sensitivity* is ρ (never above it).

    Closed form σ = Δ/√(2ρ) (discrete Laplace: scale Δ/ε with ε = √(2ρ)), checked by OpenDP's map; if
    OpenDP's conservative rounding puts the map a few ulps above ρ, the scale is widened by ulps, and
    ``dp.binary_search_param`` is the fallback.
    """
    build, d_in = _builder(mechanism, sensitivity)
    scale = sensitivity / math.sqrt(2.0 * rho)
    for _ in range(16):
        measurement = build(scale)
        spent = float(measurement.map(d_in))
        if spent <= rho:
            break
        scale = math.nextafter(scale, math.inf)
    else:
        scale = float(dp.binary_search_param(build, d_in=d_in, d_out=rho))
        measurement = build(scale)
        spent = float(measurement.map(d_in))
    if spent > rho:
        raise RuntimeError(f"OpenDP's privacy map {spent} exceeds the requested ρ {rho}")
    ci95 = float(_ACCURACY[mechanism](scale, alpha=DP_ALPHA))
    return _Calibrated(measurement, scale, spent, sensitivity, ci95)


def _check_release(loss: PrivacyLoss, sensitivity: float, field: str) -> float:
    if loss.rho <= 0.0:
        raise InputError("a noisy release needs a loss ρ > 0", field="dp.rho")
    if not (math.isfinite(sensitivity) and sensitivity > 0.0):
        raise InputError(f"sensitivity must be finite and > 0 (got {sensitivity})", field=field)
    return float(sensitivity)


def noisy_counts(
    counts: Sequence[int],
    loss: PrivacyLoss,
    *,
    mechanism: Mechanism = "discrete_gaussian",
    l2_sensitivity: float = 1.0,
    l1_sensitivity: float = 1.0,
) -> NoisyValues:
    """Integer counts with OpenDP noise, spending *loss* once for the whole vector.

    For a count, a breakdown's cells, a histogram, a KM grid's per-bin counts: one person changes one
    cell by 1 (sensitivity 1); declare more when a person reaches several cells (a count and its
    breakdown together: L2 √2, L1 2). Values are ints and may be negative; :func:`clamp_nonnegative` is
    the caller's post-processing.
    """
    ints: list[int] = []
    for c in counts:
        if isinstance(c, bool) or not float(c).is_integer():
            raise InputError(f"counts must be integers (got {c!r})", field="dp.counts")
        ints.append(int(c))
    if mechanism == "discrete_gaussian":
        sensitivity = _check_release(loss, l2_sensitivity, "dp.l2_sensitivity")
    elif mechanism == "discrete_laplace":
        sensitivity = _check_release(loss, l1_sensitivity, "dp.l1_sensitivity")
    else:
        raise InputError(f"unknown mechanism {mechanism!r}", field="dp.mechanism")
    cal = _calibrated(mechanism, sensitivity, loss.rho)
    noisy: list[float] = [int(v) for v in cal.measurement(ints)]
    return NoisyValues(noisy, mechanism, cal.scale, PrivacyLoss(cal.rho), cal.sensitivity, cal.ci95)


def clamp_nonnegative(noisy: NoisyValues) -> NoisyValues:
    """Post-processing (free of privacy cost): negative values become 0.

    The intervals keep their coverage: a true count ≥ 0 inside ``v ± ci95`` with ``v < 0`` is also
    inside ``0 ± ci95``.
    """
    return replace(noisy, values=[max(0, v) for v in noisy.values])


def noisy_sums(
    columns: Mapping[str, np.ndarray],
    bounds: Mapping[str, tuple[float, float]],
    loss: PrivacyLoss,
) -> dict[str, NoisyValues]:
    """Sums of per-person contributions, clipped to public bounds, with one joint OpenDP Gaussian.

    Row *i* of every column is person *i*'s contribution; each is clipped to its column's ``(lo, hi)``.
    A person reaches every column, so the L2 sensitivity is √(Σ_columns max(|lo|, |hi|)²) (each term
    widened by one ulp of the largest possible sum, which covers ``math.fsum``'s rounding), and *loss*
    is spent **once for the whole dict**: every entry carries that same loss, not a share of it.
    """
    if not columns:
        raise InputError("no columns to sum", field="dp.columns")
    arrays: dict[str, np.ndarray] = {}
    for name, column in columns.items():
        x = np.asarray(column, dtype=float)
        if x.ndim != 1 or np.isnan(x).any():
            raise InputError(
                "a column must be one number per person, without NaN", field=f"dp.columns.{name}"
            )
        arrays[name] = x
    rows = {len(x) for x in arrays.values()}
    if len(rows) != 1:
        raise InputError(f"columns differ in length {sorted(rows)}; one row per person", field="dp.columns")
    n = rows.pop()
    sums: list[float] = []
    squares: list[float] = []
    for name, x in arrays.items():
        if name not in bounds:
            raise InputError(
                f"no bounds for column {name!r}: sums clip to public bounds", field=f"dp.bounds.{name}"
            )
        lo, hi = (float(b) for b in bounds[name])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise InputError(f"bounds ({lo}, {hi}) must be finite with lo ≤ hi", field=f"dp.bounds.{name}")
        sums.append(math.fsum(np.clip(x, lo, hi).tolist()))
        reach = max(abs(lo), abs(hi))
        squares.append((reach + math.ulp((n + 1) * reach)) ** 2 if reach else 0.0)
    sensitivity = _check_release(loss, math.sqrt(math.fsum(squares)), "dp.bounds")
    cal = _calibrated("gaussian", sensitivity, loss.rho)
    noisy = [float(v) for v in cal.measurement(sums)]
    spent = PrivacyLoss(cal.rho)
    return {
        name: NoisyValues([v], "gaussian", cal.scale, spent, cal.sensitivity, cal.ci95)
        for name, v in zip(arrays, noisy, strict=True)
    }


@lru_cache(maxsize=128)
def _quantile_measurement(candidates: tuple[float, ...], alpha: float, rho: float) -> tuple[Any, float]:
    def build(scale: float) -> Any:
        measure = dp.zero_concentrated_divergence()
        return dp.m.make_private_quantile(
            _FLOAT_VECTOR,
            dp.symmetric_distance(),
            measure,
            candidates=list(candidates),
            alpha=alpha,
            scale=scale,
        )

    measurement = build(float(dp.binary_search_param(build, d_in=1, d_out=rho)))
    spent = float(measurement.map(1))
    if spent > rho:
        raise RuntimeError(f"OpenDP's privacy map {spent} exceeds the requested ρ {rho}")
    return measurement, spent


def noisy_quantile(
    values: np.ndarray, candidates: Sequence[float], alpha: float, loss: PrivacyLoss
) -> tuple[float, PrivacyLoss]:
    """The α-quantile of the node's *values* by OpenDP's ``make_private_quantile``; returns (value, ρ spent).

    An exponential mechanism (report-noisy-max over candidate scores, Smith 2011; ε-DP ⇒ ε²/8-zCDP as a
    bounded-range mechanism, Cesar & Rogers 2021), measured directly in zCDP; the scale is found with
    ``dp.binary_search_param`` so that OpenDP's map at ``d_in = 1`` is ρ. The release is always one of
    the public *candidates*. Accuracy has no closed form in value units: with probability 1 − β, the
    released candidate's rank is off from α·n by O((ln|candidates| + ln(1/β))/√ρ) persons (McSherry &
    Talwar 2007), and what a rank error means in values depends on the data's density; so no interval
    is returned.
    """
    if loss.rho <= 0.0:
        raise InputError("a noisy release needs a loss ρ > 0", field="dp.rho")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"α must lie in [0, 1] (got {alpha})", field="dp.alpha")
    cands = sorted({float(c) for c in candidates})
    if not cands or not all(math.isfinite(c) for c in cands):
        raise InputError("candidates must be finite numbers, at least one", field="dp.candidates")
    x = np.asarray(values, dtype=float).ravel()
    if np.isnan(x).any():
        raise InputError("values contain NaN", field="dp.values")
    measurement, spent = _quantile_measurement(tuple(cands), float(alpha), loss.rho)
    return float(measurement(x.tolist())), PrivacyLoss(spent)


def quantiles_from_counts(
    edges: Sequence[float], counts: Sequence[float], alphas: Sequence[float]
) -> list[float]:
    """Quantiles of a (pooled, noisy) histogram: post-processing, no privacy cost.

    ``len(edges) == len(counts) + 1``; negative counts become 0; linear interpolation within a bin, by
    OpenDP's ``dp.t.make_quantiles_from_counts``. Empty bins at either end are dropped first, so α = 0
    and 1 give the ends of the histogram's support (OpenDP answers NaN for α = 0 with an empty first bin).
    """
    e = [float(v) for v in edges]
    c = [max(0.0, float(v)) for v in counts]
    if len(e) != len(c) + 1 or not all(math.isfinite(v) for v in e + c):
        raise InputError("need finite edges, one more than finite counts", field="dp.edges")
    if any(b <= a for a, b in pairwise(e)):
        raise InputError("edges must increase strictly", field="dp.edges")
    a = [float(v) for v in alphas]
    if not all(0.0 <= v <= 1.0 for v in a):
        raise InputError("every α must lie in [0, 1]", field="dp.alphas")
    filled = [i for i, v in enumerate(c) if v > 0.0]
    if not filled:
        raise InputError(
            "the histogram has no positive count; its quantiles are undefined", field="dp.counts"
        )
    first, last = filled[0], filled[-1]
    if not a:
        return []
    quantiles = dp.t.make_quantiles_from_counts(e[first : last + 2], alphas=a, interpolation="linear")
    return [float(q) for q in quantiles(c[first : last + 1])]


def sum_ci95(releases: Sequence[NoisyValues]) -> float:
    """95% half-width for the sum of every value in *releases* (e.g. a network total of noisy counts).

    Each value's noise is independent. Continuous Gaussians: the sum is Gaussian with σ = √(Σσᵢ²), OpenDP's
    ``gaussian_scale_to_accuracy``. Discrete Gaussians: OpenDP's ``discrete_gaussian_scale_to_accuracy``
    at √(Σσᵢ²), as a sum of discrete Gaussians is close to one with the summed variance (CKS20); for one
    value it is that release's ci95. Laplace or mixtures: the smaller of two bounds valid for any
    independent noise: Chebyshev √(Σ Var/α) (Var ≤ σ² for both Gaussians, CKS20; ≤ 2·scale² for the
    discrete Laplace) and Bonferroni, Σ OpenDP accuracy at α/k over the k values.
    """
    noise = [(r.mechanism, r.scale) for r in releases for _ in r.values]
    if not noise:
        return 0.0
    kinds = {m for m, _ in noise}
    if kinds == {"gaussian"} or kinds == {"discrete_gaussian"}:
        sigma = math.sqrt(math.fsum(s * s for _, s in noise))
        return float(_ACCURACY[kinds.pop()](sigma, alpha=DP_ALPHA))
    variance = math.fsum((2.0 if m == "discrete_laplace" else 1.0) * s * s for m, s in noise)
    share = DP_ALPHA / len(noise)
    bonferroni = math.fsum(float(_ACCURACY[m](s, alpha=share)) for m, s in noise)
    return min(math.sqrt(variance / DP_ALPHA), bonferroni)
