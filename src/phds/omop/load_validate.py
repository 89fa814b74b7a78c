"""Checks for OMOP CDM exports: header mapping (CDM 5.3 → 5.4) and the diagnostic pass after a failed load.

The loader's fast path lets DuckDB parse each file with the CDM types. Only when that fails does
:func:`diagnose` read the file again as text, find the first bad value and raise a
:class:`~phds.errors.CdmLoadError` naming the file, the physical line (header = line 1) and the column.
"""

from __future__ import annotations

import csv
import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from phds.errors import CdmLoadError
from phds.omop.schema import TableSpec

log = logging.getLogger(__name__)

#: CDM 5.3 column names renamed in 5.4, per table. Source: OHDSI CommonDataModel, "Changes from
#: CDM v5.3 to v5.4" (https://ohdsi.github.io/CommonDataModel/cdm54Changes.html). The misspelt
#: ``reveue_code_source_value`` is in OHDSI's own CDM 5.3 DDL and in the Eunomia GiBleed export.
RENAMED_53: dict[str, dict[str, str]] = {
    "visit_occurrence": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
    },
    "visit_detail": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
        "visit_detail_parent_id": "parent_visit_detail_id",
    },
    "cost": {"reveue_code_source_value": "revenue_code_source_value"},
}

#: CDM 5.3 tables that CDM 5.4 dropped; their files are skipped with a warning (see docs/howto).
DROPPED_53_TABLES = frozenset({"attribute_definition", "cohort_attribute"})

_DATE_ONLY_DIGITS = re.compile(r"^\d{8}$")

_TYPE_WORDS = {
    "i": "a whole number",
    "n": "a number",
    "d": "a date (YYYY-MM-DD or YYYYMMDD)",
    "t": "a date-time (YYYY-MM-DD HH:MM:SS)",
    "s": "text",
}
ROW_NUMBER = "row_number() OVER ()"
DUCKDB_TYPES = {"i": "BIGINT", "n": "DOUBLE", "d": "DATE", "t": "TIMESTAMP", "s": "VARCHAR"}
# A whole number, optionally written with a zero fraction ("8507.0", as pandas writes integer columns).
_WHOLE = r"\s*[-+]?\d+(\.0*)?\s*"


def integer_sql(text: str) -> str:
    """SQL turning the text *text* into BIGINT, refusing fractions.

    DuckDB's own text-to-integer conversion (in ``read_csv`` too) rounds ``8507.5`` to ``8508``, which would
    silently turn one concept id into another, so integer columns are read as text and converted here.
    """
    return (
        f"CASE WHEN {text} IS NULL OR NOT contains({text}, '.') THEN CAST({text} AS BIGINT) "
        f"WHEN regexp_full_match({text}, '{_WHOLE}') THEN CAST(split_part({text}, '.', 1) AS BIGINT) "
        f"ELSE error('not a whole number: ' || {text}) END"
    )


@dataclass
class SourceFile:
    """One export file and how its columns map onto a CDM 5.4 table."""

    table: str
    path: Path
    format: Literal["csv", "parquet"]
    file_columns: list[str]  # as written in the file
    targets: list[str]  # the CDM 5.4 column each file column loads into, same order
    delimiter: str = ","
    dateformat: str | None = None  # a strptime format when dates are not ISO, e.g. %Y%m%d
    fills: dict[str, str] = field(default_factory=dict)  # absent NOT NULL column -> SQL value
    native_integers: set[str] = field(default_factory=set)  # Parquet columns already stored as integers

    @property
    def quote(self) -> str:
        # Athena vocabulary downloads are tab-separated without quoting (OHDSI Athena README).
        return "" if self.delimiter == "\t" else '"'


def read_header(path: Path) -> tuple[list[str], str]:
    """The header names of a CSV file and its delimiter (comma, or tab as in Athena downloads)."""
    with path.open("rb") as fh:
        raw = fh.readline()
    try:
        first = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CdmLoadError("the header is not valid UTF-8", file=path.name, line=1) from exc
    if not first.strip():
        raise CdmLoadError("the file is empty: no header line", file=path.name, line=1)
    delimiter = "\t" if "\t" in first and "," not in first else ","
    names = next(csv.reader([first], delimiter=delimiter))
    return [n.strip() for n in names], delimiter


def map_columns(spec: TableSpec, names: list[str], file: str) -> tuple[list[str], dict[str, str]]:
    """Map file column names to CDM 5.4 names; return them and the fills for absent NOT NULL columns.

    Names match case-insensitively; CDM 5.3 names are renamed (:data:`RENAMED_53`). An unknown name is a
    :class:`CdmLoadError` on line 1 that suggests the closest CDM column.
    """
    valid = spec.column_names
    renames = RENAMED_53.get(spec.name, {})
    lowered = [n.lower() for n in names]
    targets: list[str] = []
    for name, low in zip(names, lowered, strict=True):
        target = low
        if low not in valid and low in renames and renames[low] not in lowered:
            target = renames[low]
        if target not in valid:
            close = difflib.get_close_matches(low, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid columns: {', '.join(valid)}"
            raise CdmLoadError(
                f"unknown column {name!r} for CDM table {spec.name}{hint}", file=file, line=1, column=name
            )
        if target in targets:
            raise CdmLoadError(f"column {target!r} appears twice", file=file, line=1, column=name)
        targets.append(target)
    fills: dict[str, str] = {}
    for col in spec.columns:
        if not col.required or col.name in targets:
            continue
        if col.name.endswith("_concept_id"):
            # OHDSI convention: concept_id 0 is "No matching concept". Used e.g. for
            # cdm_source.cdm_version_concept_id, which CDM 5.3 exports do not have.
            fills[col.name] = "0"
        elif col is spec.columns[0] and col.type == "i" and col.name.endswith("_id"):
            # A surrogate key that 5.4 added (metadata.metadata_id): number the rows 1, 2, ...
            fills[col.name] = ROW_NUMBER
        else:
            raise CdmLoadError(
                f"required column {col.name!r} of CDM table {spec.name} is missing",
                file=file,
                line=1,
                column=col.name,
            )
    return targets, fills


def sniff_dateformat(path: Path, sf: SourceFile, spec: TableSpec, sample_rows: int = 50) -> str | None:
    """``%Y%m%d`` when the first dates of the file are written as 8 digits (Athena style), else None."""
    date_idx = [i for i, t in enumerate(sf.targets) if spec.column(t).type == "d"]
    if not date_idx:
        return None
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sf.delimiter)
        next(reader, None)
        for n, row in enumerate(reader):
            if n >= sample_rows:
                break
            for i in date_idx:
                if i < len(row) and row[i].strip():
                    return "%Y%m%d" if _DATE_ONLY_DIGITS.match(row[i].strip()) else None
    return None


def csv_source_sql(sf: SourceFile, spec: TableSpec, *, as_text: bool = False) -> str:
    """``read_csv(...)`` of the file with CDM types (or all VARCHAR), columns named by their CDM target.

    Integer columns are read as text in both cases; :func:`integer_sql` converts them.
    """
    kinds = {t: spec.column(t).type for t in sf.targets}
    types = {t: "VARCHAR" if as_text or k == "i" else DUCKDB_TYPES[k] for t, k in kinds.items()}
    cols = ", ".join(f"'{name}': '{typ}'" for name, typ in types.items())
    options = [
        f"'{_sql_str(str(sf.path))}'",
        "header = true",
        "auto_detect = false",
        f"delim = '{_sql_str(sf.delimiter)}'",
        f"quote = '{_sql_str(sf.quote)}'",
        f"escape = '{_sql_str(sf.quote)}'",
        f"columns = {{{cols}}}",
    ]
    if sf.dateformat and not as_text:
        options.append(f"dateformat = '{sf.dateformat}'")
    return f"read_csv({', '.join(options)})"


def parquet_source_sql(sf: SourceFile) -> str:
    """``read_parquet(...)`` of the file, columns renamed to their CDM target."""
    renames = ", ".join(f'"{src}" AS "{dst}"' for src, dst in zip(sf.file_columns, sf.targets, strict=True))
    return f"(SELECT {renames} FROM read_parquet('{_sql_str(str(sf.path))}'))"


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _value_check(column: str, kind: str, dateformat: str | None) -> str:
    """SQL true when the text in *column* cannot be read as the CDM type *kind*."""
    c = f'"{column}"'
    if kind == "d" and dateformat:
        return f"({c} IS NOT NULL AND try_strptime({c}, '{dateformat}') IS NULL)"
    if kind == "i":
        return (
            f"({c} IS NOT NULL AND (TRY_CAST({c} AS BIGINT) IS NULL "
            f"OR (contains({c}, '.') AND NOT regexp_full_match({c}, '{_WHOLE}'))))"
        )
    return f"({c} IS NOT NULL AND TRY_CAST({c} AS {DUCKDB_TYPES[kind]}) IS NULL)"


def diagnose(sf: SourceFile, spec: TableSpec, cause: Exception) -> CdmLoadError | None:
    """Find the first bad value of a file that failed to load; return the error to raise.

    None when every value of the file is fine, i.e. the store, not the file, refused the rows.

    Runs on a private in-memory DuckDB (the store's own transaction may be aborted by then).
    """
    con = duckdb.connect()
    con.execute("SET threads = 1")  # so that row_number() OVER () follows the file's order
    try:
        return _diagnose(con, sf, spec, cause)
    finally:
        con.close()


def _diagnose(
    con: duckdb.DuckDBPyConnection, sf: SourceFile, spec: TableSpec, cause: Exception
) -> CdmLoadError | None:
    if sf.format == "csv":
        source = csv_source_sql(sf, spec, as_text=True)
        try:
            con.execute(f"SELECT count(*) FROM {source}").fetchall()
        except duckdb.Error:
            return _structure_error(sf, cause)
        text_cols = ", ".join(f'"{t}"' for t in sf.targets)
    else:
        source = parquet_source_sql(sf)
        text_cols = ", ".join(f'CAST("{t}" AS VARCHAR) AS "{t}"' for t in sf.targets)
    checks: list[tuple[str, str, str]] = []  # (column, sql, message)
    for t in sf.targets:
        col = spec.column(t)
        if col.required:
            checks.append((t, f'("{t}" IS NULL)', f"a value is required (CDM declares {t} NOT NULL)"))
        if col.type != "s":
            checks.append((t, _value_check(t, col.type, sf.dateformat), f"is not {_TYPE_WORDS[col.type]}"))
    if not checks:
        return None
    flags = ", ".join(f"{sql} AS f{i}" for i, (_, sql, _) in enumerate(checks))
    any_bad = " OR ".join(sql for _, sql, _ in checks)
    shown_cols = ", ".join(f'"{t}"' for t in sf.targets)
    query = (
        f"SELECT rn, {flags}, {shown_cols} "
        f"FROM (SELECT row_number() OVER () AS rn, {text_cols} FROM {source}) "
        f"WHERE {any_bad} ORDER BY rn LIMIT 1"
    )
    try:
        row = con.execute(query).fetchone()
    except duckdb.Error:  # e.g. bytes that are not UTF-8, which a count(*) alone does not decode
        return _structure_error(sf, cause) if sf.format == "csv" else None
    if row is None:
        return None
    rn = int(row[0])
    values = dict(zip(["rn", *[f"f{i}" for i in range(len(checks))], *sf.targets], row, strict=True))
    for i, (column, _, message) in enumerate(checks):
        if values[f"f{i}"]:
            value = values[column]
            shown = f"{str(value)[:60]!r} " if value is not None else ""
            file_col = sf.file_columns[sf.targets.index(column)]
            if sf.format == "parquet":
                return CdmLoadError(f"row {rn}: {shown}{message}", file=sf.path.name, column=file_col)
            line = physical_line(sf, rn)
            where = "" if line is not None else f"data row {rn}: "
            return CdmLoadError(f"{where}{shown}{message}", file=sf.path.name, line=line, column=file_col)
    return None


def physical_line(sf: SourceFile, data_row: int) -> int | None:
    """The physical line (header = 1) where data row *data_row* (1-based) starts; quoted newlines count.

    None when Python's csv module cannot follow the file that far (e.g. a field over its size limit).
    """
    with sf.path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=sf.delimiter, quoting=_quoting(sf))
        next(reader, None)
        previous_end = reader.line_num
        try:
            for n, _ in enumerate(reader, start=1):
                if n == data_row:
                    return previous_end + 1
                previous_end = reader.line_num
        except csv.Error:
            return None
    return previous_end + 1


def _quoting(sf: SourceFile) -> Literal[0, 3]:
    return csv.QUOTE_NONE if sf.quote == "" else csv.QUOTE_MINIMAL


def _structure_error(sf: SourceFile, cause: Exception) -> CdmLoadError:
    """Bytes that are not UTF-8, or a row whose number of fields differs from the header."""
    with sf.path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return CdmLoadError("the line is not valid UTF-8", file=sf.path.name, line=number)
    expected = len(sf.file_columns)
    with sf.path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=sf.delimiter, quoting=_quoting(sf))
        next(reader, None)
        previous_end = reader.line_num
        try:
            for row in reader:
                if row and len(row) != expected:
                    return CdmLoadError(
                        f"{len(row)} fields where the header has {expected}",
                        file=sf.path.name,
                        line=previous_end + 1,
                    )
                previous_end = reader.line_num
        except csv.Error as exc:
            return CdmLoadError(f"malformed CSV: {exc}", file=sf.path.name, line=previous_end + 1)
    return CdmLoadError(f"malformed CSV: {cause}", file=sf.path.name)
