"""The hub's Newton–Raphson for the Cox model: one step per round, step-halving, and the final table.

Each round the hospitals' released log partial likelihood ℓ, gradient g and Hessian H at β are summed;
the next β is β + Δ with Δ = −H⁻¹g. When ℓ falls, the previous step is halved instead (as lifelines and
R's ``coxph`` do). The fit has converged when max|Δ| < 1e-10; the result is reported at the β where ℓ,
g and H were evaluated, with standard errors from (−H)⁻¹, Wald z and p, hazard ratios with 95 % CIs,
and the likelihood-ratio test against β = 0.

Under secure aggregation ℓ and g are known only to within the fixed-point error of their sums (ε_ℓ, and
ε_g per entry): the step Δ is then known to within ‖(−H)⁻¹‖_∞ ε_g (first order), so the fit stops when
max|Δ| is below 1e-10 plus twice that, and ℓ counts as falling only when it falls by more than 2ε_ℓ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from phds.analyses.cox_math import FloatArray
from phds.errors import InputError

TOLERANCE = 1e-10
Z_95 = float(stats.norm.ppf(0.975))


def newton_step(
    state: Mapping[str, Any],
    ll: float,
    grad: FloatArray,
    hess: FloatArray,
    max_iterations: int,
    *,
    ll_error: float = 0.0,
    grad_error: FloatArray | float = 0.0,
) -> tuple[bool, dict[str, Any]]:
    """Return (converged, new state); the new state's ``beta`` is where to evaluate next. *ll_error* and
    *grad_error* bound the errors of ℓ and g (0 in the clear; see the module docstring)."""
    beta = np.asarray(state["beta"], dtype=np.float64)
    iteration = int(state.get("iteration", 0)) + 1
    new = dict(state)
    new["iteration"] = iteration
    if "ll_null" not in state:
        new["ll_null"] = ll
    prev = state.get("prev")
    if prev is not None and ll < prev["ll"] - 1e-12 * abs(prev["ll"]) - 2 * ll_error:
        step = prev["step"] / 2
        if step < 1e-6:
            raise InputError("the Cox model did not converge (step-halving failed)", field="analysis")
        new["beta"] = (np.asarray(prev["beta"]) + step * np.asarray(prev["delta"])).tolist()
        new["prev"] = {**prev, "step": step}
        return False, new
    try:
        delta = np.linalg.solve(-hess, grad)
    except np.linalg.LinAlgError as exc:
        raise InputError("the Hessian is singular: covariates are collinear", field="analysis") from exc
    resolution = 0.0
    if np.any(np.asarray(grad_error) > 0):  # ‖(−H)⁻¹‖_∞ ε_g, the step's first-order error
        inverse = np.abs(np.linalg.inv(-hess)) @ np.broadcast_to(grad_error, grad.shape)
        resolution = 2 * float(np.max(inverse, initial=0.0))
    if float(np.max(np.abs(delta), initial=0.0)) < TOLERANCE + resolution:
        new.update(beta=beta.tolist(), ll=ll, hessian=hess.tolist())
        return True, new
    if iteration >= max_iterations:
        raise InputError(f"the Cox model did not converge in {max_iterations} iterations", field="analysis")
    new["beta"] = (beta + delta).tolist()
    new["prev"] = {"beta": beta.tolist(), "delta": delta.tolist(), "ll": ll, "step": 1.0}
    return False, new


def coefficient_table(
    covariates: Sequence[str],
    beta: Sequence[float],
    hessian: Sequence[Sequence[float]],
    ll: float,
    ll0: float,
) -> dict[str, Any]:
    """Coefficients, SEs, hazard ratios with 95 % CIs, z, p, covariance and the LR test."""
    b = np.asarray(beta, dtype=np.float64)
    cov = np.linalg.inv(-np.asarray(hessian, dtype=np.float64))
    se = np.sqrt(np.diag(cov))
    rows = []
    for name, coef, s in zip(covariates, b, se, strict=True):
        z = coef / s
        rows.append(
            {
                "covariate": name,
                "coef": float(coef),
                "se": float(s),
                "hazard_ratio": math.exp(coef),
                "hr_lower_95": math.exp(coef - Z_95 * s),
                "hr_upper_95": math.exp(coef + Z_95 * s),
                "z": float(z),
                "p": float(2 * stats.norm.sf(abs(z))),
            }
        )
    lr = 2 * (ll - ll0)
    return {
        "coefficients": rows,
        "covariance": cov.tolist(),
        "log_likelihood": ll,
        "log_likelihood_null": ll0,
        "lr_test": {"statistic": lr, "df": len(b), "p": float(stats.chi2.sf(lr, len(b)))},
    }


__all__ = ["TOLERANCE", "Z_95", "coefficient_table", "newton_step"]
