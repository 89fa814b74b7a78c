"""A model design may not isolate fewer than k rows: cross-classifications, leverage, weights, sums.

DESIGN.md, "Requester arithmetic is not data": a covariate such as ``I(exp(-1e6*(x-v)**2))`` is a
column of one patient; a weight or an outcome that is zero but for one row makes XᵀWX and XᵀWz that
patient's values; and a hub that chooses β can concentrate the IRLS or Cox weights on one row. The
checks here run at the node on the arrays it is about to summarise and refuse such designs:

* :func:`check_design` — once per design: discrete columns and a discrete outcome as counts and in
  their joint cross-classification, prior weights, dominance of every released sum of squares,
  residual degrees of freedom, and the leverage of every row;
* :func:`check_irls_point` / :func:`check_separation` — at each β the hub proposes for a GLM;
* :func:`check_risk_sets` — at each β the hub proposes for a Cox model.

Why leverage is the general rule. For a row i of A = √w·X, the hat value is
``h_ii = max_b (a_iᵀb)² / Σ_j (a_jᵀb)²``: the largest share of a fitted column's sum of squares that
row i can carry. If some combination of the columns is an indicator of m rows (a dummy, a bump, an
``exp(100x)`` that is zero but for the maximum), each of those rows has h_ii ≥ 1/m. So a bound just
above 1/k refuses every design that can isolate fewer than k rows, however the column was computed.

Thresholds (each a :class:`DesignLimits` field; a hospital may tighten them):

* ``k`` — the network minimum cell count, 5 (OHDSI ``minCellCount``, :mod:`phds.privacy.disclosure`);
* ``max_leverage`` — ``1/(k − ½)`` unless set (0.222 for k = 5): above 1/k, so a cell of exactly k
  rows with some continuous spread inside it passes (h = 1/k plus a little), and below 1/(k − 1), so
  any direction isolating k − 1 rows or fewer is refused. The legitimate CNSIM models have maximum
  hat values of 0.007–0.022 unweighted and 0.08–0.12 with logistic working weights (tests);
* ``eta_bound`` — 30: R's ``logit_linkinv`` clamps η at ±30 (``THRESH``/``MTHRESH``,
  ``src/library/stats/src/family.c``), where μ is within 1e-13 of 0 or 1; a β beyond it is separation
  or a hub steering the weights, never a usable fit;
* ``min_ess`` — k unless set: weights whose effective sample size (Σw)²/Σw² (Kish 1965) is below k
  make a sum behave like one over fewer than k rows;
* ``max_levels`` — :data:`~phds.privacy.dominance.DISCRETE_MAX_LEVELS`, the most values a column may
  have to be treated as a count; below that, :func:`pinned_levels` decides from how many of the model's
  columns are functions of it (a column entering linearly pins 3 values; with x² too, 5);
* ``cross_classification`` — ``"pairwise"`` (default): every non-empty cell of the cross-classification
  of each pair of discrete columns, and of each discrete column with a discrete outcome, holds ≥ k rows.
  That is exactly what the released sums contain: XᵀWX and XᵀWz give n, Σa, Σb and Σab for every pair,
  hence all four cells of a pair of indicators, and an interaction column brings its own higher-order
  cells into the pairs. A cell of three main effects and the outcome (female ∧ inhaled steroid ∧
  admitted) appears in no released sum, so refusing it would refuse ordinary models (the synthetic
  hospitals' ground-truth model has such cells below 5) without protecting anyone. ``"full"`` (the joint
  cross-classification of all discrete columns) is available to a stricter policy;
* ``risk_set_share`` — 1/3: a Cox risk set of m members must keep an ESS of at least
  ``min(min_ess, m × share)`` at the hub's β. Small late risk sets cannot hold k effective members
  at any β ≠ 0, so they are held to a share of their own size; legitimate fits on the lifelines
  GBSG2 and Rossi data keep ESS/m ≥ 0.59 in every risk set (tests).

Limitations: these checks see one design at a time. Two requests whose weights are ``I(x < v)`` and
``I(x <= v)`` each pass and differ by one row; that is the overlap guard's job (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import numpy as np

from phds.errors import ConfigError, DisclosureRefused
from phds.privacy.disclosure import NETWORK_MIN_CELL_COUNT
from phds.privacy.dominance import (
    DISCRETE_MAX_LEVELS,
    DominanceRules,
    as_count_if_discrete,
    check_residual_dof,
    check_sum,
)

R_LOGIT_THRESH = 30.0
"""R ``family.c``: ``logit_linkinv`` clamps η outside ±30; the default bound on |η| at a hub's β."""
SEPARATION_TOL = 1e-8
"""Fitted probabilities this close to 0 or 1 mean separation (μ = 1e-8 is η ≈ −18.4)."""
RISK_SET_SHARE = 1 / 3
"""A small Cox risk set must keep at least this share of its members as effective sample size."""


@dataclass(frozen=True)
class DesignLimits:
    """How few rows a design may isolate; see the module docstring for each default's source."""

    k: int = NETWORK_MIN_CELL_COUNT
    max_levels: int = DISCRETE_MAX_LEVELS
    max_leverage: float | None = None
    eta_bound: float = R_LOGIT_THRESH
    min_ess: float | None = None
    cross_classification: Literal["full", "pairwise"] = "pairwise"
    risk_set_share: float = RISK_SET_SHARE
    rules: DominanceRules = field(default_factory=DominanceRules)

    def __post_init__(self) -> None:
        if self.k < NETWORK_MIN_CELL_COUNT:
            raise ConfigError("the design limit k may not be below the network minimum cell count")
        if self.max_levels < 2:
            raise ConfigError("max_levels must count at least the two values of an indicator")
        if self.max_leverage is not None and not 0.0 < self.max_leverage <= 1.0 / (self.k - 0.5):
            raise ConfigError("max_leverage must be positive and at most 1/(k − ½)")
        if self.min_ess is not None and self.min_ess < self.k:
            raise ConfigError("min_ess may not be below k")
        if not 0.0 < self.eta_bound <= R_LOGIT_THRESH:
            raise ConfigError("eta_bound must be positive and at most R's logit clamp")
        if not 0.0 < self.risk_set_share <= 1.0:
            raise ConfigError("risk_set_share must lie in (0, 1]")

    @property
    def leverage_limit(self) -> float:
        """The largest hat value a row may have: ``max_leverage``, else 1/(k − ½)."""
        return self.max_leverage if self.max_leverage is not None else 1.0 / (self.k - 0.5)

    @property
    def ess_limit(self) -> float:
        """The smallest effective sample size of any weights: ``min_ess``, else k."""
        return float(self.min_ess) if self.min_ess is not None else float(self.k)


DEFAULT_LIMITS = DesignLimits()


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (Σw)²/Σw²; 0 for no or all-zero weights."""
    w = np.asarray(weights, dtype=float).ravel()
    total_sq = float(np.dot(w, w))
    return float(w.sum()) ** 2 / total_sq if total_sq > 0 else 0.0


def _check_weights(name: str, w: np.ndarray, limits: DesignLimits) -> None:
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DisclosureRefused(f"the {name} must be finite and non-negative")
    if effective_sample_size(w) < limits.ess_limit:
        raise DisclosureRefused(
            f"the {name} concentrate on too few rows: their effective sample size is below the "
            "minimum cell count"
        )


def _orthonormal_basis(a: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Q (n × r) spanning the columns of *a*, and which columns it keeps (aliased ones are dropped).

    Columns are scaled to unit length first (hat values do not depend on scale), then a column whose
    QR diagonal is below numpy's ``matrix_rank`` tolerance (max(n, p) · ε) is aliased by the others.
    """
    n, p = a.shape
    norms = np.linalg.norm(a, axis=0)
    keep = [j for j in range(p) if norms[j] > 0]
    scaled = a[:, keep] / norms[keep]
    while keep:
        q, r = np.linalg.qr(scaled)
        diag = np.abs(np.diag(r))
        tol = max(n, len(keep)) * np.finfo(float).eps
        if diag.size == len(keep) and bool(np.all(diag > tol)):
            return q, keep
        good = [i for i in range(len(keep)) if i < diag.size and diag[i] > tol]
        keep = [keep[i] for i in good]
        scaled = scaled[:, good]
    return np.zeros((n, 0)), []


def hat_values(a: np.ndarray) -> np.ndarray:
    """Diagonal of the hat matrix of *a* (n × p) from a thin QR: Σ_j Q_ij², no n × n matrix."""
    q, _ = _orthonormal_basis(np.asarray(a, dtype=float))
    h: np.ndarray = np.einsum("ij,ij->i", q, q)
    return h


def _check_leverage(a: np.ndarray, columns: Sequence[str], limits: DesignLimits, what: str) -> None:
    q, keep = _orthonormal_basis(a)
    if not keep:
        return
    h = np.einsum("ij,ij->i", q, q)
    row = int(np.argmax(h))
    if float(h[row]) > limits.leverage_limit:
        # the column that adds most of that row's leverage, given the columns before it
        name = columns[keep[int(np.argmax(q[row] ** 2))]]
        raise DisclosureRefused(
            f"{what}: a row's leverage is above the bound for the minimum cell count, so the fit "
            f"nearly reproduces fewer rows than that; the design isolates them through {name!r}"
        )


def _cross_classification(
    names: Sequence[str], matrix: np.ndarray, k: int, mode: Literal["full", "pairwise"]
) -> None:
    if matrix.shape[1] < 2:
        return
    # Each column is discrete (a few values): code it once, then count the cells of a pair in O(n).
    coded = [np.unique(matrix[:, j], return_inverse=True) for j in range(matrix.shape[1])]
    for a, b in combinations(range(matrix.shape[1]), 2):
        (levels_a, code_a), (levels_b, code_b) = coded[a], coded[b]
        cells = np.bincount(
            code_a.ravel() * levels_b.size + code_b.ravel(), minlength=levels_a.size * levels_b.size
        )
        counts = cells[cells > 0]
        if int(counts.min()) < k:
            raise DisclosureRefused(
                f"the cross-classification of {names[a]!r} and {names[b]!r} has a non-empty cell with "
                "fewer rows than the minimum cell count"
            )
    if mode == "full" and matrix.shape[1] > 2:
        _, counts = np.unique(matrix, axis=0, return_counts=True)
        if int(counts.min()) < k:
            listed = ", ".join(repr(n) for n in names)
            raise DisclosureRefused(
                f"the joint cross-classification of {listed} has a non-empty cell with fewer rows than "
                "the minimum cell count"
            )


def pinned_levels(x: np.ndarray, j: int, cap: int) -> int:
    """How many values of column *j* the model's sums pin down: a column with at most this many distinct
    values is a count in disguise.

    The released sums XᵀWX hold the products of every pair of columns. If m columns (the intercept
    included) are functions of column j — constant within each of its values, as x, x², exp(x) are —
    their products give the moments of x_j up to order 2m − 2, and with n those fix the counts of up to
    2m − 1 distinct values (a Vandermonde system). A column entering linearly (m = 2) pins 3 values.
    """
    col = x[:, j]
    if np.unique(col[:4096]).size > cap or np.unique(col).size > cap:  # a sample first: no sort of all
        return cap
    order = np.argsort(col, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(col[order]) != 0])
    ordered = x[order]
    within = np.maximum.reduceat(ordered, starts, axis=0) - np.minimum.reduceat(ordered, starts, axis=0)
    functions = int(np.count_nonzero(np.all(within == 0, axis=0)))  # includes j itself and the intercept
    intercept = 0 if np.any(np.all(x == x[:1], axis=0)) else 1  # n is always released
    return min(cap, 2 * (functions + intercept) - 1)


def check_design(
    x: np.ndarray,
    columns: list[str],
    y: np.ndarray,
    prior_weights: np.ndarray | None,
    limits: DesignLimits = DEFAULT_LIMITS,
    *,
    outcome: str = "outcome",
) -> None:
    """Refuse a design X (n × p), outcome y and prior weights that isolate fewer than k rows.

    Rows with weight 0 add nothing to any sum and are left out of every count. In order: weights
    (finite, ≥ 0, ESS, dominance), residual dof, each discrete column and a discrete outcome as a
    count, their cross-classification, dominance of every column's Σ w·x² and of Σ w·y², leverage.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    if x.ndim != 2 or x.shape[0] != y.size or x.shape[1] != len(columns):
        raise DisclosureRefused("the design, outcome and column names do not match; nothing is released")
    w = np.ones(y.size) if prior_weights is None else np.asarray(prior_weights, dtype=float).ravel()
    if w.size != y.size:
        raise DisclosureRefused("the prior weights do not match the design; nothing is released")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DisclosureRefused("the design or outcome has non-finite values")
    _check_weights("prior weights", w, limits)
    check_sum("prior weights", w, limits.rules)
    used = w > 0
    x, y, w = x[used], y[used], w[used]
    n, p = x.shape
    check_residual_dof(n, p, limits.rules)

    names: list[str] = []
    discrete: list[np.ndarray] = []
    for j, name in enumerate(columns):
        levels = pinned_levels(x, j, limits.max_levels)
        if as_count_if_discrete(name, x[:, j], limits.k, levels) and np.ptp(x[:, j]) > 0:
            names.append(name)
            discrete.append(x[:, j])
    if as_count_if_discrete(outcome, y, limits.k, 3) and np.ptp(y) > 0:
        names.append(outcome)
        discrete.append(y)
    if discrete:
        _cross_classification(names, np.column_stack(discrete), limits.k, limits.cross_classification)

    for name, col in [*zip(columns, x.T, strict=True), (outcome, y)]:
        scale = float(np.max(np.abs(col), initial=0.0))  # the rules are scale-free; exp(100x)² overflows
        if scale > 0:
            check_sum(name, w * (col / scale) ** 2, limits.rules)
    _check_leverage(np.sqrt(w)[:, None] * x, columns, limits, "design")


def check_irls_point(
    eta: np.ndarray | None,
    working_weights: np.ndarray,
    x: np.ndarray,
    limits: DesignLimits = DEFAULT_LIMITS,
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Refuse to answer an IRLS round at a β the hub proposed if it singles out rows.

    *eta* is Xβ + offset (pass ``None`` for the identity link, whose working weights do not depend
    on β); every |η| must be within ``eta_bound``. The working weights (prior × IRLS) must keep an
    ESS of at least ``ess_limit`` and the weighted design √w·X no row above ``leverage_limit``.
    """
    if eta is not None:
        e = np.asarray(eta, dtype=float).ravel()
        if not np.all(np.isfinite(e)) or float(np.max(np.abs(e), initial=0.0)) > limits.eta_bound:
            raise DisclosureRefused(
                "the proposed coefficients put the linear predictor beyond R's logit clamp for some "
                "rows: the fit diverges (separation) or the weights are being steered"
            )
    ww = np.asarray(working_weights, dtype=float).ravel()
    _check_weights("IRLS working weights at the proposed coefficients", ww, limits)
    xa = np.asarray(x, dtype=float)
    names = (
        list(columns) if columns is not None else [f"column {chr(97 + j % 26)}" for j in range(xa.shape[1])]
    )
    _check_leverage(np.sqrt(ww)[:, None] * xa, names, limits, "IRLS step at the proposed coefficients")


def check_linear_predictor(eta: np.ndarray, bound: float = R_LOGIT_THRESH) -> None:
    """Refuse before computing anything at a β whose linear predictor leaves ±*bound* (or is not finite):
    the sums at such a β would overflow or be carried by a few rows. The gate checks the policy's own,
    possibly tighter, bound again on the released point."""
    e = np.asarray(eta, dtype=float).ravel()
    with np.errstate(invalid="ignore"):
        if not np.all(np.isfinite(e)) or float(np.max(np.abs(e), initial=0.0)) > bound:
            raise DisclosureRefused(
                "the proposed coefficients put the linear predictor beyond R's logit clamp for some "
                "rows: the fit diverges (separation) or the weights are being steered"
            )


def check_separation(mu: np.ndarray, *, outcome: str = "outcome", tol: float = SEPARATION_TOL) -> None:
    """Refuse a binomial fit whose fitted probabilities are numerically 0 or 1 for some row.

    That is perfect or quasi-complete separation: the coefficients diverge and the rows concerned
    are reproduced exactly (R warns "fitted probabilities numerically 0 or 1 occurred").
    """
    m = np.asarray(mu, dtype=float).ravel()
    if m.size and (not np.all(np.isfinite(m)) or float(m.min()) < tol or float(m.max()) > 1.0 - tol):
        raise DisclosureRefused(
            f"the model separates {outcome!r}: fitted probabilities are numerically 0 or 1 for some rows"
        )


def check_risk_sets(risk_weights_by_set: Sequence[np.ndarray], limits: DesignLimits = DEFAULT_LIMITS) -> None:
    """Refuse a Cox round at the hub's β if exp(xβ) concentrates any risk set on too few members.

    A risk set of m members must keep an ESS of at least ``min(ess_limit, m × risk_set_share)``;
    at β = 0 its ESS is m, and a large β makes one member dominate and exposes the maximum.
    """
    for weights in risk_weights_by_set:
        w = np.asarray(weights, dtype=float).ravel()
        if w.size == 0:
            continue
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DisclosureRefused("the risk-set weights at the proposed coefficients are not finite")
        required = min(limits.ess_limit, w.size * limits.risk_set_share)
        if effective_sample_size(w) < required:
            raise DisclosureRefused(
                "the proposed coefficients concentrate a risk set's weight on too few members "
                "(effective sample size below the minimum cell count)"
            )


def check_ordered_risk_sets(
    weights: np.ndarray, ends: np.ndarray, limits: DesignLimits = DEFAULT_LIMITS
) -> None:
    """:func:`check_risk_sets` for risk sets that are prefixes of one ordering (decreasing time), in O(n).

    *ends* are the exclusive ends of the prefixes that are risk sets (one per event time).
    """
    w = np.asarray(weights, dtype=float).ravel()
    if w.size == 0:
        return
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DisclosureRefused("the risk-set weights at the proposed coefficients are not finite")
    scaled = w / w.max() if w.max() > 0 else w
    s1, s2 = np.cumsum(scaled), np.cumsum(scaled * scaled)
    at = np.asarray(ends, dtype=np.int64) - 1
    at = at[(at >= 0) & (at < w.size)]
    if at.size == 0:
        return
    ess = np.where(s2[at] > 0, s1[at] ** 2 / np.where(s2[at] > 0, s2[at], 1.0), 0.0)
    required = np.minimum(limits.ess_limit, (at + 1) * limits.risk_set_share)
    if np.any(ess < required - 1e-9):
        raise DisclosureRefused(
            "the proposed coefficients concentrate a risk set's weight on too few members "
            "(effective sample size below the minimum cell count)"
        )


__all__ = [
    "DEFAULT_LIMITS",
    "RISK_SET_SHARE",
    "R_LOGIT_THRESH",
    "SEPARATION_TOL",
    "DesignLimits",
    "check_design",
    "check_irls_point",
    "check_linear_predictor",
    "check_ordered_risk_sets",
    "check_risk_sets",
    "check_separation",
    "effective_sample_size",
    "hat_values",
    "pinned_levels",
]
