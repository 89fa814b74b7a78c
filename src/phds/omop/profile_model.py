"""The dataset profile a hospital publishes in the network catalogue, and its disclosure helpers.

Field names follow HealthDCAT-AP where it has an equivalent (JSON aliases in camelCase; namespace
``healthdcatap:`` unless said otherwise), see the HealthDCAT-AP specification,
https://healthdataeu.pages.code.europa.eu/healthdcat-ap/ (Dataset class):

- ``numberOfUniqueIndividuals``, ``numberOfRecords``, ``minTypicalAge``, ``maxTypicalAge``,
  ``hasCodingSystem``: HealthDCAT-AP properties of the same name;
- ``temporal`` with ``startDate``/``endDate``: ``dct:temporal`` with ``dcat:startDate``/``dcat:endDate``
  (DCAT-AP; DCAT 3 allows ``xsd:gYearMonth`` literals, which is what PHDS releases);
- ``title``, ``identifier``, ``description``, ``publisher``, ``version``: ``dct:title``,
  ``dct:identifier``, ``dct:description``, ``dct:publisher``, ``dcat:version``.

Every person or record count passes :func:`disclose`: zero stays zero, 1 to ``min_cell_count - 1``
becomes :class:`Suppressed` (JSON ``"<5"``), larger counts are rounded to ``round_to`` so that sums of
released cells cannot rebuild an exact total (DESIGN.md, disclosure defaults).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator
from pydantic.alias_generators import to_camel

PROFILE_VERSION = "1"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Suppressed(BaseModel):
    """A count between 1 and ``below - 1``, released only as ``"<below>"`` (e.g. ``"<5"``)."""

    model_config = ConfigDict(frozen=True)

    below: int = Field(ge=2)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            text = data.strip()
            if not text.startswith("<") or not text[1:].isdigit():
                raise ValueError(f"a suppressed count looks like '<5', not {data!r}")
            return {"below": int(text[1:])}
        return data

    @model_serializer
    def _to_text(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"<{self.below}"


#: A released count: an exact (rounded) integer, or a suppressed small count.
CellCount = Annotated[int | Suppressed, Field(union_mode="left_to_right")]


def round_half_up(n: int, base: int) -> int:
    """*n* rounded to the nearest multiple of *base* (halves up), never below *base* when *n* > 0."""
    if n <= 0 or base <= 1:
        return max(n, 0)
    return max(base, (n + base // 2) // base * base)


def disclose(n: int, min_cell_count: int, round_to: int) -> int | Suppressed:
    """The releasable form of a count: 0, :class:`Suppressed` below the minimum, else rounded."""
    if n <= 0:
        return 0
    if n < min_cell_count:
        return Suppressed(below=min_cell_count)
    return round_half_up(n, round_to)


class Disclosure(_Model):
    """The disclosure rules the profile was built under."""

    min_cell_count: int
    round_to: int
    note: str = (
        "counts of 1 to minCellCount-1 are shown as '<minCellCount'; other counts are rounded to roundTo; "
        "no raw minimum, maximum or single-patient date is released"
    )


class Temporal(_Model):
    """``dct:temporal``: the months that bound the bulk of the observation time (see ``method``)."""

    start_date: str = Field(description="dcat:startDate as YYYY-MM")
    end_date: str = Field(description="dcat:endDate as YYYY-MM")
    method: str


class AgeGroupCount(_Model):
    """Persons in one ICH E11 age group."""

    group: str
    label: str
    persons: CellCount


class AgeBandCount(_Model):
    """Persons in one age band of whole years; ``max_age`` None means open-ended (top-coded)."""

    label: str
    min_age: int
    max_age: int | None
    persons: CellCount


class SexCount(_Model):
    """Persons by sex, from ``person.gender_concept_id``."""

    sex: Literal["female", "male", "other", "unknown"]
    persons: CellCount


class DomainCount(_Model):
    """Records and distinct persons in one CDM event table."""

    domain: str
    table: str
    records: CellCount
    persons: CellCount


class ConceptCount(_Model):
    """One of the most frequent concepts of a domain; ``records`` is None (withheld) when the
    concept's persons are suppressed, since a "<5" would then understate the records."""

    concept_id: int
    concept_name: str | None
    vocabulary_id: str | None
    records: CellCount | None
    persons: CellCount


class DomainConcepts(_Model):
    """The most frequent concepts of one domain, by persons then records (concept 0 excluded)."""

    domain: str
    table: str
    field: str
    concepts: list[ConceptCount]


class DatasetProfile(_Model):
    """A hospital's CDM described for the network catalogue; no value in it identifies a patient."""

    profile_version: str = PROFILE_VERSION
    title: str | None = None
    identifier: str | None = None
    description: str | None = None
    publisher: str | None = None
    version: str | None = Field(default=None, description="source release date from cdm_source")
    cdm_version: str | None = None
    vocabulary_version: str | None = None
    number_of_unique_individuals: int | None = Field(
        description="persons, rounded; None when fewer than minCellCount"
    )
    number_of_records: int = Field(description="records in the event tables (eras excluded), rounded")
    min_typical_age: int | None
    max_typical_age: int | None
    typical_age_method: str
    temporal: Temporal | None
    age_reference: str
    age_groups: list[AgeGroupCount] = Field(description="persons by ICH E11 group at the age reference")
    age_groups_observed: list[AgeGroupCount] = Field(
        description="persons with observation time in each ICH E11 group (a person counts in several)"
    )
    age_bands: list[AgeBandCount]
    sex: list[SexCount]
    domains: list[DomainCount]
    top_concepts: list[DomainConcepts]
    has_coding_system: list[str] = Field(description="vocabulary_id of the concepts in the event tables")
    disclosure: Disclosure

    def to_json(self) -> str:
        """The catalogue JSON (camelCase HealthDCAT-AP names)."""
        return self.model_dump_json(by_alias=True, indent=2)


__all__ = [
    "PROFILE_VERSION",
    "AgeBandCount",
    "AgeGroupCount",
    "CellCount",
    "ConceptCount",
    "DatasetProfile",
    "Disclosure",
    "DomainConcepts",
    "DomainCount",
    "SexCount",
    "Suppressed",
    "Temporal",
    "disclose",
    "round_half_up",
]
