"""The concepts the hub knows: to refuse cohorts naming unknown concept ids before any node runs them,
and to let requesters find concepts by name or code (``/api/v1/vocabulary``).

The paediatric vocabulary subset shipped with PHDS is always known; an operator adds a full vocabulary
(e.g. an Athena download loaded with ``phds omop load``) with ``PHDS_HUB_VOCABULARY_URL``. A search
reads both, the subset first; descendants come from CONCEPT_ANCESTOR of both (the subset's is the
verified hierarchy of :mod:`phds.omop.vocabulary.hierarchy`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from functools import cache
from typing import Any

from phds.errors import NotFound
from phds.omop.store import CdmStore, open_store
from phds.omop.vocabulary.concepts import REGISTRY, Concept
from phds.omop.vocabulary.hierarchy import ancestor_rows
from phds.protocol.vocabulary import ConceptDescendants, ConceptView, DescendantView

log = logging.getLogger(__name__)

CONCEPT_COLUMNS = (
    "concept_id",
    "concept_name",
    "domain_id",
    "vocabulary_id",
    "concept_class_id",
    "concept_code",
    "standard_concept",
)


class HubVocabulary:
    """Answers which concepts exist, finds them and their descendants; opens the store on first use."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._store: CdmStore | None = None
        self._lock = threading.Lock()

    def _opened(self) -> CdmStore:
        """The configured store (call with the lock held; only when ``url`` is set)."""
        assert self.url is not None
        if self._store is None:
            self._store = open_store(self.url, read_only=self.url.startswith("duckdb:"))
        return self._store

    def known(self, concept_ids: set[int]) -> set[int]:
        """The ids among *concept_ids* that the shipped subset or the configured vocabulary holds."""
        found = {c for c in concept_ids if c in REGISTRY}
        missing = concept_ids - found
        if missing and self.url is not None:
            with self._lock:
                concept = self._opened().table("concept")
                rows = concept.filter(concept.concept_id.isin(sorted(missing))).select("concept_id")
                found |= {int(c) for c in rows.to_pyarrow()["concept_id"].to_pylist()}
        return found

    def search(
        self, query: str, *, domain: str | None = None, standard_only: bool = False, limit: int = 20
    ) -> list[ConceptView]:
        """Concepts whose name contains *query* (any case), or whose code or id is *query*; exact id and
        code matches first, then names that start with it, then shorter names. An empty query lists."""
        text = query.strip()
        found: dict[int, ConceptView] = {}
        for concept in REGISTRY.values():
            view = _subset_view(concept)
            if _matches(view, text, domain, standard_only):
                found[view.id] = view
        if self.url is not None:
            with self._lock:
                for view in _store_search(self._opened(), text, domain, standard_only, limit):
                    found.setdefault(view.id, view)
        return sorted(found.values(), key=lambda v: _rank(v, text))[:limit]

    def lookup(self, concept_ids: Iterable[int]) -> list[ConceptView]:
        """The known concepts among *concept_ids*, in the order asked (unknown ids are left out)."""
        wanted = list(dict.fromkeys(concept_ids))
        found = {c: _subset_view(REGISTRY[c]) for c in wanted if c in REGISTRY}
        missing = [c for c in wanted if c not in found]
        if missing and self.url is not None:
            with self._lock:
                concept = self._opened().table("concept")
                rows = concept.filter(concept.concept_id.isin(missing)).select(*CONCEPT_COLUMNS)
                for row in rows.to_pyarrow().to_pylist():
                    found[int(row["concept_id"])] = _row_view(row)
        return [found[c] for c in wanted if c in found]

    def concept(self, concept_id: int) -> ConceptView:
        """One concept; :class:`NotFound` when no vocabulary the hub holds has it."""
        found = self.lookup([concept_id])
        if not found:
            raise NotFound(f"no concept {concept_id} in the hub's vocabulary")
        return found[0]

    def descendants(self, concept_id: int, *, limit: int = 200) -> ConceptDescendants:
        """The concept's descendants (itself excluded), nearest first, from every hierarchy known."""
        concept = self.concept(concept_id)
        levels: dict[int, tuple[int, int]] = {}
        known = False
        for ancestor, descendant, low, high in _subset_ancestors():
            if ancestor == concept_id:
                known = True
                if descendant != concept_id:
                    levels[descendant] = (low, high)
        if self.url is not None:
            with self._lock:
                store_known, rows = _store_descendants(self._opened(), concept_id, limit + 1)
            known = known or store_known
            for descendant, low, high in rows:
                old = levels.get(descendant)
                levels[descendant] = (low, high) if old is None else (min(old[0], low), max(old[1], high))
        views = {v.id: v for v in self.lookup(levels)}
        ordered = sorted(views.values(), key=lambda v: (levels[v.id][0], v.name.lower(), v.id))
        return ConceptDescendants(
            concept=concept,
            hierarchy_known=known,
            descendants=[
                DescendantView(**v.model_dump(), min_levels=levels[v.id][0], max_levels=levels[v.id][1])
                for v in ordered[:limit]
            ],
            truncated=len(ordered) > limit,
        )

    def close(self) -> None:
        """Close the configured store, if it was opened."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


@cache
def _subset_ancestors() -> tuple[tuple[int, int, int, int], ...]:
    return tuple(ancestor_rows())


def _subset_view(concept: Concept) -> ConceptView:
    return ConceptView(
        id=concept.concept_id,
        name=concept.name,
        domain=concept.domain_id,
        vocabulary=concept.vocabulary_id,
        concept_class=concept.concept_class_id,
        code=concept.concept_code,
        standard=concept.standard_concept == "S",
    )


def _row_view(row: dict[str, Any]) -> ConceptView:
    return ConceptView(
        id=int(row["concept_id"]),
        name=str(row["concept_name"] or ""),
        domain=str(row["domain_id"] or ""),
        vocabulary=str(row["vocabulary_id"] or ""),
        concept_class=str(row["concept_class_id"] or ""),
        code=str(row["concept_code"] or ""),
        standard=row["standard_concept"] == "S",
    )


def _matches(view: ConceptView, text: str, domain: str | None, standard_only: bool) -> bool:
    if domain and view.domain.lower() != domain.lower():
        return False
    if standard_only and not view.standard:
        return False
    lowered = text.lower()
    return not text or lowered in view.name.lower() or view.code.lower() == lowered or str(view.id) == text


def _rank(view: ConceptView, text: str) -> tuple[int, int, int, str, int]:
    """Sort key: exact id, exact code, exact name, name prefix, substring; standard first; shorter names."""
    lowered, name = text.lower(), view.name.lower()
    if text and str(view.id) == text:
        tier = 0
    elif text and view.code.lower() == lowered:
        tier = 1
    elif name == lowered:
        tier = 2
    elif name.startswith(lowered):
        tier = 3
    else:
        tier = 4
    return tier, 0 if view.standard else 1, len(name), name, view.id


def _store_search(
    store: CdmStore, text: str, domain: str | None, standard_only: bool, limit: int
) -> list[ConceptView]:
    import ibis

    concept = store.table("concept")
    lowered = text.lower()
    name = concept.concept_name.lower()
    condition: Any = name.contains(lowered) | (concept.concept_code.lower() == lowered)
    if text.isdigit() and len(text) < 19:
        condition = condition | (concept.concept_id == int(text))
    if domain:
        condition = condition & (concept.domain_id.lower() == domain.lower())
    if standard_only:
        condition = condition & (concept.standard_concept == "S")
    tier = ibis.cases(
        (concept.concept_code.lower() == lowered, 1),
        (name == lowered, 2),
        (name.startswith(lowered), 3),
        else_=4,
    )
    if text.isdigit() and len(text) < 19:
        tier = ibis.cases((concept.concept_id == int(text), 0), else_=tier)
    standard_last = ibis.cases((concept.standard_concept == "S", 0), else_=1)
    query = (
        concept.filter(condition)
        .select(*CONCEPT_COLUMNS)
        .order_by([tier, standard_last, concept.concept_name.length(), concept.concept_name])
        .limit(limit)
    )
    return [_row_view(row) for row in query.to_pyarrow().to_pylist()]


def _store_descendants(
    store: CdmStore, concept_id: int, limit: int
) -> tuple[bool, list[tuple[int, int, int]]]:
    """Whether CONCEPT_ANCESTOR holds the concept as an ancestor, and up to *limit* of its descendants."""
    if "concept_ancestor" not in store.existing_tables():
        return False, []
    ancestry = store.table("concept_ancestor")
    mine = ancestry.filter(ancestry.ancestor_concept_id == concept_id)
    known = int(mine.count().to_pyarrow().as_py()) > 0
    below = (
        mine.filter(mine.descendant_concept_id != concept_id)
        .order_by([mine.min_levels_of_separation, mine.descendant_concept_id])
        .limit(limit)
        .select("descendant_concept_id", "min_levels_of_separation", "max_levels_of_separation")
    )
    rows = [
        (
            int(r["descendant_concept_id"]),
            int(r["min_levels_of_separation"]),
            int(r["max_levels_of_separation"]),
        )
        for r in below.to_pyarrow().to_pylist()
    ]
    return known, rows
