"""Building cohorts on a node's CDM store through circepy, compiled once per definition and cached.

circepy's ``build_cohort`` (~150 ms on a small CDM, DESIGN.md) writes a codeset table and a staging
table, and returns an ibis relation that reads them. PHDS keeps those tables out of the hospital's
CDM: on DuckDB they go to an in-memory database attached to the store's connection (this works on a
read-only store too); on PostgreSQL to the session's temporary schema of the store's ibis connection.
Both vanish with the connection. A cached cohort is therefore a snapshot of the CDM when it was built:
after reloading the CDM, call :meth:`CohortBuilder.clear` (or open a new store).

Only the semantic expression (no names, no free text) is handed to circepy, which compiles it to ibis
expressions with literals; no text of the requester is ever pasted into SQL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from phds.cohorts.circe import CohortDefinition
from phds.errors import ConfigError, InputError, StoreError
from phds.omop.store import CdmStore

__all__ = ["BuiltCohort", "CohortBuilder"]

log = logging.getLogger(__name__)

SCRATCH_DUCKDB = "phds_cohort_scratch"
# circepy 0.3 names its tables <prefix>__codesets and <prefix>__staging_<stage>.
_STAGES = ("primary", "qualified", "included", "ended")
# circepy clears a module-global cache of correlated criteria at the start of every build.
_CIRCEPY_LOCK = threading.Lock()


@dataclass(frozen=True)
class BuiltCohort:
    """A compiled cohort: an ibis table (subject_id, cohort_start_date, cohort_end_date)."""

    fingerprint: str
    table: Any
    build_seconds: float
    prefix: str


class CohortBuilder:
    """Builds cohort definitions on one CDM store; keeps the last ``max_cached`` by fingerprint.

    ``builds`` counts circepy builds and ``hits`` cache hits, so callers and tests can see the cache work.
    """

    def __init__(self, store: CdmStore, *, max_cached: int = 32) -> None:
        if store.dialect not in {"duckdb", "postgres"}:
            raise ConfigError(f"cohorts cannot be built on a {store.dialect!r} CDM store")
        self._store = weakref.ref(store)  # the per-store registry must not keep a closed store alive
        self.dialect = store.dialect
        self.max_cached = max_cached
        self.builds = 0
        self.hits = 0
        self._cache: OrderedDict[str, BuiltCohort] = OrderedDict()
        self._lock = threading.RLock()
        self._scratch: str | None = None

    @property
    def store(self) -> CdmStore:
        """The CDM store cohorts are built on."""
        store = self._store()
        if store is None:
            raise StoreError("the CDM store of this cohort builder has been released")
        return store

    def build(self, definition: CohortDefinition) -> BuiltCohort:
        """The compiled cohort of ``definition``, from the cache when it was built before."""
        key = definition.fingerprint
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
            built = self._build(definition)
            self.builds += 1
            self._cache[key] = built
            while len(self._cache) > self.max_cached:
                _, old = self._cache.popitem(last=False)
                self._drop(old.prefix)
            return built

    def table(self, definition: CohortDefinition) -> Any:
        """The cohort as an ibis table: subject_id, cohort_start_date, cohort_end_date."""
        return self.build(definition).table

    def clear(self) -> None:
        """Forget every cached cohort and drop its scratch tables (call after the CDM changed)."""
        with self._lock:
            for built in self._cache.values():
                self._drop(built.prefix)
            self._cache.clear()
            self._scratch = None  # found again: a new PostgreSQL session has another temp schema

    def _build(self, definition: CohortDefinition) -> BuiltCohort:
        from circe.api import cohort_expression_from_json
        from circe.execution import build_cohort
        from circe.execution.errors import (
            ExecutionNormalizationError,
            UnsupportedCriterionError,
            UnsupportedFeatureError,
        )

        backend = self.store.ibis()
        scratch = self._scratch_schema(backend)
        prefix = f"__phds_{uuid.uuid4().hex[:10]}_"
        expression = cohort_expression_from_json(json.dumps(definition.semantic_expression))
        start = time.perf_counter()
        try:
            with _CIRCEPY_LOCK:
                relation = build_cohort(
                    expression,
                    backend=backend,
                    cdm_schema=self._cdm_schema(),
                    results_schema=scratch,
                    session_prefix=prefix,  # given, so circepy keeps no session registry table
                )
        except (ExecutionNormalizationError, UnsupportedCriterionError, UnsupportedFeatureError) as exc:
            self._drop(prefix)
            raise InputError(f"cohort cannot be built: {exc}", field="(root)") from exc
        except Exception as exc:  # the database refused: ibis/duckdb/psycopg errors have no common base
            self._drop(prefix)
            raise StoreError(
                f"building cohort {definition.fingerprint[:12]} on {self.store.dialect}: {exc}"
            ) from exc
        seconds = time.perf_counter() - start
        table = relation.select(
            subject_id=relation.person_id.cast("int64"),
            cohort_start_date=relation.start_date.cast("date"),
            cohort_end_date=relation.end_date.cast("date"),
        )
        log.debug("built cohort %s in %.3f s", definition.fingerprint[:12], seconds)
        return BuiltCohort(definition.fingerprint, table, seconds, prefix)

    def _cdm_schema(self) -> str:
        if self.store.dialect == "duckdb":
            return "main"
        return str(self.store.schema)  # type: ignore[attr-defined]

    def _scratch_schema(self, backend: Any) -> str:
        """Where circepy's codeset and staging tables go: never the CDM itself."""
        if self._scratch is None:
            if self.store.dialect == "duckdb":
                # READ_WRITE lets an in-memory database attach to a read-only store.
                self.store.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH_DUCKDB} (READ_WRITE)")
                self._scratch = f"{SCRATCH_DUCKDB}.main"
            else:
                _raw(backend, "CREATE TEMPORARY TABLE IF NOT EXISTS phds_cohort_probe (x integer)")
                rows = _raw(backend, "SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()")
                self._scratch = str(rows[0][0])
        return self._scratch

    def _drop(self, prefix: str) -> None:
        store = self._store()
        if self._scratch is None or store is None:
            return
        backend = store.ibis()
        for name in (f"{prefix}__codesets", *(f"{prefix}__staging_{stage}" for stage in _STAGES)):
            try:
                backend.drop_table(name, database=self._scratch, force=True)
            except Exception:  # best effort: the tables die with the connection anyway
                log.debug("could not drop scratch table %s", name, exc_info=True)


def _raw(backend: Any, sql: str) -> list[tuple[Any, ...]]:
    """Run fixed SQL written here on the ibis backend's own connection (its session owns temp tables)."""
    cursor = backend.raw_sql(sql)
    try:
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()
