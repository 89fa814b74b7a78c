"""Wire models of the hub's vocabulary search: OMOP concepts and their descendants."""

from __future__ import annotations

from pydantic import Field

from phds.protocol.common import WireModel


class ConceptView(WireModel):
    """One OMOP concept (a row of CONCEPT): what a requester needs to pick it for a cohort."""

    id: int = Field(description="concept_id")
    name: str = Field(description="concept_name")
    domain: str = Field(description="domain_id, e.g. Condition, Drug, Measurement")
    vocabulary: str = Field(description="vocabulary_id, e.g. SNOMED, RxNorm, LOINC")
    concept_class: str = Field(description="concept_class_id, e.g. Clinical Finding, Ingredient")
    code: str = Field(description="concept_code in its vocabulary, e.g. the SNOMED code")
    standard: bool = Field(description="standard_concept = 'S': usable in a cohort's concept sets")


class DescendantView(ConceptView):
    """A concept below another in CONCEPT_ANCESTOR, with its distance in levels."""

    min_levels: int = Field(ge=0, description="min_levels_of_separation")
    max_levels: int = Field(ge=0, description="max_levels_of_separation")


class ConceptDescendants(WireModel):
    """A concept's descendants, nearest first; ``hierarchy_known`` is false when no vocabulary the hub
    holds has CONCEPT_ANCESTOR rows for it (then "include descendants" adds whatever each node's own
    vocabulary holds, which the hub cannot show)."""

    concept: ConceptView
    hierarchy_known: bool
    descendants: list[DescendantView]
    truncated: bool = Field(description="more descendants exist than were returned (raise limit)")
