"""The OMOP CDM v5.4 table definitions PHDS creates, read from ``cdm54.txt``.

The column list and NOT NULL flags follow OHDSI/CommonDataModel ``inst/ddl/5.4``. Integers are stored as
BIGINT so that row ids of large hospitals never overflow; numerics are stored as DOUBLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

ColumnType = Literal["i", "n", "d", "t", "s"]

_SQL_TYPES: dict[str, dict[ColumnType, str]] = {
    "duckdb": {"i": "BIGINT", "n": "DOUBLE", "d": "DATE", "t": "TIMESTAMP", "s": "VARCHAR"},
    "postgres": {"i": "BIGINT", "n": "DOUBLE PRECISION", "d": "DATE", "t": "TIMESTAMP", "s": "TEXT"},
}


@dataclass(frozen=True)
class ColumnSpec:
    """One CDM column: its name, abstract type and whether the CDM declares it NOT NULL."""

    name: str
    type: ColumnType
    required: bool


@dataclass(frozen=True)
class TableSpec:
    """One CDM table and its columns in CDM order."""

    name: str
    columns: tuple[ColumnSpec, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def create_sql(self, dialect: str, schema: str | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for this table in the given dialect (duckdb or postgres)."""
        types = _SQL_TYPES[dialect]
        cols = ", ".join(
            f'"{c.name}" {types[c.type]}{" NOT NULL" if c.required else ""}' for c in self.columns
        )
        qualified = f'"{schema}"."{self.name}"' if schema else f'"{self.name}"'
        return f"CREATE TABLE IF NOT EXISTS {qualified} ({cols})"


CDM_VERSION = "5.4"

#: Tables a hospital's CDM must hold for a load to make sense.
REQUIRED_TABLES = ("person",)

#: Vocabulary tables, shared by all hospitals and not patient data.
VOCABULARY_TABLES = (
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "concept_relationship",
    "relationship",
    "concept_synonym",
    "concept_ancestor",
    "source_to_concept_map",
    "drug_strength",
)


@cache
def cdm_tables() -> dict[str, TableSpec]:
    """All CDM v5.4 tables by name, in DDL order."""
    text = resources.files("phds.omop").joinpath("cdm54.txt").read_text(encoding="utf-8")
    tables: dict[str, TableSpec] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        columns = []
        for item in rest.split(","):
            col, kind = item.split()
            required = kind.endswith("!")
            columns.append(ColumnSpec(col, kind.rstrip("!"), required))  # type: ignore[arg-type]
        tables[name.strip()] = TableSpec(name.strip(), tuple(columns))
    return tables


def table_spec(name: str) -> TableSpec:
    """The spec of one CDM table; raises ``KeyError`` for a name that is not a CDM table."""
    return cdm_tables()[name.lower()]
