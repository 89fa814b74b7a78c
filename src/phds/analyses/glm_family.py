"""GLM families for ``stats.glm``, written to mirror statsmodels' IRLS term for term.

The working weights and response are those of iteratively reweighted least squares (McCullagh & Nelder,
*Generalized Linear Models*, 2nd ed., 1989, §2.5): ``w = prior / (g'(μ)² V(μ))`` and
``z = η + g'(μ)(y − μ) − offset``. The clipping constants, the starting values (``(y + ȳ)/2``;
``(y + ½)/2`` for the binomial) and the deviance and log-likelihood formulas are statsmodels 0.14/0.15's
(``statsmodels.genmod.families``), so that federated iterates equal the pooled ones and iteration
counts agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

FLOAT_EPS = float(np.finfo(float).eps)
FamilyName = Literal["gaussian", "binomial", "poisson"]
LINKS: dict[str, str] = {"gaussian": "identity", "binomial": "logit", "poisson": "log"}


@dataclass(frozen=True)
class Family:
    """One exponential family with its canonical link."""

    name: FamilyName

    @property
    def link_name(self) -> str:
        return LINKS[self.name]

    @property
    def estimates_scale(self) -> bool:
        """Gaussian estimates the dispersion (Pearson χ² / df); binomial and Poisson fix it at 1."""
        return self.name == "gaussian"

    def starting_mu(self, y: np.ndarray, mean_y: float) -> np.ndarray:
        """statsmodels' start: ``(y + ȳ)/2`` with the *network* ȳ; binomial ``(y + ½)/2``."""
        return (y + 0.5) / 2 if self.name == "binomial" else (y + mean_y) / 2.0

    def link(self, mu: np.ndarray | float) -> np.ndarray:
        if self.name == "binomial":
            p = np.clip(mu, FLOAT_EPS, 1.0 - FLOAT_EPS)
            return np.asarray(np.log(p / (1.0 - p)))
        if self.name == "poisson":
            return np.asarray(np.log(np.clip(mu, FLOAT_EPS, np.inf)))
        return np.asarray(mu, dtype=float)

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            return np.asarray(1.0 / (1.0 + np.exp(-eta)))
        if self.name == "poisson":
            return np.asarray(np.exp(eta))
        return eta

    def link_deriv(self, mu: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            p = np.clip(mu, FLOAT_EPS, 1.0 - FLOAT_EPS)
            return np.asarray(1.0 / (p * (1 - p)))
        if self.name == "poisson":
            return np.asarray(1.0 / np.clip(mu, FLOAT_EPS, np.inf))
        return np.ones_like(mu)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            p = np.clip(mu, FLOAT_EPS, 1 - FLOAT_EPS)
            return np.asarray(p * (1 - p))
        if self.name == "poisson":
            return np.asarray(np.fabs(mu))
        return np.ones_like(mu)

    def irls_weights(self, mu: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (self.link_deriv(mu) ** 2 * self.variance(mu)))

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Deviance contributions before prior weights (statsmodels ``_resid_dev``)."""
        if self.name == "binomial":
            a = np.clip(y / (mu + 1e-20), FLOAT_EPS, np.inf)
            b = np.clip((1.0 - y) / (1.0 - mu + 1e-20), FLOAT_EPS, np.inf)
            return np.asarray(2 * (y * np.log(a) + (1 - y) * np.log(b)))
        if self.name == "poisson":
            a = np.clip(y / mu, FLOAT_EPS, np.inf)
            return np.asarray(2 * (y * np.log(a) - (y - mu)))
        return np.asarray((y - mu) ** 2)

    def loglik_sum(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        """Σ log-likelihood at scale 1 for binomial and Poisson; Σ log w for gaussian (see the hub)."""
        if self.name == "binomial":
            # statsmodels adds lgamma(2) − lgamma(y + 1) − lgamma(2 − y), which is 0 for y ∈ {0, 1}
            ll = y * np.log((mu + 1e-20) / (1 - mu + 1e-20)) + np.log(1 - mu + 1e-20)
            return float(np.sum(ll * w))
        if self.name == "poisson":
            return float(np.sum(w * (y * np.log(mu) - mu - special.gammaln(y + 1))))
        return float(np.sum(np.log(w)))


def gaussian_loglik(wrss: float, sum_log_w: float, n: int) -> float:
    """statsmodels' concentrated gaussian log-likelihood, at the ML scale ``Σ w (y − μ)² / n``."""
    scale = wrss / n
    return float(-0.5 * (wrss / scale + n * np.log(scale) - sum_log_w + n * np.log(2 * np.pi)))
