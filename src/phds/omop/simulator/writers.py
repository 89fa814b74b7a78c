"""Where generated CDM tables go: a DuckDB CDM store, or a folder of CSV files in CDM column order."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

from phds.errors import Conflict
from phds.omop.schema import cdm_tables, table_spec
from phds.omop.simulator.chunk import ARROW_TYPES
from phds.omop.store import CdmStore, open_store

log = logging.getLogger(__name__)

Format = Literal["duckdb", "csv"]
FORMATS: tuple[Format, ...] = ("duckdb", "csv")


class Sink(Protocol):
    """Receives CDM tables chunk by chunk."""

    def write(self, table: str, data: pa.Table) -> None: ...

    def close(self) -> None: ...


def output_path(out: Path, slug: str, fmt: Format) -> Path:
    """``out/<slug>.duckdb`` or the CSV folder ``out/<slug>/``."""
    return out / f"{slug}.duckdb" if fmt == "duckdb" else out / slug


def open_sink(path: Path, fmt: Format, *, overwrite: bool = False) -> Sink:
    """A sink writing to *path*; an existing output is replaced only with *overwrite*."""
    if path.exists():
        if not overwrite:
            raise Conflict(f"{path} already exists; pass --overwrite to replace it")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
            Path(f"{path}.wal").unlink(missing_ok=True)
    return DuckDbSink(path) if fmt == "duckdb" else CsvSink(path)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


class DuckDbSink:
    """Appends to a new DuckDB CDM store with every CDM v5.4 table created from the DDL."""

    def __init__(self, path: Path) -> None:
        self.store: CdmStore = open_store(f"duckdb:///{path.resolve()}")
        # DuckDB sizes its pool by os.cpu_count(); on a process pinned to fewer CPUs the extra threads
        # only contend (measured: a pinned single-core run inserts 2x faster with threads = 1).
        self.store.execute(f"SET threads = {_usable_cpus()}")
        self.store.create_tables()

    def write(self, table: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        with self.store.transaction():
            self.store.append_arrow(table, data)

    def close(self) -> None:
        self.store.execute("CHECKPOINT")
        self.store.close()


_NULLS: dict[str, pa.Array] = {}


def _nulls(kind: str, n: int) -> pa.Array:
    """*n* NULLs of a CDM column type, sliced from one cached array (no new allocation per column)."""
    cached = _NULLS.get(kind)
    if cached is None or len(cached) < n:
        cached = _NULLS[kind] = pa.nulls(
            max(n, 2 * len(cached) if cached is not None else n), ARROW_TYPES[kind]
        )
    return cached.slice(0, n)


def full_table(name: str, data: pa.Table) -> pa.Table:
    """*data* with every column of the CDM table, in CDM order; absent columns are NULL."""
    spec = table_spec(name)
    arrays = []
    for col in spec.columns:
        if col.name in data.column_names:
            arrays.append(data.column(col.name))
        else:
            arrays.append(_nulls(col.type, data.num_rows))
    return pa.Table.from_arrays(arrays, names=spec.column_names)


class CsvSink:
    """One ``<TABLE>.csv`` per CDM table (upper-case names, header in CDM order, empty fields for NULL)."""

    OPTIONS = pacsv.WriteOptions(quoting_header="none", batch_size=65536)

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.folder = folder
        self.writers: dict[str, pacsv.CSVWriter] = {}

    def write(self, table: str, data: pa.Table) -> None:
        full = full_table(table, data)
        writer = self.writers.get(table)
        if writer is None:
            path = self.folder / f"{table.upper()}.csv"
            writer = self.writers[table] = pacsv.CSVWriter(path, full.schema, write_options=self.OPTIONS)
        writer.write_table(full)

    def close(self) -> None:
        for name in cdm_tables():
            if name not in self.writers:  # header only, so a loader sees every table
                self.write(name, full_table(name, pa.table({})))
        for writer in self.writers.values():
            writer.close()
