"""Wire models of formal privacy: a study's differential-privacy request and a DP value's statement.

A study file may ask for differential privacy with a top-level ``dp:`` block (:class:`DpRequest`): the
privacy loss each hospital may spend on it, in zero-concentrated DP (``rho``) or as (ε, δ)
(``epsilon``, with the node's δ), the noise mechanism, and clipping bounds for sums. The node applies
the stricter of this request and its own policy. Every value released under DP carries a
:class:`DpStatement`: its mechanism, noise scale, the loss it spent and its 95% interval.

Privacy loss is accounted in ρ-zCDP (Bun & Steinke 2016, "Concentrated Differential Privacy:
Simplifications, Extensions, and Lower Bounds", TCC): losses add under composition; ρ-zCDP implies
(ρ + 2√(ρ·ln(1/δ)), δ)-DP for every δ > 0 (their Proposition 1.3).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from phds.protocol.common import WireModel

DpMechanism = Literal["discrete_gaussian", "discrete_laplace"]


def _finite_positive(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError("must be a finite number above 0")
    return value


def _ordered_bounds(value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    for name, (lower, upper) in value.items():
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise ValueError(f"bounds of {name!r} must be finite with lower < upper")
    return value


ClippingBounds = Annotated[dict[str, tuple[float, float]], AfterValidator(_ordered_bounds)]
"""Clipping bounds [lower, upper] per numeric variable: finite, lower < upper (study and policy)."""


class DpRequest(WireModel):
    """A study's ``dp:`` block: give exactly one of ``epsilon`` or ``rho`` (per hospital, whole study)."""

    epsilon: float | None = Field(
        None, description="Total ε per hospital for this study (with the node's δ)."
    )
    rho: float | None = Field(None, description="Total ρ (zCDP) per hospital for this study.")
    mechanism: DpMechanism = Field("discrete_gaussian", description="Noise for counts.")
    bounds: ClippingBounds = Field(
        default_factory=dict, description="Clipping bounds [lower, upper] per numeric variable, for sums."
    )

    @field_validator("epsilon", "rho")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        return _finite_positive(value)

    @model_validator(mode="after")
    def _one_loss(self) -> DpRequest:
        if (self.epsilon is None) == (self.rho is None):
            raise ValueError("give exactly one of epsilon or rho")
        return self


class DpStatement(WireModel):
    """How a DP value was made: mechanism, noise scale, the loss it spent, and its 95% interval.

    ``ci95`` is the half-width of the interval that holds the true value with probability 0.95 (OpenDP's
    accuracy utilities). ``rho`` is what this value spent at the node; ``epsilon`` is the same loss as
    (ε, δ)-DP for the node's ``delta``.
    """

    mechanism: str
    scale: float = Field(ge=0)
    rho: float = Field(ge=0)
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0, lt=1)
    ci95: float = Field(ge=0)
    alpha: float = 0.05
    reused: bool = Field(False, description="A repeat of an identical earlier release, spending nothing.")
    share_of: int | None = Field(
        None,
        description="A share of distributed noise: the sum over at least this many nodes has this scale.",
    )


class DpBudget(WireModel):
    """What remains of a requester's budget on one dataset at one node, after this release."""

    dataset: str
    spent_rho: float = Field(ge=0)
    remaining_rho: float = Field(ge=0)
    remaining_epsilon: float = Field(ge=0)
    delta: float


__all__ = ["ClippingBounds", "DpBudget", "DpMechanism", "DpRequest", "DpStatement"]
