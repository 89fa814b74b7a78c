"""Load a hospital's OMOP CDM export (a folder of CSV or Parquet files, one per table) into a CDM store.

``load_cdm(Path("export/"), open_store("duckdb:///hospital.duckdb"))`` loads every CDM table file of the
folder in ONE transaction: either every file loads or the store is left exactly as it was.

- File names match tables case-insensitively (``PERSON.csv``, ``person.csv``, ``person.parquet``).
- CDM 5.3 exports load into the CDM 5.4 tables: renamed columns are mapped
  (:data:`~phds.omop.load_validate.RENAMED_53`), columns 5.4 added are left NULL, and NOT NULL columns
  that 5.3 lacks are filled (``*_concept_id`` with 0, "No matching concept"; ``metadata_id`` with row
  numbers). The tables 5.4 dropped (``attribute_definition``, ``cohort_attribute``) are skipped with a
  warning.
- ``person`` is required, except in a folder of vocabulary tables only (an Athena download).
- Fast path: one ``INSERT … SELECT … FROM read_csv(…)`` per file with the CDM types given explicitly.
  Only when DuckDB refuses a file does :func:`~phds.omop.load_validate.diagnose` look for the first bad
  line and column.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from phds.errors import CdmLoadError, Conflict, StoreError
from phds.omop.load_validate import (
    DROPPED_53_TABLES,
    DUCKDB_TYPES,
    ROW_NUMBER,
    SourceFile,
    csv_source_sql,
    diagnose,
    integer_sql,
    map_columns,
    parquet_source_sql,
    read_header,
    sniff_dateformat,
)
from phds.omop.schema import REQUIRED_TABLES, VOCABULARY_TABLES, TableSpec, cdm_tables
from phds.omop.store import CdmStore

log = logging.getLogger(__name__)

_FORMATS = {".csv": "csv", ".parquet": "parquet"}


class TableLoad(BaseModel):
    """What one file put into one CDM table."""

    table: str
    file: str
    rows: int
    seconds: float
    renamed: dict[str, str] = Field(default_factory=dict, description="file column -> CDM 5.4 column")
    filled: dict[str, str] = Field(default_factory=dict, description="absent NOT NULL column -> value")


class SkippedFile(BaseModel):
    """A data file in the folder that was not loaded, and why."""

    file: str
    reason: str


class LoadReport(BaseModel):
    """The outcome of :func:`load_cdm`."""

    source: str
    store: str
    tables: list[TableLoad]
    skipped: list[SkippedFile]
    replaced: list[str] = Field(default_factory=list, description="tables whose old rows were replaced")
    seconds: float

    @property
    def rows(self) -> int:
        """Rows loaded over all tables."""
        return sum(t.rows for t in self.tables)

    def counts(self) -> dict[str, int]:
        """Rows loaded per table."""
        return {t.table: t.rows for t in self.tables}


def discover(source: Path) -> tuple[dict[str, tuple[Path, str]], list[SkippedFile]]:
    """The CDM table files of a folder (table -> (path, format)) and the data files that are skipped."""
    if not source.is_dir():
        raise CdmLoadError("not a folder of CSV or Parquet files", file=str(source))
    found: dict[str, tuple[Path, str]] = {}
    skipped: list[SkippedFile] = []
    tables = cdm_tables()
    for path in sorted(source.iterdir()):
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None or not path.is_file():
            continue
        name = path.stem.lower()
        if name not in tables:
            if name in DROPPED_53_TABLES:
                reason = "a CDM 5.3 table that CDM 5.4 dropped; not loaded"
            else:
                reason = "not a CDM 5.4 table name; not loaded"
            log.warning("skipping %s: %s", path.name, reason)
            skipped.append(SkippedFile(file=path.name, reason=reason))
            continue
        if name in found:
            raise CdmLoadError(
                f"two files for CDM table {name}: {found[name][0].name} and {path.name}", file=path.name
            )
        found[name] = (path, fmt)
    return found, skipped


def plan_file(table: str, path: Path, fmt: str) -> SourceFile:
    """Read a file's header, map its columns onto the CDM 5.4 table, and sniff its date format."""
    spec = cdm_tables()[table]
    native: set[str] = set()
    if fmt == "parquet":
        schema = pq.read_schema(path)
        names, delimiter = list(schema.names), ","
        native = {f.name for f in schema if pa.types.is_integer(f.type)}
    else:
        names, delimiter = read_header(path)
    targets, fills = map_columns(spec, names, path.name)
    sf = SourceFile(table, path, "parquet" if fmt == "parquet" else "csv", names, targets, delimiter)
    sf.fills = fills
    sf.native_integers = {t for n, t in zip(names, targets, strict=True) if n in native}
    if sf.format == "csv":
        sf.dateformat = sniff_dateformat(path, sf, spec)
    return sf


def select_sql(sf: SourceFile, spec: TableSpec) -> tuple[list[str], str]:
    """The target columns and the DuckDB ``SELECT`` that reads the file with CDM types."""
    exprs = []
    for t in sf.targets:
        kind = spec.column(t).type
        quoted = f'"{t}"'
        if kind == "i" and sf.format == "csv":
            exprs.append(f"{integer_sql(quoted)} AS {quoted}")
        elif kind == "i" and t not in sf.native_integers:
            exprs.append(f"{integer_sql(f'CAST({quoted} AS VARCHAR)')} AS {quoted}")
        elif sf.format == "csv":
            exprs.append(quoted)
        else:
            exprs.append(f"CAST({quoted} AS {DUCKDB_TYPES[kind]}) AS {quoted}")
    source = csv_source_sql(sf, spec) if sf.format == "csv" else parquet_source_sql(sf)
    exprs += [f'{value} AS "{col}"' for col, value in sf.fills.items()]
    return [*sf.targets, *sf.fills], f"SELECT {', '.join(exprs)} FROM {source}"


def load_cdm(source: Path, store: CdmStore, *, replace: bool = False) -> LoadReport:
    """Load every CDM table file in *source* into *store* in one transaction.

    Raises :class:`CdmLoadError` (naming file, line and column) for input that cannot be loaded and
    :class:`Conflict` when a target table already holds rows and *replace* is false. On any error the
    store is left as it was.
    """
    started = time.perf_counter()
    found, skipped = discover(source)
    # An Athena vocabulary download holds only vocabulary tables and may load without patients.
    vocabulary_only = bool(found) and set(found) <= set(VOCABULARY_TABLES)
    for required in REQUIRED_TABLES:
        if required not in found and not vocabulary_only:
            raise CdmLoadError(
                f"required CDM table {required} is missing: no {required.upper()}.csv, "
                f"{required}.csv or {required}.parquet",
                file=str(source),
            )
    tables = cdm_tables()
    plans = [plan_file(name, path, fmt) for name, (path, fmt) in found.items()]
    loads: list[TableLoad] = []
    replaced: list[str] = []
    with store.transaction():
        store.create_tables()
        before = store.row_counts()
        occupied = {sf.table: before[sf.table] for sf in plans if before.get(sf.table)}
        if occupied and not replace:
            listed = ", ".join(f"{t} ({n} rows)" for t, n in occupied.items())
            raise Conflict(f"the store already holds data in {listed}; pass --replace to replace them")
        for sf in plans:
            spec = tables[sf.table]
            t0 = time.perf_counter()
            if sf.table in occupied:
                store.execute(f"DELETE FROM {store.qualified(sf.table)}")
                replaced.append(sf.table)
            columns, sql = select_sql(sf, spec)
            try:
                rows = store.insert_select(sf.table, columns, sql)
            except StoreError as exc:
                log.info("fast load of %s failed, diagnosing: %s", sf.path.name, exc)
                found_error = diagnose(sf, spec, exc)
                if found_error is None:  # nothing wrong in the file: the store itself failed
                    raise
                raise found_error from exc
            renamed = {f: t for f, t in zip(sf.file_columns, sf.targets, strict=True) if f.lower() != t}
            filled = {c: "row number" if v == ROW_NUMBER else v for c, v in sf.fills.items()}
            for col, value in filled.items():
                log.warning("%s has no %s (NOT NULL in CDM 5.4): filled with %s", sf.path.name, col, value)
            loads.append(
                TableLoad(
                    table=sf.table,
                    file=sf.path.name,
                    rows=rows,
                    seconds=time.perf_counter() - t0,
                    renamed=renamed,
                    filled=filled,
                )
            )
            log.info("loaded %s rows into %s from %s", rows, sf.table, sf.path.name)
    return LoadReport(
        source=str(source),
        store=_redacted(store.url),
        tables=loads,
        skipped=skipped,
        replaced=replaced,
        seconds=time.perf_counter() - started,
    )


def _redacted(url: str) -> str:
    """The store URL without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = ["LoadReport", "SkippedFile", "TableLoad", "load_cdm"]
