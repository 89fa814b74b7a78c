"""Dominance rules for released sums, residual degrees of freedom, and few-valued columns as counts.

These are the statistical offices' rules as ACRO applies them (AI-SDC/ACRO, the output checker of the
UK SACRO programme). The defaults are ACRO's ``acro/default.yaml``:

* ``safe_nk_n: 2``, ``safe_nk_k: 0.90`` — N-K rule: the largest n contributions to a cell may not make
  up more than k of its total (``acro_tables.agg_nk``: ``top_n / total > k`` is disclosive);
* ``safe_pratio_p: 0.10`` — p-ratio rule: the total minus the two largest contributions must be at
  least p × the largest, or the second contributor could estimate the largest to within p
  (``acro_tables.agg_p_percent``: ``(total − top1 − top2) / top1 < p`` is disclosive);
* ``safe_dof_threshold: 10`` — a model needs at least 10 residual degrees of freedom
  (``sdcchecks.check_model_dof``).

Contributions are taken in absolute value: ACRO sends a cell with negative contributions to manual
review, while a gate has no reviewer, and ``|x|`` is what dominates a sum of squares.

Every refusal names the rule and the column; none states a count, a value or a row, since the
message leaves the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
from numpy.typing import ArrayLike

from phds.errors import ConfigError, DisclosureRefused

ACRO_NK_N = 2
"""ACRO ``safe_nk_n``: how many of the largest contributions the N-K rule adds up."""
ACRO_NK_K = 0.90
"""ACRO ``safe_nk_k``: the share of the total those largest contributions may not exceed."""
ACRO_PRATIO_P = 0.10
"""ACRO ``safe_pratio_p``: the rest must be at least this share of the largest contribution."""
ACRO_DOF_THRESHOLD = 10
"""ACRO ``safe_dof_threshold``: the fewest residual degrees of freedom a model may have."""

DISCRETE_MAX_LEVELS = 10
"""A column with at most this many distinct values is treated as a count (see :func:`as_count_if_discrete`).

Why 10: on L known support points, the L level counts are fixed by n and the first L − 1 moments (a
Vandermonde system), and XᵀX of a design with columns 1, x, x² already carries four of them, so any
few-valued column's level counts are within reach of the sums a GLM releases. 10 covers what such
columns are in practice — indicators and dummies (2), sums or products of indicators such as the
three-valued ``I(x > v) + I(x >= v)`` (3), numeric category codes, short ordinal scores — while the
continuous CNSIM covariates have hundreds of distinct values at every site. :func:`phds.privacy.
design_checks.check_design` raises the bound to 2p − 1 for a p-column design, the moments its
products can carry.
"""


@dataclass(frozen=True)
class DominanceRules:
    """The N-K and p-ratio rules and the residual-dof floor, with ACRO's defaults."""

    nk_n: int = ACRO_NK_N
    nk_k: float = ACRO_NK_K
    p_ratio: float = ACRO_PRATIO_P
    min_dof: int = ACRO_DOF_THRESHOLD

    def __post_init__(self) -> None:
        if self.nk_n < 1:
            raise ConfigError("dominance nk_n must be at least one contribution")
        if not 0.0 < self.nk_k < 1.0:
            raise ConfigError("dominance nk_k must lie strictly between zero and one")
        if not 0.0 <= self.p_ratio <= 1.0:
            raise ConfigError("dominance p_ratio must lie between zero and one")
        if self.min_dof < 0:
            raise ConfigError("dominance min_dof cannot be negative")

    @classmethod
    def from_policy(cls, overrides: Mapping[str, float] | None = None) -> DominanceRules:
        """The network defaults tightened by a hospital policy; loosening any of them is refused.

        Tighter means: more top contributions (``nk_n`` up), a smaller share for them (``nk_k`` down),
        a larger p (``p_ratio`` up) and more residual degrees of freedom (``min_dof`` up).
        """
        base = cls()
        if not overrides:
            return base
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown dominance settings: {', '.join(unknown)}")
        values = {name: overrides.get(name, getattr(base, name)) for name in known}
        if int(values["nk_n"]) != values["nk_n"] or int(values["min_dof"]) != values["min_dof"]:
            raise ConfigError("dominance nk_n and min_dof must be whole numbers")
        rules = replace(
            base,
            nk_n=int(values["nk_n"]),
            nk_k=float(values["nk_k"]),
            p_ratio=float(values["p_ratio"]),
            min_dof=int(values["min_dof"]),
        )
        looser = [
            name
            for name, is_looser in (
                ("nk_n", rules.nk_n < base.nk_n),
                ("nk_k", rules.nk_k > base.nk_k),
                ("p_ratio", rules.p_ratio < base.p_ratio),
                ("min_dof", rules.min_dof < base.min_dof),
            )
            if is_looser
        ]
        if looser:
            raise ConfigError(
                f"a hospital policy may only tighten the network's dominance rules; "
                f"{', '.join(looser)} would loosen them"
            )
        return rules


ACRO_DEFAULTS = DominanceRules()
"""ACRO's default risk appetite; the rules' default when none is given."""


def _contributions(name: str, contributions: ArrayLike) -> np.ndarray:
    values: np.ndarray = np.abs(np.asarray(contributions, dtype=float).ravel())
    if not np.all(np.isfinite(values)):
        raise DisclosureRefused(f"{name!r} has non-finite contributions to a sum; it cannot be checked")
    return values


def _top(values: np.ndarray, n: int) -> np.ndarray:
    """The *n* largest values, largest first (fewer if there are fewer), without a full sort."""
    if values.size <= n:
        return np.sort(values)[::-1]
    return np.sort(np.partition(values, values.size - n)[values.size - n :])[::-1]


def check_nk(name: str, contributions: ArrayLike, rules: DominanceRules | None = None) -> None:
    """N-K rule: the ``nk_n`` largest |contributions| may not exceed ``nk_k`` × the total (ACRO ``agg_nk``).

    A zero total has no dominant contributor and passes.
    """
    rules = rules or ACRO_DEFAULTS
    values = _contributions(name, contributions)
    total = float(values.sum())
    if total == 0.0:
        return
    if float(_top(values, rules.nk_n).sum()) > rules.nk_k * total:
        raise DisclosureRefused(
            f"the sum of {name!r} fails the N-K dominance rule (ACRO safe_nk_n, safe_nk_k): "
            "a few rows carry nearly all of it"
        )


def check_p_percent(name: str, contributions: ArrayLike, rules: DominanceRules | None = None) -> None:
    """p-ratio rule: total − largest − second largest must be at least ``p_ratio`` × the largest.

    ACRO ``agg_p_percent``; with one or two contributors the rest is zero, so such a sum is refused.
    A zero total passes.
    """
    rules = rules or ACRO_DEFAULTS
    values = _contributions(name, contributions)
    total = float(values.sum())
    if total == 0.0:
        return
    top = _top(values, 2)
    first = float(top[0])
    second = float(top[1]) if top.size > 1 else 0.0
    if total - first - second < rules.p_ratio * first:
        raise DisclosureRefused(
            f"the sum of {name!r} fails the p% dominance rule (ACRO safe_pratio_p): "
            "the largest contribution could be estimated closely from it"
        )


def check_sum(name: str, contributions: ArrayLike, rules: DominanceRules | None = None) -> None:
    """Both dominance rules on one released sum; a sum whose contributions are all zero passes."""
    values = _contributions(name, contributions)
    if float(values.sum()) == 0.0:
        return
    check_nk(name, values, rules)
    check_p_percent(name, values, rules)


def check_residual_dof(n_obs: int, n_params: int, rules: DominanceRules | None = None) -> None:
    """A model needs at least ``min_dof`` residual degrees of freedom (ACRO ``safe_dof_threshold``)."""
    if n_obs - n_params < (rules or ACRO_DEFAULTS).min_dof:
        raise DisclosureRefused(  # neither N nor the dof is named: N may be a small count
            "the model has too few residual degrees of freedom (ACRO safe_dof_threshold); "
            "simplify the model or use more rows"
        )


def as_count_if_discrete(name: str, values: ArrayLike, k: int, max_levels: int = DISCRETE_MAX_LEVELS) -> bool:
    """Treat a column with at most *max_levels* distinct values as a count; return whether it is one.

    Every observed value of such a column must be held by at least *k* rows, as a table's cells must:
    the mean of a 0/1 column is a proportion, and with n it is a count (DataSHIELD ``glmDS1`` applies
    this to two-valued columns as ``nfilter.tab``; here it covers any few-valued column, however it
    was computed — see :data:`DISCRETE_MAX_LEVELS`).
    """
    column = np.asarray(values, dtype=float).ravel()
    if column.size == 0:
        return False
    if np.unique(column[:4096]).size > max_levels:  # a sample already shows too many values: no sort of all
        return False
    levels, counts = np.unique(column, return_counts=True)
    if levels.size > max_levels:
        return False
    if int(counts.min()) < k:
        raise DisclosureRefused(
            f"{name!r} takes few distinct values, so it is treated as a count, and one of its values "
            "is held by fewer rows than the minimum cell count"
        )
    return True


__all__ = [
    "ACRO_DEFAULTS",
    "ACRO_DOF_THRESHOLD",
    "ACRO_NK_K",
    "ACRO_NK_N",
    "ACRO_PRATIO_P",
    "DISCRETE_MAX_LEVELS",
    "DominanceRules",
    "as_count_if_discrete",
    "check_nk",
    "check_p_percent",
    "check_residual_dof",
    "check_sum",
]
