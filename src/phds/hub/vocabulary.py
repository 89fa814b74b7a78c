"""The concepts the hub knows, to refuse cohorts naming unknown concept ids before any node runs them.

The paediatric vocabulary subset shipped with PHDS is always known; an operator adds a full vocabulary
(e.g. an Athena download loaded with ``phds omop load``) with ``PHDS_HUB_VOCABULARY_URL``.
"""

from __future__ import annotations

import logging
import threading

from phds.omop.store import CdmStore, open_store
from phds.omop.vocabulary.concepts import REGISTRY

log = logging.getLogger(__name__)


class HubVocabulary:
    """Answers which of a set of concept ids exist; opens the configured store on first use."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._store: CdmStore | None = None
        self._lock = threading.Lock()

    def known(self, concept_ids: set[int]) -> set[int]:
        """The ids among *concept_ids* that the shipped subset or the configured vocabulary holds."""
        found = {c for c in concept_ids if c in REGISTRY}
        missing = concept_ids - found
        if missing and self.url is not None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.url, read_only=self.url.startswith("duckdb:"))
                concept = self._store.table("concept")
                rows = concept.filter(concept.concept_id.isin(sorted(missing))).select("concept_id")
                found |= {int(c) for c in rows.to_pyarrow()["concept_id"].to_pylist()}
        return found

    def close(self) -> None:
        """Close the configured store, if it was opened."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
