"""OMOP CDM stores: one interface over an embedded DuckDB file and a PostgreSQL schema.

``open_store("duckdb:///path/hospital.duckdb")`` or ``open_store("postgresql://user@host/db?schema=cdm")``.
Reading goes through ibis (:meth:`CdmStore.ibis`), the same engine ohdsi-circepy builds cohorts with, so
another ibis engine can be added as a third backend. Writing (create, append, transactions) uses each
engine's native driver, which is what bulk loads need.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from phds.errors import ConfigError, StoreError
from phds.omop.schema import cdm_tables

log = logging.getLogger(__name__)


class CdmStore(abc.ABC):
    """A hospital's OMOP CDM database."""

    dialect: str
    url: str

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run trusted SQL written by PHDS (never a requester's text) and return all rows."""

    @abc.abstractmethod
    def append_arrow(self, table: str, data: pa.Table) -> None:
        """Append rows to a CDM table; columns are matched by name, missing ones become NULL."""

    @abc.abstractmethod
    def insert_select(self, table: str, columns: Sequence[str], duckdb_select: str) -> int:
        """Insert the rows of a DuckDB ``SELECT`` (written by PHDS) into *columns* of *table*.

        The query may read files (``read_csv``, ``read_parquet``); it runs in this store's own DuckDB
        connection, or in a private in-process DuckDB whose Arrow batches are streamed into the store.
        Returns the number of rows inserted.
        """

    @abc.abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all; a nested call joins the outer one."""

    @abc.abstractmethod
    def ibis(self) -> Any:
        """An ibis backend reading this store's CDM tables."""

    @abc.abstractmethod
    def qualified(self, table: str) -> str:
        """The table's quoted name as SQL on this engine."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def create_tables(self) -> None:
        """Create every CDM v5.4 table that does not exist yet."""
        with self.transaction():
            for spec in cdm_tables().values():
                self.execute(spec.create_sql(self.dialect, self._schema_for_ddl()))

    def existing_tables(self) -> set[str]:
        """Names of the CDM tables present in the store."""
        return {name for name in cdm_tables() if self._table_exists(name)}

    def row_counts(self) -> dict[str, int]:
        """Row count of every CDM table present."""
        return {
            name: int(self.execute(f"SELECT count(*) FROM {self.qualified(name)}")[0][0])
            for name in cdm_tables()
            if self._table_exists(name)
        }

    def table(self, name: str) -> Any:
        """An ibis table expression over one CDM table."""
        return self.ibis().table(name)

    @abc.abstractmethod
    def _table_exists(self, name: str) -> bool: ...

    def _schema_for_ddl(self) -> str | None:
        return None

    def __enter__(self) -> CdmStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str, *, read_only: bool = False) -> CdmStore:
    """Open a CDM store by URL: ``duckdb:///path.duckdb`` or ``postgresql://user@host/db?schema=cdm``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "duckdb":
        from phds.omop.store_duckdb import DuckDbStore

        return DuckDbStore(url, read_only=read_only)
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        from phds.omop.store_postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        f"unsupported CDM store URL {url!r}: use duckdb:///path/to/hospital.duckdb "
        "or postgresql://user@host/db?schema=cdm"
    )


def duckdb_path(url: str) -> Path:
    """The file path in a ``duckdb:///path`` URL (``duckdb:///:memory:`` for an in-memory store)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc:  # duckdb://relative/path
        path = parts.netloc + path
    if not path:
        raise ConfigError(f"CDM store URL {url!r} names no file")
    return Path(path)


def postgres_parts(url: str) -> tuple[str, str]:
    """Split a PostgreSQL URL into a libpq connection string and the CDM schema (default ``cdm``)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = query.pop("schema", ["cdm"])[0]
    if not schema.replace("_", "").isalnum():
        raise ConfigError(f"schema {schema!r} in {url!r} must be letters, digits and underscores")
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
    conninfo = f"postgresql://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
    return conninfo, schema


__all__ = ["CdmStore", "StoreError", "duckdb_path", "open_store", "postgres_parts"]
