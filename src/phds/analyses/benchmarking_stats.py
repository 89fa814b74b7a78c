"""The statistics of clinical benchmarking: exact intervals, funnel-plot control limits, outlier flags.

Used at the hub (``benchmarking.indicators`` combine) and by the SDK's funnel plot, so both draw the same
limits. Sources, formula by formula:

* **Standardised ratio O/E, exact Poisson interval** (Ulm 1990, *Am J Epidemiol* 131:373–375, the
  chi-square form of Garwood 1936, *Biometrika* 28:437–442): with O observed events and E expected,
  ``lower = χ²(α/2; 2O) / (2E)`` and ``upper = χ²(1 − α/2; 2O + 2) / (2E)``; the lower limit is 0 when
  O = 0.
* **Crude proportion, exact binomial interval** (Clopper & Pearson 1934, *Biometrika* 26:404–413):
  ``lower = Beta(α/2; x, n − x + 1)`` and ``upper = Beta(1 − α/2; x + 1, n − x)`` (0 and 1 at the ends),
  as ``statsmodels.stats.proportion.proportion_confint(method="beta")``.
* **Funnel plot control limits** (Spiegelhalter 2005, "Funnel plots for comparing institutional
  performance", *Stat Med* 24:1185–1202), at two-sided 95% (p = 0.025/0.975, z = 1.96) and 99.8%
  (p = 0.001/0.999, z = 3.09):

  - for a standardised ratio (his Table 1: target θ₀ = 1, precision ρ = E, variance 1/E) we use the
    normal approximation ``1 ± z/√E``; for an overdispersed continuous indicator (length of stay under a
    quasi-Poisson model) the variance is inflated by the dispersion φ (his §5): ``1 ± z √(φ/E)``;
  - for a crude proportion we use his *exact binomial* limits (Appendix A.1.1): with ``r_p`` the p
    quantile of Binomial(n, p₀) and ``α = (F(r_p) − p) / (F(r_p) − F(r_p − 1))``, the limit is
    ``(r_p − α)/n`` (the interpolation makes the limits smooth in n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

#: The funnel plot's two control limits: two-sided coverage → z (Spiegelhalter 2005, §3: 95% and 99.8%).
LIMITS: dict[str, float] = {"95%": 0.95, "99.8%": 0.998}

Flag = Literal["high (99.8%)", "high (95%)", "within limits", "low (95%)", "low (99.8%)", "not assessed"]


def z_of(coverage: float) -> float:
    """The standard normal quantile of a two-sided *coverage* (0.95 → 1.96, 0.998 → 3.09)."""
    return float(stats.norm.ppf(0.5 + coverage / 2))


def poisson_ratio_ci(observed: float, expected: float, coverage: float = 0.95) -> tuple[float, float]:
    """The exact (Garwood/Ulm chi-square) interval of O/E for a Poisson count O (module docstring)."""
    if expected <= 0:
        raise ValueError("the expected count must be positive")
    alpha = 1 - coverage
    lower = 0.0 if observed <= 0 else float(stats.chi2.ppf(alpha / 2, 2 * observed)) / 2
    upper = float(stats.chi2.ppf(1 - alpha / 2, 2 * observed + 2)) / 2
    return lower / expected, upper / expected


def clopper_pearson(x: int, n: int, coverage: float = 0.95) -> tuple[float, float]:
    """The exact binomial (Clopper–Pearson) interval of the proportion x/n (module docstring)."""
    if n <= 0 or not 0 <= x <= n:
        raise ValueError("need 0 ≤ x ≤ n and n > 0")
    alpha = 1 - coverage
    lower = 0.0 if x == 0 else float(stats.beta.ppf(alpha / 2, x, n - x + 1))
    upper = 1.0 if x == n else float(stats.beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lower, upper


def ratio_limits(expected: float, coverage: float, dispersion: float = 1.0) -> tuple[float, float]:
    """Funnel limits of a standardised ratio at expected count E: ``1 ± z √(φ/E)`` (lower clipped at 0)."""
    half = z_of(coverage) * math.sqrt(dispersion / expected)
    return max(0.0, 1.0 - half), 1.0 + half


def proportion_limits(p0: float, n: int, coverage: float) -> tuple[float, float]:
    """Spiegelhalter's exact binomial funnel limits of a proportion around the target *p0* at size n."""
    dist = stats.binom(n, p0)

    def limit(p: float) -> float:
        r = float(dist.ppf(p))
        f_r, f_before = float(dist.cdf(r)), float(dist.cdf(r - 1))
        alpha = (f_r - p) / (f_r - f_before) if f_r > f_before else 0.0
        return min(1.0, max(0.0, (r - alpha) / n))

    tail = (1 - coverage) / 2
    return limit(tail), limit(1 - tail)


def flag(value: float | None, limits: dict[str, tuple[float, float]]) -> Flag:
    """Where *value* lies against the 95% and 99.8% limits (``not assessed`` when it is missing)."""
    if value is None or not math.isfinite(value):
        return "not assessed"
    outer, inner = limits["99.8%"], limits["95%"]
    if value > outer[1]:
        return "high (99.8%)"
    if value < outer[0]:
        return "low (99.8%)"
    if value > inner[1]:
        return "high (95%)"
    if value < inner[0]:
        return "low (95%)"
    return "within limits"


@dataclass(frozen=True)
class Row:
    """One hospital's indicator as the result reports it (None where a value was suppressed)."""

    label: str
    own: bool
    n: int
    observed: float | None
    observed_display: str
    expected: float | None
    ratio: float | None
    ratio_ci: tuple[float, float] | None
    crude: float | None
    crude_ci: tuple[float, float] | None
    flag: Flag
    crude_flag: Flag


__all__ = [
    "LIMITS",
    "Flag",
    "Row",
    "clopper_pearson",
    "flag",
    "poisson_ratio_ci",
    "proportion_limits",
    "ratio_limits",
    "z_of",
]
