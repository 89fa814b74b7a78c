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
class LocalContext:
    """Everything a local step may use besides its parameters (see the module docstring)."""

    data: NodeData
    round_no: int = 1
    state: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    requester: RequesterInfo = field(default_factory=lambda: RequesterInfo("local"))
    service_type: str = "analytical_study"
    study_id: str = "local"
    memory: Memory = field(default_factory=DictMemory)
    requester_memory: Memory = field(default_factory=DictMemory)
    budget: Any = None  # the differential-privacy budget handle (issue 8); None while DP is off

    @property
    def k(self) -> int:
        """The node policy's minimum cell count."""
        return max(NETWORK_MIN_CELL_COUNT, self.thresholds.min_cell_count)


__all__ = ["DictMemory", "LocalContext", "Memory", "RequesterInfo", "Thresholds"]
