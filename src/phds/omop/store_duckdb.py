"""The embedded default CDM store: one DuckDB file per hospital."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from phds.errors import StoreError
from phds.omop.schema import table_spec
from phds.omop.store import CdmStore, duckdb_path


class DuckDbStore(CdmStore):
    """A CDM in one DuckDB file, tables in its main schema."""

    dialect = "duckdb"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        path = duckdb_path(url)
        target = ":memory:" if str(path) in {":memory:", "/:memory:"} else str(path)
        if target != ":memory:" and not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(target, read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open DuckDB CDM store {target}: {exc}") from exc
        self._ibis: Any = None
        self._in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"DuckDB CDM store {self.url}: {exc}") from exc

    def append_arrow(self, table: str, data: pa.Table) -> None:
        spec = table_spec(table)
        present = set(data.column_names)
        select = ", ".join(f'"{c}"' if c in present else f'NULL AS "{c}"' for c in spec.column_names)
        self.con.register("_phds_append", data)
        try:
            self.con.execute(f'INSERT INTO "{table}" SELECT {select} FROM _phds_append')
        except duckdb.Error as exc:
            raise StoreError(f"appending to {table} in {self.url}: {exc}") from exc
        finally:
            self.con.unregister("_phds_append")

    def insert_select(self, table: str, columns: Sequence[str], duckdb_select: str) -> int:
        names = ", ".join(f'"{c}"' for c in columns)
        try:
            rows = self.con.execute(f'INSERT INTO "{table}" ({names}) {duckdb_select}').fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"inserting into {table} in {self.url}: {exc}") from exc
        return int(rows[0][0]) if rows else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            yield
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            try:
                self.con.execute("COMMIT")
            except duckdb.Error as exc:
                raise StoreError(f"committing to {self.url}: {exc}") from exc
        finally:
            self._in_transaction = False

    def ibis(self) -> Any:
        if self._ibis is None:
            import ibis

            self._ibis = ibis.duckdb.from_connection(self.con)
        return self._ibis

    def qualified(self, table: str) -> str:
        return f'"{table}"'

    def close(self) -> None:
        self.con.close()

    def _table_exists(self, name: str) -> bool:
        rows = self.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
            [name],
        )
        return bool(rows)
