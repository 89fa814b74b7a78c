"""What a local step is given at a node: :class:`LocalContext`.

The context carries the hospital policy's thresholds (never numbers the hub sends), who is asking and
for which service, the round and the hub's round state, and two memories the node keeps itself: one
per study (what this node accepted in earlier rounds, e.g. quantile thresholds) and one per requesting
organisation (e.g. the time grid it fixed for that requester). Analyses that cut or bin data use
``ctx.k`` and their memory, so a hub cannot talk a node into finer cuts than its policy allows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from phds.privacy.disclosure import NETWORK_MIN_CELL_COUNT, NETWORK_NFILTER_GLM

if TYPE_CHECKING:
    from phds.sources import NodeData


class Memory(Protocol):
    """A node-side key → JSON value store; writes commit with the release they belong to."""

    def recall(self, key: str, default: Any = None) -> Any: ...

    def remember(self, key: str, value: Any) -> None: ...


@dataclass
class DictMemory:
    """A memory held in a dict: for in-process federations (:mod:`phds.analyses.testing`)."""

    values: dict[str, Any] = field(default_factory=dict)

    def recall(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.values.get(key, default))

    def remember(self, key: str, value: Any) -> None:
        self.values[key] = copy.deepcopy(value)


@dataclass(frozen=True)
class Thresholds:
    """The hospital policy's disclosure thresholds, as an analysis may need them."""

    min_cell_count: int = NETWORK_MIN_CELL_COUNT
    nfilter_glm: float = NETWORK_NFILTER_GLM
    nfilter_tab: int = NETWORK_MIN_CELL_COUNT
    release_zero_counts: bool = True


@dataclass(frozen=True)
class RequesterInfo:
    """Who asks: the organisation and its category, as the node verified them."""

    organisation: str
    category: str | None = None


@dataclass(frozen=True)
class DpInForce:
    """Differential privacy in force for one study at one node (the stricter of request and policy).

    ``rho`` is the study's whole loss at this node (zCDP); the gate splits it over rounds and releases.
    ``bounds`` are the clipping bounds of numeric variables (the policy's replace the study's).
    """

    rho: float
    delta: float
    mechanism: str = "discrete_gaussian"
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def bounds_for(self, variable: str) -> tuple[float, float] | None:
        found = self.bounds.get(variable)
        return (float(found[0]), float(found[1])) if found is not None else None


def dp_clip(ctx: LocalContext, variable: str) -> tuple[float, float] | None:
    """The clipping bounds of *variable* when DP is in force (None otherwise); an error naming
    ``dp.bounds.<variable>`` when DP is in force and neither the study nor the policy gives them."""
    if ctx.dp is None:
        return None
    bounds = ctx.dp.bounds_for(variable)
    if bounds is None:
        from phds.errors import InputError

        raise InputError(
            f"under differential privacy a sum of {variable} needs clipping bounds [lower, upper]",
            field=f"dp.bounds.{variable}",
        )
    return bounds


@dataclass(frozen=True)
class LocalContext:
    """Everything a local step may use besides its parameters (see the module docstring)."""

    data: NodeData
    round_no: int = 1
    state: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    requester: RequesterInfo = field(default_factory=lambda: RequesterInfo("local"))
    service_type: str = "analytical_study"
    study_id: str = "local"
    hospital: str = "local"  # this node's hospital, as the task names it
    memory: Memory = field(default_factory=DictMemory)
    requester_memory: Memory = field(default_factory=DictMemory)
    dp: DpInForce | None = None  # differential privacy in force for this study; None: exact answers
    secure_aggregation: bool = False
    """The study combines releases by secure aggregation (the hub sees only network sums), so a local
    step must release on grids that do not depend on the data (the hub fixes the sum's layout first)."""

    @property
    def k(self) -> int:
        """The node policy's minimum cell count."""
        return max(NETWORK_MIN_CELL_COUNT, self.thresholds.min_cell_count)


__all__ = ["DictMemory", "DpInForce", "LocalContext", "Memory", "RequesterInfo", "Thresholds", "dp_clip"]
