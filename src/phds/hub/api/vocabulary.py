"""``/api/v1/vocabulary``: find OMOP concepts by name, code or id, and their descendants.

Any signed-in person may search (requesters build cohorts with it; stewards and admins read studies).
The hub searches the paediatric subset shipped with PHDS and, when ``PHDS_HUB_VOCABULARY_URL`` is set,
the operator's full vocabulary (:class:`~phds.hub.vocabulary.HubVocabulary`): the same concepts it
checks cohorts against at submission, so a concept found here is one the hub accepts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from phds.errors import InputError
from phds.hub.auth import AnyUser, Runner
from phds.hub.vocabulary import HubVocabulary
from phds.protocol.vocabulary import ConceptDescendants, ConceptView

router = APIRouter(prefix="/vocabulary", tags=["vocabulary"])

MAX_LOOKUP_IDS = 200


def hub_vocabulary(runner: Runner) -> HubVocabulary:
    """The vocabulary the runner checks cohorts with (one store connection per hub)."""
    return runner.vocabulary


Vocabulary = Annotated[HubVocabulary, Depends(hub_vocabulary)]


@router.get("/concepts", response_model=list[ConceptView])
def search_concepts(
    _caller: AnyUser,
    vocabulary: Vocabulary,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of the name, or an exact code or concept id")
    ] = None,
    domain: Annotated[
        str | None, Query(max_length=40, description="Only this domain_id (Condition, Drug, …)")
    ] = None,
    standard: Annotated[bool, Query(description="Only standard concepts")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    id: Annotated[
        list[int] | None,
        Query(max_length=MAX_LOOKUP_IDS, description="Look these concept ids up instead of searching"),
    ] = None,
) -> list[ConceptView]:
    """Concepts matching ``q`` (best matches first), or, with ``id``, the known ones among those ids."""
    if id:
        if q:
            raise InputError("give q to search or id to look concepts up, not both", field="id")
        return vocabulary.lookup(id)
    return vocabulary.search(q or "", domain=domain or None, standard_only=standard, limit=limit)


@router.get("/concepts/{concept_id}", response_model=ConceptView)
def get_concept(concept_id: int, _caller: AnyUser, vocabulary: Vocabulary) -> ConceptView:
    """One concept; 404 when no vocabulary the hub holds has it."""
    return vocabulary.concept(concept_id)


@router.get("/concepts/{concept_id}/descendants", response_model=ConceptDescendants)
def concept_descendants(
    concept_id: int,
    _caller: AnyUser,
    vocabulary: Vocabulary,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ConceptDescendants:
    """The concept's descendants in CONCEPT_ANCESTOR, nearest first (what "include descendants" adds)."""
    return vocabulary.descendants(concept_id, limit=limit)
