"""The analysis contract (DESIGN.md, "Analysis contract").

An analysis has a stable registry name and version and a pydantic ``Params`` model whose validation
errors are the requester's error messages. Its :meth:`Analysis.local` step runs at a node with a
:class:`~phds.analyses.context.LocalContext` and returns only typed aggregates
(:mod:`phds.privacy.aggregates`), which the node's disclosure gate releases or refuses; its
:meth:`Analysis.combine` step runs on the hub's study runner with the released payloads
(:class:`~phds.protocol.releases.ReleasePayload` as JSON) and returns either the :class:`Final` result or
the state of the :class:`NextRound`. :meth:`Analysis.max_rounds` is the most rounds a node answers for
one study; the node enforces it from its own memory, not from the round number the hub sends.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from phds.analyses.context import LocalContext
from phds.errors import InputError
from phds.privacy.aggregates import Aggregate
from phds.protocol.releases import ReleasePayload
from phds.protocol.studies import ServiceType

P = TypeVar("P", bound=BaseModel)

KnownConcepts = Callable[[set[int]], set[int]]
"""Given concept ids, those the hub's vocabulary knows."""


@dataclass(frozen=True)
class LocalStep:
    """What a node's local step produced: aggregates for the gate, and its own compute time."""

    aggregates: list[Aggregate]
    compute_seconds: float = 0.0


@dataclass(frozen=True)
class SecureLayout:
    """What one round's secure sum holds: named blocks of fixed lengths, and their fixed-point encoding.

    Hub and nodes derive it from the parameters and the round state alone (never from data), so every
    participant masks a vector of the same length and the hub can fix the session before any node
    answers. ``scale`` is the fixed-point scale (1 for integer counts, which are then exact) and ``clip``
    the largest absolute value an entry may have; a node refuses a value beyond it rather than clip it.
    """

    blocks: tuple[tuple[str, int], ...]
    scale: int = 1
    clip: float | None = None

    @property
    def length(self) -> int:
        return sum(size for _, size in self.blocks)

    def flatten(self, named: Mapping[str, Any]) -> list[float]:
        """The blocks of *named* in layout order; a missing block or a wrong length is an error."""
        import numpy as np

        out: list[float] = []
        for name, size in self.blocks:
            if name not in named:
                raise InputError(f"the secure sum has no block {name!r}", field="secure_aggregation")
            block = np.asarray(named[name], dtype=float).ravel()
            if block.size != size:
                raise InputError(
                    f"block {name!r} has {block.size} values, the layout {size}", field="secure_aggregation"
                )
            if self.clip is not None and block.size and float(np.max(np.abs(block))) > self.clip:
                raise InputError(
                    f"block {name!r} exceeds the secure-aggregation range ±{self.clip:g}",
                    field="secure_aggregation",
                )
            out.extend(float(v) for v in block)
        return out

    def unflatten(self, vector: Any) -> dict[str, Any]:
        """The summed vector as its named blocks (numpy arrays)."""
        import numpy as np

        values = np.asarray(vector, dtype=float).ravel()
        if values.size != self.length:
            raise InputError(
                f"the sum has {values.size} values, the layout {self.length}", field="secure_aggregation"
            )
        out: dict[str, Any] = {}
        start = 0
        for name, size in self.blocks:
            out[name] = values[start : start + size]
            start += size
        return out


@dataclass(frozen=True)
class NextRound:
    """Ask the answering hospitals for another round with this state."""

    state: dict[str, Any]


@dataclass(frozen=True)
class Final:
    """The study's result, made only of what the gates released (and sums of it)."""

    result: dict[str, Any]
    notes: list[str] = field(default_factory=list)


class Analysis(abc.ABC, Generic[P]):
    """A vetted analysis; subclasses set the class variables and implement the two steps."""

    name: ClassVar[str]
    version: ClassVar[str]
    title: ClassVar[str]
    data_kind: ClassVar[Literal["omop", "tabular", "none"]]
    params_model: type[P]
    service_types: ClassVar[tuple[ServiceType, ...]] = ()
    """The service types a study of this analysis is usually bought as (a hint for forms); empty: any."""
    dp_support: ClassVar[bool] = False
    """True when the local step can run under differential privacy (fixed grids, clipping bounds)."""
    dp_secure_support: ClassVar[bool] = False
    """True when its secure sum can carry distributed DP noise (each node a share)."""
    secure_aggregation_support: ClassVar[bool] = False
    """True when the analysis implements the three secure-sum hooks below (its combine is a sum)."""
    pseudonymises_hospitals: ClassVar[bool] = False
    """True when the result names hospitals by pseudonym (benchmarking): the hub then withholds the
    study's per-hospital signed releases from the API unless the result says every hospital allowed names."""

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        """Validate requester parameters; errors name the field as ``analysis.params.<path>``."""
        try:
            return self.params_model.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            field_name = f"analysis.params.{path}" if path else "analysis.params"
            raise InputError(first["msg"], field=field_name) from exc

    def check_at_hub(self, params: P, known_concepts: KnownConcepts | None = None) -> None:
        """Checks the hub runs before any node sees the study (override to add some)."""

    def max_rounds(self, params: P) -> int:
        """The most rounds one study of this analysis may take at a node (one-round analyses: 1)."""
        return 1

    def round_deadline_seconds(self, params: P) -> float | None:
        """How long the hub waits for a round's answers before it skips the hospitals that have not
        answered (the runner's sweep marks them timed out and combines the others); None: no per-round
        deadline, only the study's."""
        return None

    def dp_rounds(self, params: P) -> int:
        """The rounds a study's DP loss is split over (the gate spends loss / dp_rounds per round)."""
        return self.max_rounds(params)

    @abc.abstractmethod
    def local(self, ctx: LocalContext, params: P) -> LocalStep:
        """Compute this round's aggregates from the hospital's data (``ctx.data``)."""

    @abc.abstractmethod
    def combine(
        self, params: P, round_no: int, state: Mapping[str, Any], released: Mapping[str, Mapping[str, Any]]
    ) -> Final | NextRound:
        """Combine the released payloads of the answering hospitals (hospital name → payload)."""

    # -- secure aggregation (phds.secagg): for analyses whose combine is a sum ----------------------

    def secure_layout(self, params: P, round_no: int, state: Mapping[str, Any]) -> SecureLayout | None:
        """The round's secure sum, from parameters and state alone; None releases the round in the clear
        (e.g. a design round that only fixes level names)."""
        raise NotImplementedError(f"{self.name} has no secure aggregation")

    def secure_summands(
        self, params: P, round_no: int, state: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """At the node: the blocks to sum, computed from its gate-released *payload* (never from data)."""
        raise NotImplementedError(f"{self.name} has no secure aggregation")

    def combine_secure(
        self,
        params: P,
        round_no: int,
        state: Mapping[str, Any],
        sums: Mapping[str, Any],
        contributors: list[str],
    ) -> Final | NextRound:
        """At the hub: what :meth:`combine` would return, from the network sums of the blocks alone."""
        raise NotImplementedError(f"{self.name} has no secure aggregation")


def check_privacy_options(
    analysis: Analysis[Any], *, dp: bool = False, secure_aggregation: bool = False
) -> None:
    """Refuse a study's privacy option its analysis cannot run under (checked at the hub, and again at
    every node)."""
    if secure_aggregation and not analysis.secure_aggregation_support:
        raise InputError(
            f"{analysis.name} cannot run under secure aggregation (its combine is not a sum); remove "
            "secure_aggregation or choose feasibility.count, stats.glm or survival.cox",
            field="secure_aggregation",
        )
    if dp and secure_aggregation and not analysis.dp_secure_support:
        raise InputError(
            f"{analysis.name} has no distributed DP under secure aggregation; use one of the two, or "
            "feasibility.count",
            field="dp",
        )
    if dp and not analysis.dp_support:
        raise InputError(
            f"{analysis.name} has no differentially private version; remove the dp block or choose "
            "feasibility.count, stats.table, stats.mean_variance, stats.summary or survival.km",
            field="dp",
        )


def released_budgets(released: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each hospital's remaining differential-privacy budget, as its signed release states it."""
    return {h: list(p["budget"]) for h, p in sorted(released.items()) if p.get("budget")}


def released_values(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The ``values`` of a gate payload, checked against :class:`~phds.protocol.releases.ReleasePayload`."""
    try:
        checked = ReleasePayload.model_validate(payload)
    except ValueError as exc:
        raise InputError(f"a released payload is malformed: {exc}", field="payload") from None
    return {name: value.model_dump(mode="json") for name, value in checked.values.items()}


def released(payload: Mapping[str, Any]) -> ReleasePayload:
    """A gate payload as its typed wire model."""
    try:
        return ReleasePayload.model_validate(payload)
    except ValueError as exc:
        raise InputError(f"a released payload is malformed: {exc}", field="payload") from None
