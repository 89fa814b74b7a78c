"""Covariates of an OMOP analysis table: what a requester may declare, checked at the hub.

A covariate names one column (two for ``time_to_event``) of the table built at each node, one row per
cohort entry (see :mod:`phds.analyses.omop_table` and docs/howto/analysis-tables.md). Kinds, in the
spirit of OHDSI FeatureExtraction's covariate settings:

=================  =============================================================================
``age``            age at the index date in ``days``, ``months``, ``years`` (completed, calendar
                   rule of :mod:`phds.paediatrics.age`) or ``decimal_years`` (days / 365.25)
``sex``            ``coding``: ``male`` (1 male, 0 female), ``female`` (1 female, 0 male), or
                   ``label`` ("male"/"female"/"other"); other genders are NULL in 0/1 codings
``ich_e11_group``  the ICH E11 age group at the index date (a label)
``condition``,     0/1 (``value: any``) or a count (``value: count``) of events whose start date
``drug``, …        lies in ``window`` (days from the index date, both ends included)
``measurement``    the ``latest`` or ``earliest`` value in the window, or the UK-WHO ``sds`` of the
                   latest one (``growth``: weight, height, bmi, ofc)
``time_to_event``  ``<name>_time`` (days from the index date) and ``<name>_event`` (0/1)
=================  =============================================================================

Errors are located like any pydantic error, e.g. ``covariates.2.window`` (no kind tag in the path).
:func:`check_table_at_hub` adds the checks a schema cannot make: the cohort parses, and every concept id
is in the hub's vocabulary.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from phds.cohorts import CohortDefinition, parse_cohort, validate_concepts
from phds.errors import InputError
from phds.omop.vocabulary import concepts as c
from phds.protocol.canonical import canonical_json

if TYPE_CHECKING:
    from phds.analyses.base import KnownConcepts
    from phds.analyses.tables import TableSpec

__all__ = [
    "EVENT_KINDS",
    "NAME_PATTERN",
    "RESERVED_COLUMNS",
    "AgeCovariate",
    "AgeGroupCovariate",
    "ConceptSet",
    "Covariate",
    "CovariateList",
    "EventCovariate",
    "MeasurementCovariate",
    "SexCovariate",
    "TimeAtRisk",
    "TimeToEventCovariate",
    "VisitFilter",
    "Window",
    "check_table_at_hub",
    "cohort_definition",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: Columns every OMOP analysis table has besides the covariates (the gate needs the persons).
RESERVED_COLUMNS = frozenset({"subject_id"})
#: Growth measurements with a UK-WHO reference (as phds.paediatrics.growth.Measurement).
Measurement = Literal["weight", "height", "bmi", "ofc"]
EventKind = Literal["condition", "drug", "procedure", "observation", "device", "visit"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]
#: The unit a growth SDS needs (UCUM concepts); measurements in other units are not used.
GROWTH_UNITS: dict[str, int] = {
    "weight": c.UNIT_KG,
    "height": c.UNIT_CM,
    "bmi": c.UNIT_KG_PER_M2,
    "ofc": c.UNIT_CM,
}
MAX_CONCEPTS = 5_000
MAX_COVARIATES = 200

ConceptId = Annotated[StrictInt, Field(ge=1, le=2_147_483_647)]
Days = Annotated[StrictInt, Field(ge=-36_525, le=36_525)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConceptSet(_Strict):
    """Concept ids (integers), with every descendant in ``concept_ancestor`` when ``descendants``."""

    concepts: list[ConceptId] = Field(min_length=1, max_length=MAX_CONCEPTS)
    descendants: StrictBool = False


class Window(_Strict):
    """Days relative to the index date, both ends included; a missing bound is open."""

    start: Days | None = None
    end: Days | None = None

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class VisitFilter(_Strict):
    """Keep only events recorded in a visit of these ``concepts`` and/or carrying a ``condition``."""

    concepts: list[ConceptId] | None = Field(default=None, min_length=1, max_length=100)
    condition: ConceptSet | None = None

    @model_validator(mode="after")
    def _some(self) -> VisitFilter:
        if self.concepts is None and self.condition is None:
            raise ValueError("give visit concepts, a condition, or both")
        return self


class _Named(_Strict):
    name: str = Field(pattern=NAME_PATTERN, min_length=1, max_length=56)

    def columns(self) -> list[str]:
        """The table columns this covariate makes."""
        return [self.name]

    def concept_ids(self) -> set[int]:
        """Every concept id it refers to (for the hub's vocabulary check)."""
        return set()


def _visit_ids(visit: VisitFilter | None) -> set[int]:
    if visit is None:
        return set()
    return set(visit.concepts or ()) | set(visit.condition.concepts if visit.condition else ())


class AgeCovariate(_Named):
    """Age at the index date."""

    kind: Literal["age"]
    unit: Literal["days", "months", "years", "decimal_years"] = "years"


class SexCovariate(_Named):
    """Sex from ``person.gender_concept_id`` (8507 male, 8532 female)."""

    kind: Literal["sex"]
    coding: Literal["male", "female", "label"] = "male"


class AgeGroupCovariate(_Named):
    """ICH E11 age group at the index date (term newborns: gestation is not in the CDM person)."""

    kind: Literal["ich_e11_group"]


class EventCovariate(_Named, ConceptSet):
    """Whether (or how often) an event of one domain starts in the window around the index."""

    kind: EventKind
    window: Window
    visit: VisitFilter | None = None
    value: Literal["any", "count"] = "any"

    def concept_ids(self) -> set[int]:
        return set(self.concepts) | _visit_ids(self.visit)


class MeasurementCovariate(_Named, ConceptSet):
    """A measurement value in the window: latest, earliest, or the growth SDS of the latest."""

    kind: Literal["measurement"]
    window: Window
    visit: VisitFilter | None = None
    value: Literal["latest", "earliest", "sds"] = "latest"
    growth: Measurement | None = Field(default=None, validate_default=True)
    units: list[ConceptId] | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("growth")
    @classmethod
    def _growth(cls, growth: Measurement | None, info: ValidationInfo) -> Measurement | None:
        if (info.data.get("value") == "sds") != (growth is not None):
            raise ValueError("value 'sds' needs a growth measurement (weight, height, bmi, ofc), and only it")
        return growth

    def unit_ids(self) -> list[int] | None:
        """Units kept: as given, else the growth reference unit for an SDS, else any."""
        if self.units is not None:
            return list(self.units)
        return [GROWTH_UNITS[self.growth]] if self.growth is not None else None

    def concept_ids(self) -> set[int]:
        return set(self.concepts) | _visit_ids(self.visit) | set(self.units or ())


class TimeAtRisk(_Strict):
    """Days from the index date: risk starts at ``start``; ends at ``end`` (open: end of observation)."""

    start: Days = 0
    end: Days | None = None

    @model_validator(mode="after")
    def _order(self) -> TimeAtRisk:
        if self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class TimeToEventCovariate(_Named):
    """Days to the first event in the time at risk, censored at the end of observation (and death)."""

    kind: Literal["time_to_event"]
    domain: Literal[EventKind, "measurement", "death"]
    concepts: list[ConceptId] | None = Field(
        default=None, min_length=1, max_length=MAX_CONCEPTS, validate_default=True
    )
    descendants: StrictBool = False
    visit: VisitFilter | None = Field(default=None, validate_default=True)
    time_at_risk: TimeAtRisk = TimeAtRisk()
    censor_at_death: StrictBool = True

    @field_validator("concepts")
    @classmethod
    def _event(cls, concepts: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if (info.data.get("domain") == "death") != (concepts is None):
            raise ValueError("name the event concepts, except for the domain 'death' (which has none)")
        return concepts

    @field_validator("visit")
    @classmethod
    def _visit(cls, visit: VisitFilter | None, info: ValidationInfo) -> VisitFilter | None:
        if info.data.get("domain") == "death" and visit is not None:
            raise ValueError("a death has no visit")
        return visit

    @property
    def event(self) -> ConceptSet | None:
        """The event concept set (None for death)."""
        return (
            None
            if self.concepts is None
            else ConceptSet(concepts=self.concepts, descendants=self.descendants)
        )

    def columns(self) -> list[str]:
        return [f"{self.name}_time", f"{self.name}_event"]

    def concept_ids(self) -> set[int]:
        return set(self.concepts or ()) | _visit_ids(self.visit)


CovariateModel = (
    AgeCovariate
    | SexCovariate
    | AgeGroupCovariate
    | EventCovariate
    | MeasurementCovariate
    | TimeToEventCovariate
)
_BY_KIND: dict[str, type[_Named]] = {
    "age": AgeCovariate,
    "sex": SexCovariate,
    "ich_e11_group": AgeGroupCovariate,
    "measurement": MeasurementCovariate,
    "time_to_event": TimeToEventCovariate,
    **dict.fromkeys(EVENT_KINDS, EventCovariate),
}


class _Kind(BaseModel):
    kind: Literal["age", "sex", "ich_e11_group", EventKind, "measurement", "time_to_event"]


def _pick(value: Any) -> Any:
    """Validate one covariate by its ``kind``; error paths stay ``[i].field`` (no union tag)."""
    if isinstance(value, _Named):
        return value
    if not isinstance(value, dict):
        raise ValueError("a covariate is an object with a name and a kind")
    kind = _Kind.model_validate({"kind": value.get("kind")}).kind
    return _BY_KIND[kind].model_validate(value)


def _unique(covariates: list[Any]) -> list[Any]:
    """Each column is made once and none is reserved; the error points at the covariate's name."""
    seen: dict[str, int] = {}
    errors: list[InitErrorDetails] = []
    for i, covariate in enumerate(covariates):
        for column in covariate.columns():
            if column in RESERVED_COLUMNS:
                message = f"{column!r} is reserved for the table's person ids"
            elif column in seen:
                message = f"column {column!r} is already made by covariates[{seen[column]}]"
            else:
                seen[column] = i
                continue
            error = PydanticCustomError("covariate_name", message)
            errors.append(InitErrorDetails(type=error, loc=(i, "name"), input=covariate.name))
    if errors:
        raise ValidationError.from_exception_data("covariates", errors)
    return covariates


Covariate = Annotated[CovariateModel, BeforeValidator(_pick)]
CovariateList = Annotated[list[Covariate], Field(max_length=MAX_COVARIATES), AfterValidator(_unique)]


def cohort_definition(spec: TableSpec) -> CohortDefinition:
    """The spec's checked cohort: Circe JSON or YAML text, a Circe object, or a YAML-form object."""
    if spec.cohort is None:
        raise InputError("this table is a dataset, not a cohort", field="cohort")
    if isinstance(spec.cohort, str):
        return _parse(spec.cohort, False)
    circe = "PrimaryCriteria" in spec.cohort or "expression" in spec.cohort
    return _parse(canonical_json(spec.cohort), not circe)


@lru_cache(maxsize=64)
def _parse(text: str, yaml_form: bool) -> CohortDefinition:
    if yaml_form:  # a YAML-form mapping sent as JSON: JSON is YAML
        from phds.cohorts.yaml_form import parse_yaml_form

        return parse_yaml_form(text)
    return parse_cohort(text)


def _bare(exc: InputError) -> str:
    prefix = f"field {exc.field}: " if exc.field else ""
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message


def check_table_at_hub(
    spec: TableSpec, known_concepts: KnownConcepts | None = None, field: str = "analysis.params.table"
) -> None:
    """Refuse a cohort table the nodes could not build, or whose concepts the hub's vocabulary lacks.

    Call from an analysis' ``check_at_hub``; errors name ``<field>.cohort.…`` or ``<field>.covariates.<i>``.
    """
    if spec.cohort is None:
        return
    try:
        definition = cohort_definition(spec)
    except InputError as exc:
        where = f"{field}.cohort" + (f".{exc.field}" if exc.field and exc.field != "(root)" else "")
        raise InputError(_bare(exc), field=where) from exc
    if known_concepts is None:
        return
    try:
        validate_concepts(definition, known_concepts)
    except InputError as exc:
        raise InputError(_bare(exc), field=f"{field}.cohort") from exc
    for i, covariate in enumerate(spec.covariates):
        wanted = covariate.concept_ids()
        unknown = sorted(wanted - set(known_concepts(wanted))) if wanted else []
        if unknown:
            shown = ", ".join(map(str, unknown[:20])) + (" …" if len(unknown) > 20 else "")
            raise InputError(f"unknown concept id(s): {shown}", field=f"{field}.covariates.{i}")
