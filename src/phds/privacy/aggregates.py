"""What an analysis's local step may return: typed aggregates that carry their own evidence.

An aggregate names a statistic and holds, at the node only, the rows it is computed from: the persons
(:class:`Persons`, ids in one dataset) and, where a rule needs them, their labels, contributions or model
design. The node's gate (:mod:`phds.node.gate`) computes or checks the released numbers from that
evidence, so an analysis cannot release a count its persons do not support, and every rule (minimum cell
count, overlap guard, dominance, design isolation) sees the rows behind the number. Nothing here ever
leaves the node: only the gate's :mod:`phds.protocol.releases` models do.

Each type maps to one release rule of the gate:

* :class:`CountAggregate` — a number of persons; released exactly or as ``"<k"``; overlap-guarded;
* :class:`BreakdownAggregate` — a partition of persons by label; suppressed cells, level names, linked
  tables; each released cell is overlap-guarded;
* :class:`SumAggregate` — sums of per-person contributions (moments); n ≥ k, dominance (N-K, p%), and a
  few-valued variable is gated as the count it is;
* :class:`ModelAggregate` — model statistics (a QR factor, a gradient) with the design they come from;
  saturation, residual degrees of freedom, isolation of rows (cells, leverage, weights) and the
  admissibility of a β the hub proposed;
* :class:`ProfileAggregate` — the catalogue's dataset profile; every count 0, suppressed or ≥ k, and
  no vocabulary entry named for a suppressed count;
* :class:`NamingAggregate` — whether a benchmarking result may name this hospital: the gate fills it in
  from the node's own policy (``[policy.benchmarking]``), never from what the analysis or hub says.
* :class:`UpdateAggregate` — a federated-learning model update: at least the policy's ``fl_min_rows``
  rows, parameters vs rows (nfilter.glm), within its L2 clip, finite, a design that isolates no row, and
  a global model (the hub's) that singles out no row; under DP, a noisy sum of per-row clipped gradients.
* :class:`MarginalsAggregate` — a synthetic-data generator's measurements (MST's noisy marginals) of
  declared, discretised columns; released only under differential privacy, never exactly.
* :class:`ProbeAggregate` — no data: a platform probe (``system.noop``), pseudo-random numbers the
  gate draws itself from a public seed, to check and measure long vector sums end to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from phds.errors import InputError


@dataclass(frozen=True)
class Persons:
    """Rows of one dataset (*universe*, e.g. ``"tabular:cnsim"`` or ``"omop:cdm"``) by their node-side ids.

    OMOP rows are persons (``person_id``); tabular rows get a node-side row identity when the file has
    no id. The ids are hashed with a node secret before they are stored and never leave the node.
    """

    universe: str
    ids: NDArray[Any]

    @classmethod
    def of(cls, universe: str, ids: Sequence[Any] | NDArray[Any]) -> Persons:
        return cls(universe, np.asarray(ids))

    @property
    def size(self) -> int:
        """The number of distinct ids."""
        return int(np.unique(self.ids).size) if self.ids.size else 0

    def subset(self, which: NDArray[Any]) -> Persons:
        """The persons selected by a boolean mask or an index array."""
        return Persons(self.universe, self.ids[which])


@dataclass(frozen=True)
class CountAggregate:
    """The number of distinct *persons*."""

    name: str
    persons: Persons


@dataclass(frozen=True)
class BreakdownAggregate:
    """*persons* partitioned by *labels* (one per id) into the cells *levels* (the full grid, in order).

    ``declared`` says the level names were declared by the requester or come from the node's
    vocabulary; otherwise a name leaves only when it is a short integer code (see the gate). Under
    differential privacy the levels must not depend on the data (a fixed grid or vocabulary).
    A label outside *levels* is an analysis error.
    """

    name: str
    persons: Persons
    labels: NDArray[Any]
    levels: Sequence[str]
    declared: bool = True
    other: str | None = None  # the cell that collects small undeclared levels, when the grid has one

    def cells(self) -> dict[str, int]:
        """Counts of every level (0 for an empty one)."""
        labels = np.asarray(self.labels).astype(str)
        if labels.shape[0] != self.persons.ids.shape[0]:
            raise InputError(f"{self.name}: one label per person is needed", field="aggregates")
        names, counts = np.unique(labels, return_counts=True)
        found = dict(zip(names.tolist(), counts.tolist(), strict=True))
        unknown = set(found) - set(self.levels)
        if unknown:
            raise InputError(f"{self.name}: labels outside the declared levels", field="aggregates")
        return {str(level): int(found.get(level, 0)) for level in self.levels}


@dataclass(frozen=True)
class SumAggregate:
    """Sums over *persons* of each contribution array (aligned with ``persons.ids``).

    *variable* is the raw variable the sums describe, when there is one: if it takes few distinct values
    its sums are counts (the mean of a 0/1 column is a proportion) and are gated as counts. *clip* gives
    each contribution's clipping bounds, which differential privacy needs (the gate clips to them).
    """

    name: str
    persons: Persons
    contributions: Mapping[str, NDArray[np.float64]]
    variable: NDArray[np.float64] | None = None
    clip: Mapping[str, tuple[float, float]] | None = None  # per contribution, under differential privacy


@dataclass(frozen=True)
class DesignEvidence:
    """A model's design at the node: columns of X, the outcome and the prior weights."""

    x: NDArray[np.float64]
    columns: Sequence[str]
    y: NDArray[np.float64] | None
    weights: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class PointEvidence:
    """The state of a model at a parameter value the hub proposed: linear predictors (None for an identity
    link, whose working weights do not depend on β) and working weights."""

    eta: NDArray[np.float64] | None
    working_weights: NDArray[np.float64]


@dataclass(frozen=True)
class RiskSetEvidence:
    """Cox risk sets at the hub's β: exp(xβ) of every row in order of decreasing time, and the end (exclusive)
    of each risk set in that order (a risk set is the prefix of rows still at risk)."""

    weights: NDArray[np.float64]
    ends: NDArray[np.int64]


@dataclass(frozen=True)
class ModelAggregate:
    """Statistics of a model fitted on *persons* (``values``, computed by the vetted analysis).

    ``design`` lets the gate refuse designs that isolate rows; ``point`` (for rounds at a hub-chosen β)
    and ``risk_sets`` (Cox: exp(xβ) of each risk set) let it refuse inadmissible parameter values.
    """

    name: str
    persons: Persons
    n_params: int
    values: Mapping[str, Any]
    design: DesignEvidence | None = None
    point: PointEvidence | None = None
    risk_sets: RiskSetEvidence | None = None


@dataclass(frozen=True)
class ProfileAggregate:
    """A published dataset profile (the catalogue entry): counts already suppressed and rounded by the
    profiler, re-checked by the gate's profile rule before it leaves."""

    name: str
    profile: Mapping[str, Any]


@dataclass(frozen=True)
class NamingAggregate:
    """Ask the gate to state this hospital's naming consent for a benchmarking result. It carries no
    value: the gate's rule reads ``allow_names`` and ``own_organisations`` from the node's policy and the
    requester from the task, so an analysis (or a hub editing the round state) cannot forge them."""

    name: str


@dataclass(frozen=True)
class UpdateAggregate:
    """A federated-learning round at one node (``learning.fedavg`` / ``learning.fedprox``).

    ``update`` is the local model's change Δ = w_local − w_global, already clipped by the analysis to
    L2 norm ``clip_norm`` (the gate checks it again and refuses a longer one); ``values`` are scalars
    released beside it (e.g. the mean loss at the global model). ``design`` is the training inputs and
    outcome, ``point`` the linear predictors and p(1 − p) at the global model the hub sent, and
    ``row_norms`` each row's gradient norm there, so the gate can refuse a global model that makes a
    few rows carry the update. Under differential privacy ``row_gradients`` (one per row, at the global
    model) replace ``update``: the gate clips each row to ``clip_norm``, sums them and adds Gaussian
    noise (one person changes the sum by at most ``clip_norm``; see :mod:`phds.node.gate.dp_step`).
    """

    name: str
    persons: Persons
    n_params: int
    clip_norm: float
    update: NDArray[np.float64] | None
    design: DesignEvidence
    point: PointEvidence
    row_norms: NDArray[np.float64]
    values: Mapping[str, float] | None = None
    row_gradients: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class MarginalsAggregate:
    """The rows (*frame*, aligned with ``persons.ids``) a DP synthetic-data generator measures.

    ``bins`` (:class:`~phds.privacy.synthetic_dp.ColumnBins`) declare each column's categories or cuts,
    so the domain does not depend on the data. The gate's DP step runs the ``algorithm`` (``"mst"``)
    and releases its noisy marginals; the exact rules refuse it (there is no exact release of it).
    """

    name: str
    persons: Persons
    frame: Any  # pandas.DataFrame with one column per bins entry
    bins: Sequence[Any]
    algorithm: str = "mst"


@dataclass(frozen=True)
class ProbeAggregate:
    """A platform probe: *length* numbers in [−1, 1) drawn from the public *seed* (:func:`probe_vector`).

    It reads no data. The gate draws the numbers itself, so a probe cannot carry a hospital's values,
    and the hub, knowing each seed, can recompute every node's vector and check the network sum.
    """

    name: str
    seed: str
    length: int


PROBE_MAX_LENGTH = 100_000
"""The longest probe: 100,000 numbers are about 2 MB as JSON in the clear, inside the hub's default
request limit (``PHDS_HUB_MAX_BODY_BYTES``, 4 MiB)."""


def probe_vector(seed: str, length: int) -> NDArray[np.float64]:
    """*length* numbers in [−1, 1) from *seed*: the ChaCha20 stream of SHA-256(seed) (:mod:`phds.secagg.prg`),
    each 64-bit word's top 53 bits as a fraction. The same on every platform and numpy version."""
    import hashlib

    from phds.secagg.prg import mask

    if not 0 <= length <= PROBE_MAX_LENGTH:
        raise InputError(f"a probe has 0 to {PROBE_MAX_LENGTH:,} values", field="vector_length")
    words = mask(hashlib.sha256(seed.encode()).digest(), length)
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


Aggregate = (
    CountAggregate
    | BreakdownAggregate
    | SumAggregate
    | ModelAggregate
    | ProfileAggregate
    | NamingAggregate
    | UpdateAggregate
    | MarginalsAggregate
    | ProbeAggregate
)

__all__ = [
    "PROBE_MAX_LENGTH",
    "Aggregate",
    "BreakdownAggregate",
    "CountAggregate",
    "DesignEvidence",
    "MarginalsAggregate",
    "ModelAggregate",
    "NamingAggregate",
    "Persons",
    "PointEvidence",
    "ProbeAggregate",
    "ProfileAggregate",
    "RiskSetEvidence",
    "SumAggregate",
    "UpdateAggregate",
    "probe_vector",
]
