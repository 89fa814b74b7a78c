"""A CDM store in a schema of a PostgreSQL database."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from phds.errors import StoreError
from phds.omop.schema import table_spec
from phds.omop.store import CdmStore, postgres_parts

_BATCH_ROWS = 100_000


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
                cur.execute(sql.replace("?", "%s"), list(params))
                return list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL CDM store {self.url}: {exc}") from exc

    def create_tables(self) -> None:
        self.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        super().create_tables()

    def append_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Append Arrow rows by CSV ``COPY``; a ``RecordBatchReader`` is streamed batch by batch."""
        self._copy_batches(table, data)

    def insert_select(self, table: str, columns: Sequence[str], duckdb_select: str) -> int:
        # PostgreSQL cannot read the files itself (and postgres_scanner cannot be installed here), so a
        # private in-process DuckDB runs the query and its Arrow batches are streamed in by COPY.
        con = duckdb.connect()
        try:
            result = con.execute(duckdb_select)
            # duckdb 1.5 renamed fetch_record_batch (now deprecated) to to_arrow_reader.
            to_reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
            reader = to_reader(_BATCH_ROWS)
            renamed = pa.RecordBatchReader.from_batches(
                pa.schema([pa.field(c, f.type) for c, f in zip(columns, reader.schema, strict=True)]),
                (pa.RecordBatch.from_arrays(b.columns, names=list(columns)) for b in reader),
            )
            return self._copy_batches(table, renamed)
        except duckdb.Error as exc:
            raise StoreError(f"reading rows for {table}: {exc}") from exc
        finally:
            con.close()

    def _copy_batches(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        spec = table_spec(table)
        present = set(data.schema.names)
        columns = [c for c in spec.column_names if c in present]
        names = ", ".join(f'"{c}"' for c in columns)
        batches = data.to_batches() if isinstance(data, pa.Table) else data
        rows = 0
        options = pacsv.WriteOptions(include_header=False)
        try:
            with (
                self.con.cursor() as cur,
                cur.copy(f"COPY {self.qualified(table)} ({names}) FROM STDIN WITH (FORMAT csv)") as copy,
            ):
                for batch in batches:
                    if batch.num_rows == 0:
                        continue
                    buffer = io.BytesIO()
                    pacsv.write_csv(pa.Table.from_batches([batch]).select(columns), buffer, options)
                    copy.write(buffer.getbuffer())
                    rows += batch.num_rows
        except psycopg.Error as exc:
            raise StoreError(f"appending to {table} in {self.url}: {exc}") from exc
        return rows

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
