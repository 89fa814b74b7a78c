"""The PHDS YAML short form for simple cohorts, compiled to Circe JSON (what ATLAS would export).

    name: Children 2-11 with asthma and salbutamol
    entry:                                  # index event
      condition: {concepts: [317009], descendants: true}
    require:                                # each must hold (one inclusion rule each)
      - drug: {concepts: [1154343], descendants: true}
        window: {start: -365, end: 365}     # days relative to index; omitted = any time
        min_count: 1
    exclude:                                # none of these may occur
      - condition: {concepts: [255573]}
    age: {min: 2, max: 11}                  # at index, in years (Circe: year of index - year of birth)
    sex: [female, male]
    observation_window: {prior: 0, post: 0}
    index: first                            # first (default): test only the earliest event; all: every event

The schema is documented with an example in ``docs/howto/cohorts.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from phds.cohorts.circe import CohortDefinition
from phds.errors import InputError

__all__ = ["YamlCohort", "compile_yaml", "parse_yaml_form"]

ConceptId = Annotated[StrictInt, Field(ge=0)]
Days = Annotated[StrictInt, Field(ge=-100_000, le=100_000)]

DOMAINS: dict[str, str] = {
    "condition": "ConditionOccurrence",
    "drug": "DrugExposure",
    "procedure": "ProcedureOccurrence",
    "measurement": "Measurement",
    "observation": "Observation",
    "visit": "VisitOccurrence",
    "device": "DeviceExposure",
    "condition_era": "ConditionEra",
    "drug_era": "DrugEra",
}
_WITH_VALUE = {"measurement", "observation"}
SEX_CONCEPTS = {"female": 8532, "male": 8507}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Concepts(_Strict):
    """A concept set: these concepts (with their descendants when asked), minus ``exclude``."""

    concepts: list[ConceptId] = Field(min_length=1)
    descendants: bool = False
    exclude: list[ConceptId] = Field(default_factory=list)


class ValueRange(_Strict):
    """An inclusive range of the numeric value (measurement or observation value_as_number)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ValueRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Window(_Strict):
    """Days relative to the index date (negative: before); a missing end is unbounded."""

    start: Days | None = None
    end: Days | None = None

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class Event(_Strict):
    """Exactly one domain key with its concepts; ``value`` only for measurement and observation."""

    condition: Concepts | None = None
    drug: Concepts | None = None
    procedure: Concepts | None = None
    measurement: Concepts | None = None
    observation: Concepts | None = None
    visit: Concepts | None = None
    device: Concepts | None = None
    condition_era: Concepts | None = None
    drug_era: Concepts | None = None
    value: ValueRange | None = None

    @model_validator(mode="after")
    def _one_domain(self) -> Event:
        given = [d for d in DOMAINS if getattr(self, d) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DOMAINS)} (got {', '.join(given) or 'none'})")
        if self.value is not None and given[0] not in _WITH_VALUE:
            raise ValueError(f"value applies to measurement or observation, not {given[0]}")
        return self

    @property
    def domain(self) -> str:
        return next(d for d in DOMAINS if getattr(self, d) is not None)

    @property
    def concepts(self) -> Concepts:
        result: Concepts = getattr(self, self.domain)
        return result


class Requirement(Event):
    """An event that must occur ``min_count`` to ``max_count`` times within ``window`` of the index."""

    window: Window = Field(default_factory=Window)
    min_count: StrictInt = Field(1, ge=0)
    max_count: StrictInt | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _counts(self) -> Requirement:
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError(f"max_count {self.max_count} is below min_count {self.min_count}")
        return self


class Exclusion(Event):
    """An event that must not occur within ``window`` of the index."""

    window: Window = Field(default_factory=Window)


class AgeRange(_Strict):
    """Age at index in whole years, inclusive."""

    min: Annotated[StrictInt, Field(ge=0, le=130)] | None = None
    max: Annotated[StrictInt, Field(ge=0, le=130)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> AgeRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ObservationWindow(_Strict):
    """Days of continuous observation required before and after the index date."""

    prior: StrictInt = Field(0, ge=0)
    post: StrictInt = Field(0, ge=0)


class YamlCohort(_Strict):
    """The YAML short form of a cohort."""

    name: str | None = Field(None, max_length=200)
    entry: Event
    require: list[Requirement] = Field(default_factory=list)
    exclude: list[Exclusion] = Field(default_factory=list)
    age: AgeRange | None = None
    sex: list[Literal["female", "male"]] | None = Field(None, min_length=1)
    observation_window: ObservationWindow = Field(default_factory=ObservationWindow)
    index: Literal["first", "all"] = "first"


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases: ``*ref`` could multiply a small document into a huge one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)


def parse_yaml_form(text: str, *, filename: str | None = None) -> CohortDefinition:
    """Parse the YAML short form into a checked Circe :class:`CohortDefinition`."""
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except RecursionError:
        raise InputError("YAML nested too deeply", file=filename) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"not valid YAML: {problem}", file=filename, line=line) from None
    if not isinstance(data, dict):
        raise InputError("expected a Circe JSON object or the YAML short form (a mapping)", file=filename)
    if "PrimaryCriteria" in data or "expression" in data:  # Circe JSON written as YAML
        from phds.cohorts.circe import definition_from_json

        return definition_from_json(data, filename=filename)
    try:
        form = YamlCohort.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(".[", "[")
        raise InputError(first["msg"], file=filename, field=where or "(root)") from None
    try:
        return CohortDefinition(kind="yaml", expression=compile_yaml(form), name=form.name)
    except InputError as exc:  # a compiled expression circepy refuses is a bug here, but say where
        raise InputError(exc.message, file=filename) from None


class _Sets:
    """Concept sets of the compiled expression, one per distinct :class:`Concepts`."""

    def __init__(self) -> None:
        self.sets: list[dict[str, Any]] = []
        self._ids: dict[tuple[Any, ...], int] = {}

    def id_for(self, concepts: Concepts) -> int:
        key = (tuple(concepts.concepts), concepts.descendants, tuple(concepts.exclude))
        if key not in self._ids:
            set_id = len(self.sets)
            self._ids[key] = set_id
            items = [_item(c, concepts.descendants, False) for c in dict.fromkeys(concepts.concepts)]
            items += [_item(c, concepts.descendants, True) for c in dict.fromkeys(concepts.exclude)]
            self.sets.append({"id": set_id, "name": f"concept set {set_id}", "expression": {"items": items}})
        return self._ids[key]


def _item(concept_id: int, descendants: bool, excluded: bool) -> dict[str, Any]:
    return {
        "concept": {"CONCEPT_ID": concept_id},
        "isExcluded": excluded,
        "includeDescendants": descendants,
        "includeMapped": False,
    }


def _criterion(event: Event, sets: _Sets) -> dict[str, Any]:
    body: dict[str, Any] = {"CodesetId": sets.id_for(event.concepts)}
    if event.value is not None:
        body["ValueAsNumber"] = _range(event.value.min, event.value.max)
    return {DOMAINS[event.domain]: body}


def _range(low: float | None, high: float | None) -> dict[str, Any]:
    if low is not None and high is not None:
        return {"Op": "bt", "Value": low, "Extent": high}
    if low is not None:
        return {"Op": "gte", "Value": low}
    return {"Op": "lte", "Value": high}


def _bound(days: int | None, unbounded_coeff: int) -> dict[str, Any]:
    if days is None:
        return {"Coeff": unbounded_coeff}
    return {"Days": abs(days), "Coeff": -1 if days < 0 else 1}


def _correlated(
    event: Event, window: Window, occurrence_type: int, count: int, sets: _Sets
) -> dict[str, Any]:
    return {
        "Criteria": _criterion(event, sets),
        "StartWindow": {"Start": _bound(window.start, -1), "End": _bound(window.end, 1)},
        "Occurrence": {"Type": occurrence_type, "Count": count},
    }


def _rule(name: str, criteria: list[dict[str, Any]], demographic: list[dict[str, Any]]) -> dict[str, Any]:
    group = {"Type": "ALL", "CriteriaList": criteria, "DemographicCriteriaList": demographic, "Groups": []}
    return {"name": name, "expression": group}


def compile_yaml(form: YamlCohort) -> dict[str, Any]:
    """The Circe cohort expression (ATLAS JSON shape) of a YAML short-form cohort."""
    sets = _Sets()
    limit = {"Type": "First" if form.index == "first" else "All"}
    primary = {
        "CriteriaList": [_criterion(form.entry, sets)],
        "ObservationWindow": {
            "PriorDays": form.observation_window.prior,
            "PostDays": form.observation_window.post,
        },
        "PrimaryCriteriaLimit": limit,
    }
    rules: list[dict[str, Any]] = []
    for i, req in enumerate(form.require):
        criteria = [_correlated(req, req.window, 2, req.min_count, sets)]  # 2: at least
        if req.max_count is not None:
            criteria.append(_correlated(req, req.window, 1, req.max_count, sets))  # 1: at most
        rules.append(_rule(f"require[{i}]: {req.domain}", criteria, []))
    for i, exc in enumerate(form.exclude):
        rules.append(_rule(f"exclude[{i}]: {exc.domain}", [_correlated(exc, exc.window, 0, 0, sets)], []))
    demographic: dict[str, Any] = {}
    if form.age is not None:
        demographic["Age"] = _range(form.age.min, form.age.max)
    if form.sex is not None:
        demographic["Gender"] = [
            {
                "CONCEPT_ID": SEX_CONCEPTS[s],
                "CONCEPT_NAME": s.upper(),
                "DOMAIN_ID": "Gender",
                "VOCABULARY_ID": "Gender",
            }
            for s in dict.fromkeys(form.sex)
        ]
    if demographic:
        rules.append(_rule("age and sex at index", [], [demographic]))
    expression: dict[str, Any] = {
        "ConceptSets": sets.sets,
        "PrimaryCriteria": primary,
        "QualifiedLimit": limit,
        "ExpressionLimit": limit,
        "InclusionRules": rules,
        "CensoringCriteria": [],
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
        "cdmVersionRange": ">=5.0.0",
    }
    if form.name is not None:
        expression["Title"] = form.name
    return expression
