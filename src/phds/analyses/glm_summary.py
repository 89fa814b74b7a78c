"""Hub side of ``stats.glm``: the pooled WLS solve, statsmodels' convergence rule and R's summary table.

Solve: the hospitals' released triangular factors are stacked and factorised once more; the top
``p × (p+1)`` block ``[R | Qᵀz]`` of that QR gives ``β = R⁻¹ Qᵀz`` exactly as a QR least-squares fit of
the pooled ``√w [X | z]`` would (the factor of a stacked matrix only depends on the stacked factors).
Convergence: statsmodels ``GLM._fit_irls`` stops when two successive deviances, each divided by the
scale current when it was computed, differ by at most ``tol`` (``np.allclose`` with ``rtol = 0``).
Summary: ``Cov(β̂) = φ (RᵀR)⁻¹`` with φ = Pearson χ²/(N − p) for the gaussian and 1 otherwise; t
tests on N − p degrees of freedom for the gaussian (R's ``summary.glm``), z tests otherwise; Wald 95%
intervals; AIC = −2 log L + 2p as statsmodels reports it (R adds 2 for the gaussian dispersion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from scipy import linalg, stats

from phds.analyses.glm_family import Family, gaussian_loglik
from phds.errors import InputError

RANK_TOL = 1e-10


def converged(history: Sequence[float], tol: float) -> bool:
    """statsmodels' ``_check_convergence``: ``|c[i-1] − c[i]| ≤ tol`` for the last two criteria."""
    if len(history) < 2:
        return False
    a, b = history[-2], history[-1]
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tol


def pooled_solve(
    blocks: Sequence[Sequence[Sequence[float]]], columns: Sequence[str]
) -> tuple[list[float], list[list[float]]]:
    """β and the pooled factor R from the hospitals' ``[R | Qᵀz]`` blocks; refuse a rank-deficient X."""
    stacked = np.vstack([np.asarray(b, dtype=float) for b in blocks])
    p = len(columns)
    r = cast(np.ndarray, np.linalg.qr(stacked, mode="r"))[:p, :]
    rx, qz = r[:, :p], r[:, p]
    diag = np.abs(np.diag(rx))
    scale = float(diag.max()) if diag.size else 0.0
    aliased = [columns[j] for j in range(p) if diag[j] <= RANK_TOL * scale or scale == 0.0]
    if aliased:
        raise InputError(
            "the design is rank-deficient across the network (aliased: "
            f"{', '.join(aliased)}); drop or merge these terms",
            field="analysis.params.formula",
        )
    beta = linalg.solve_triangular(rx, qz)
    return [float(b) for b in beta], rx.tolist()


def summary(
    *,
    family: Family,
    columns: Sequence[str],
    beta: Sequence[float],
    r: Sequence[Sequence[float]],
    n: int,
    deviance: float,
    pearson: float,
    loglik: float,
    null_deviance: float,
    iterations: int,
    is_converged: bool,
) -> dict[str, Any]:
    """R's ``summary(glm)`` quantities, as JSON."""
    p = len(columns)
    df_resid = n - p
    dispersion = pearson / df_resid if family.estimates_scale else 1.0
    rinv = linalg.solve_triangular(np.asarray(r, dtype=float), np.eye(p))
    cov = (rinv @ rinv.T) * dispersion
    se = np.sqrt(np.diag(cov))
    b = np.asarray(beta, dtype=float)
    statistic = b / se
    if family.estimates_scale:
        dist: Any = stats.t(df_resid)
        label = "t"
    else:
        dist = stats.norm()
        label = "z"
    p_values = 2 * dist.sf(np.abs(statistic))
    q = float(dist.ppf(0.975))
    llf = gaussian_loglik(deviance, loglik, n) if family.name == "gaussian" else loglik
    coefficients = [
        {
            "term": columns[j],
            "estimate": float(b[j]),
            "std_error": float(se[j]),
            "statistic": float(statistic[j]),
            "p_value": float(p_values[j]),
            "ci_lower": float(b[j] - q * se[j]),
            "ci_upper": float(b[j] + q * se[j]),
        }
        for j in range(p)
    ]
    return {
        "family": family.name,
        "link": family.link_name,
        "n_obs": n,
        "coefficients": coefficients,
        "statistic": label,
        "covariance": cov.tolist(),
        "dispersion": float(dispersion),
        "null_deviance": float(null_deviance),
        "df_null": n - 1,
        "deviance": float(deviance),
        "df_residual": df_resid,
        "pearson_chi2": float(pearson),
        "log_likelihood": float(llf),
        "aic": float(-2 * llf + 2 * p),
        "iterations": iterations,
        "converged": is_converged,
    }
