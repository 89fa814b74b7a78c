"""DP-FedAvg's node release: a sum of per-person clipped gradients with Gaussian noise (OpenDP).

Each row (one person: a tabular row or an OMOP person, one row each in an analysis table) contributes
its log-loss gradient at the global model, clipped to L2 norm C, as in DP-SGD (Abadi et al. 2016,
"Deep Learning with Differential Privacy", CCS, Algorithm 1). Adding or removing one person changes
the sum Σᵢ clip(gᵢ, C) by one clipped vector, at most C in L2 norm, so the L2 sensitivity is C (widened
by one ulp of the largest possible sum, which covers ``math.fsum``'s rounding, as
:func:`phds.privacy.dp.noisy_sums` does) and OpenDP's Gaussian mechanism on the vector spends
ρ = C²/(2σ²) (Bun & Steinke 2016, Prop. 1.6). The hub's step −η · Σ noisy sums / Σ noisy counts is
post-processing (Dwork & Roth 2014, Prop. 2.1).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from phds.errors import InputError
from phds.privacy.dp import NoisyValues, PrivacyLoss, _calibrated, _check_release


def clip_rows(rows: NDArray[np.float64], clip: float) -> NDArray[np.float64]:
    """Each row scaled down to L2 norm *clip* when it is longer."""
    norms = np.linalg.norm(rows, axis=1)
    factor = np.minimum(1.0, clip / np.maximum(norms, np.finfo(float).tiny))
    return np.asarray(rows * factor[:, None], dtype=float)


def noisy_clipped_sum(rows: NDArray[np.float64], clip: float, loss: PrivacyLoss) -> NoisyValues:
    """Σ of the rows clipped to *clip*, with Gaussian noise spending *loss* once (module docstring)."""
    x = np.asarray(rows, dtype=float)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise InputError("per-row gradients must be a finite matrix", field="dp")
    if not (math.isfinite(clip) and clip > 0):
        raise InputError("the clip norm must be a positive number", field="analysis.params.clip_norm")
    clipped = clip_rows(x, clip)
    sums = [math.fsum(col.tolist()) for col in clipped.T]
    n = x.shape[0]
    sensitivity = _check_release(loss, clip + math.ulp((n + 1) * clip), "analysis.params.clip_norm")
    cal = _calibrated("gaussian", sensitivity, loss.rho)
    noisy = [float(v) for v in cal.measurement(sums)]
    return NoisyValues(noisy, "gaussian", cal.scale, PrivacyLoss(cal.rho), cal.sensitivity, cal.ci95)


__all__ = ["clip_rows", "noisy_clipped_sum"]
