"""A CDM store in a schema of a PostgreSQL database."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from phds.errors import StoreError
from phds.omop.schema import table_spec
from phds.omop.store import CdmStore, postgres_parts


class PostgresStore(CdmStore):
    """A CDM in ``?schema=`` (default ``cdm``) of a PostgreSQL database."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo, self.schema = postgres_parts(url)
        try:
            self.con = psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL CDM store {url}: {exc}") from exc
        self._ibis: Any = None
        self._in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.con.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), list(params))  # type: ignore[call-overload]
                return list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL CDM store {self.url}: {exc}") from exc

    def create_tables(self) -> None:
        self.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        super().create_tables()

    def append_arrow(self, table: str, data: pa.Table) -> None:
        spec = table_spec(table)
        columns = [c for c in spec.column_names if c in set(data.column_names)]
        buffer = io.BytesIO()
        pacsv.write_csv(data.select(columns), buffer, pacsv.WriteOptions(include_header=False))
        names = ", ".join(f'"{c}"' for c in columns)
        try:
            with self.con.cursor() as cur, cur.copy(
                f"COPY {self.qualified(table)} ({names}) FROM STDIN WITH (FORMAT csv)"
            ) as copy:
                copy.write(buffer.getvalue())
        except psycopg.Error as exc:
            raise StoreError(f"appending to {table} in {self.url}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            yield
            return
        self._in_transaction = True
        try:
            with self.con.transaction():
                yield
        finally:
            self._in_transaction = False

    def ibis(self) -> Any:
        if self._ibis is None:
            import ibis

            self._ibis = ibis.connect(self.conninfo, schema=self.schema)
        return self._ibis

    def qualified(self, table: str) -> str:
        return f'"{self.schema}"."{table}"'

    def close(self) -> None:
        self.con.close()
        if self._ibis is not None:
            self._ibis.disconnect()

    def _schema_for_ddl(self) -> str | None:
        return self.schema

    def _table_exists(self, name: str) -> bool:
        rows = self.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [self.schema, name],
        )
        return bool(rows)
