"""Tabular datasets (CSV or Parquet files registered by name), as DataSHIELD serves its tables.

A dataset is read once into the node's in-process DuckDB and queried from there through ibis. Header
names are stripped of surrounding spaces (DataSHIELD's CNSIM files have ``"LAB_TSC "``), an unnamed first
column (R's row names) is called ``row_name``, and empty fields are missing values.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from phds.errors import ConfigError, InputError
from phds.sources.identity import ROW_ID

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TabularDataset:
    """A CSV or Parquet file registered at a node under a dataset name."""

    name: str
    path: Path

    def __post_init__(self) -> None:
        if not _SAFE_NAME.match(self.name):
            raise ConfigError(f"dataset name {self.name!r} must be letters, digits, '_', '.' or '-'")

    @property
    def format(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix in {".csv", ".tsv", ".txt"}:
            return "csv"
        if suffix in {".parquet", ".pq"}:
            return "parquet"
        raise ConfigError(f"dataset {self.name}: {self.path} is neither CSV nor Parquet")

    def load_into(self, con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
        """Create *table* in *con* from the file; return its column names."""
        if not self.path.is_file():
            raise ConfigError(f"dataset {self.name}: file {self.path} does not exist")
        reader = "read_parquet(?)" if self.format == "parquet" else "read_csv(?, header = true)"
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {reader}", [str(self.path)]).fetchall()
        except duckdb.Error as exc:
            raise InputError(f"cannot read dataset {self.name}: {exc}", file=str(self.path)) from exc
        renames = []
        seen: set[str] = set()
        for position, row in enumerate(described):
            original = str(row[0])
            clean = original.strip() or ("row_name" if position == 0 else f"column{position}")
            if re.fullmatch(r"column0+", clean) and position == 0:
                clean = "row_name"
            if clean in seen:
                raise InputError(f"column {clean!r} appears twice", file=str(self.path), column=clean)
            seen.add(clean)
            quoted = original.replace('"', '""')
            renames.append(f'"{quoted}" AS "{clean}"')
        if ROW_ID in seen:
            raise InputError(
                f"column {ROW_ID!r} is reserved for the node's row identity", file=str(self.path)
            )
        con.execute(
            f'CREATE OR REPLACE TABLE "{table}" AS SELECT {", ".join(renames)} FROM {reader}',
            [str(self.path)],
        )
        # A node-side identity per row (its position in the file: DuckDB preserves insertion order),
        # for the overlap guard; it never leaves the node and is no analysis variable.
        con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{ROW_ID}" BIGINT')
        con.execute(f'UPDATE "{table}" SET "{ROW_ID}" = rowid')
        log.info("dataset %s: loaded %s into table %s", self.name, self.path, table)
        return sorted(seen)


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    """Column name → DuckDB type name of a loaded dataset table."""
    rows = con.execute(f'DESCRIBE "{table}"').fetchall()
    return {str(r[0]): str(r[1]) for r in rows}
