"""Wire models of what a node releases (the gate's payload) and of network totals.

A node's answer to a task carries one :class:`ReleasePayload`: for each aggregate the analysis declared,
one released value (a count, a breakdown, sums or model statistics), plus the gate's notes saying what it
suppressed or withheld. The same models are read by the hub's analyses (``combine``), by the SDK and by
``phds study verify``, so there is one parser of released values, this one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, model_validator

from phds.protocol.common import WireModel
from phds.protocol.privacy import DpBudget, DpStatement

SuppressionKind = Literal["small", "complementary", "withheld"]


def _display(value: int | None, suppressed: bool, threshold: int, kind: str | None, dp: Any = None) -> str:
    if dp is not None:
        half = dp["ci95"] if isinstance(dp, dict) else dp.ci95
        return f"{value} ± {half:.0f}"
    if not suppressed:
        return str(value)
    if kind == "small":
        return f"<{threshold}"
    if kind == "complementary":
        return f"≥{threshold}"
    return "suppressed"


class ReleasedCount(WireModel):
    """A count as it left a node: exact, or suppressed with the interval a recipient can deduce.

    ``kind`` says why it is suppressed: ``small`` (below the threshold, shown ``"<5"``), ``complementary``
    (hidden so a small cell cannot be recovered by subtraction, ``"≥5"``) or ``withheld`` (the whole
    breakdown hidden). ``lower``/``upper`` are what a recipient can deduce anyway. A suppressed count
    never carries its value.

    Under differential privacy (``dp`` set) ``value`` is the noisy count and ``lower``/``upper`` its 95%
    interval (never below 0); such a count is never suppressed.
    """

    type: Literal["count"] = "count"
    value: int | None
    suppressed: bool
    threshold: int
    lower: int
    upper: int
    kind: SuppressionKind | None = None
    display: str = ""
    dp: DpStatement | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_display(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("display"):
            data = dict(data)
            data["display"] = _display(
                data.get("value"),
                bool(data.get("suppressed")),
                int(data.get("threshold", 0)),
                data.get("kind"),
                data.get("dp"),
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ReleasedCount:
        if self.suppressed and self.value is not None:
            raise ValueError("a suppressed count carries no value")
        if self.dp is not None:
            if self.suppressed or self.value is None or not self.lower <= self.value <= self.upper:
                raise ValueError("a DP count has a value inside its interval lower..upper")
            return self
        if not self.suppressed and (self.value is None or not self.lower == self.value == self.upper):
            raise ValueError("an exact count has value = lower = upper")
        return self

    @classmethod
    def exact(cls, value: int, threshold: int) -> ReleasedCount:
        return cls(value=value, suppressed=False, threshold=threshold, lower=value, upper=value)

    def __str__(self) -> str:
        return self.display


class ReleasedBreakdown(WireModel):
    """A protected partition: its total and its cells, in the grid's order."""

    type: Literal["breakdown"] = "breakdown"
    total: ReleasedCount
    cells: dict[str, ReleasedCount]


class ReleasedSums(WireModel):
    """Sums over n persons (``values`` is None when the statistics were withheld)."""

    type: Literal["sums"] = "sums"
    n: ReleasedCount
    values: dict[str, float] | None
    dp: dict[str, DpStatement] | None = None  # per sum, under differential privacy


class ReleasedModel(WireModel):
    """Model statistics over ``n_obs`` rows with ``n_params`` parameters."""

    type: Literal["model"] = "model"
    n_obs: ReleasedCount
    n_params: int
    values: dict[str, Any]


class ReleasedProfile(WireModel):
    """A dataset profile as published in the catalogue."""

    type: Literal["profile"] = "profile"
    profile: dict[str, Any]


class ReleasedNaming(WireModel):
    """A hospital's naming consent for a benchmarking result, as its gate read it from the node's policy:
    ``allow_names`` (it may be named to every requester, if all hospitals allow) and ``requester_is_own``
    (the requesting organisation is one this hospital belongs to, so it is named to that requester)."""

    type: Literal["naming"] = "naming"
    allow_names: bool
    requester_is_own: bool


class NoisyMarginal(WireModel):
    """One noisy marginal: the counts of every cell of *clique*'s columns (row-major), with the noise's
    standard deviation."""

    clique: list[str]
    values: list[float]
    stddev: float = Field(gt=0)


class MarginalColumn(WireModel):
    """A discretised column: its cell labels in domain order, and the cuts of a numeric column."""

    name: str
    labels: list[str]
    cuts: list[float] | None = None


class ReleasedMarginals(WireModel):
    """A DP synthetic-data generator's measurements (MST): noisy marginals, never exact ones.

    ``dp`` is required: the gate has no exact release of marginals, and the wire model refuses one.
    """

    type: Literal["marginals"] = "marginals"
    algorithm: str
    columns: list[MarginalColumn]
    marginals: list[NoisyMarginal]
    dp: DpStatement


class ReleasedProbe(WireModel):
    """A platform probe's numbers (``system.noop`` with ``vector_length``): drawn by the gate from the
    public seed it names, never from data (:class:`~phds.privacy.aggregates.ProbeAggregate`)."""

    type: Literal["probe"] = "probe"
    seed: str
    values: list[float]


ReleasedValue = Annotated[
    ReleasedCount
    | ReleasedBreakdown
    | ReleasedSums
    | ReleasedModel
    | ReleasedProfile
    | ReleasedNaming
    | ReleasedMarginals
    | ReleasedProbe,
    Field(discriminator="type"),
]


class GateNote(WireModel):
    """Something the gate changed: ``suppressed`` or ``withheld``, with the reason (never a count)."""

    aggregate: str
    action: str
    reason: str


class ReleasePayload(WireModel):
    """Everything one node released for one task, identical to its audited ``value_released`` entry."""

    analysis: str
    min_cell_count: int
    values: dict[str, ReleasedValue]
    notes: list[GateNote] = Field(default_factory=list)
    budget: list[DpBudget] | None = None  # under DP: the requester's remaining budget per dataset

    def count(self, name: str) -> ReleasedCount:
        return _typed(self, name, ReleasedCount)

    def breakdown(self, name: str) -> ReleasedBreakdown:
        return _typed(self, name, ReleasedBreakdown)

    def sums(self, name: str) -> ReleasedSums:
        return _typed(self, name, ReleasedSums)

    def model(self, name: str) -> ReleasedModel:
        return _typed(self, name, ReleasedModel)

    def naming(self, name: str) -> ReleasedNaming:
        return _typed(self, name, ReleasedNaming)

    def probe(self, name: str) -> ReleasedProbe:
        return _typed(self, name, ReleasedProbe)


V = TypeVar("V", ReleasedCount, ReleasedBreakdown, ReleasedSums, ReleasedModel, ReleasedNaming, ReleasedProbe)


def _typed(payload: ReleasePayload, name: str, kind: type[V]) -> V:
    from phds.errors import InputError

    value = payload.values.get(name)
    if not isinstance(value, kind):
        raise InputError(f"the released payload has no {kind.__name__} {name!r}", field="payload.values")
    return value


class NetworkTotal(WireModel):
    """A sum over hospitals: exact when no contribution was suppressed, otherwise a closed interval.

    With differentially private contributions, ``estimate`` is the sum of the noisy values and
    ``lower``..``upper`` its 95% interval (``ci95`` its half-width).
    """

    lower: int
    upper: int
    suppressed_contributions: int = 0
    exact: bool = True
    display: str = ""
    estimate: int | None = None
    ci95: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            exact = int(data.get("suppressed_contributions", 0)) == 0 and data["lower"] == data["upper"]
            data.setdefault("exact", exact and data.get("estimate") is None)
            if not data.get("display"):
                if data.get("estimate") is not None:
                    data["display"] = f"{data['estimate']} ± {float(data.get('ci95') or 0):.0f}"
                elif data["exact"]:
                    data["display"] = str(data["lower"])
                else:
                    data["display"] = f"{data['lower']}–{data['upper']}"
        return data

    def __str__(self) -> str:
        return self.display


__all__ = [
    "GateNote",
    "NetworkTotal",
    "ReleasePayload",
    "ReleasedBreakdown",
    "ReleasedCount",
    "ReleasedModel",
    "ReleasedProbe",
    "ReleasedProfile",
    "ReleasedSums",
    "ReleasedValue",
    "SuppressionKind",
]
