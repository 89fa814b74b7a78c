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

P = TypeVar("P", bound=BaseModel)

KnownConcepts = Callable[[set[int]], set[int]]
"""Given concept ids, those the hub's vocabulary knows."""


@dataclass(frozen=True)
class LocalStep:
    """What a node's local step produced: aggregates for the gate, and its own compute time."""

    aggregates: list[Aggregate]
    compute_seconds: float = 0.0


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
    dp_support: ClassVar[bool] = False
    """True when the local step can run under differential privacy (fixed grids, clipping bounds)."""

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

    @abc.abstractmethod
    def local(self, ctx: LocalContext, params: P) -> LocalStep:
        """Compute this round's aggregates from the hospital's data (``ctx.data``)."""

    @abc.abstractmethod
    def combine(
        self, params: P, round_no: int, state: Mapping[str, Any], released: Mapping[str, Mapping[str, Any]]
    ) -> Final | NextRound:
        """Combine the released payloads of the answering hospitals (hospital name → payload)."""


def check_privacy_options(analysis: Analysis[Any], *, dp: bool = False) -> None:
    """Refuse a study's privacy option its analysis cannot run under (checked at the hub, and again at
    every node)."""
    if dp and not analysis.dp_support:
        raise InputError(
            f"{analysis.name} has no differentially private version; remove the dp block or choose "
            "feasibility.count, stats.table, stats.mean_variance or survival.km",
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
