"""The OMOP vocabulary subset shipped with PHDS: the concepts the synthetic paediatric generator uses.

``vocabulary_tables()`` reads the shipped CSVs as typed Arrow tables (for writers of CSV or Parquet
folders); ``load_vocabulary(store)`` appends them to a store's empty vocabulary tables in one
transaction. For a full Athena vocabulary use ``phds omop load`` on the Athena download instead.
"""

from __future__ import annotations

import io
import logging
from functools import cache
from importlib import resources

import pyarrow as pa
import pyarrow.csv as pacsv

from phds.errors import Conflict
from phds.omop.schema import table_spec
from phds.omop.store import CdmStore
from phds.omop.vocabulary.build import FILES, VOCABULARY_VERSION

log = logging.getLogger(__name__)

_ARROW_TYPES = {
    "i": pa.int64(),
    "n": pa.float64(),
    "d": pa.date32(),
    "t": pa.timestamp("us"),
    "s": pa.string(),
}


@cache
def _read(table: str) -> pa.Table:
    data = resources.files(__name__).joinpath(f"{table}.csv").read_bytes()
    spec = table_spec(table)
    return pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(
            column_types={col.name: _ARROW_TYPES[col.type] for col in spec.columns},
            null_values=[""],
            strings_can_be_null=True,
            include_columns=spec.column_names,
        ),
    )


def vocabulary_tables() -> dict[str, pa.Table]:
    """The shipped vocabulary tables by CDM table name, typed as the CDM DDL types them."""
    return {table: _read(table) for table in FILES}


def load_vocabulary(store: CdmStore) -> dict[str, int]:
    """Append the subset to the store's vocabulary tables; returns rows written per table.

    The tables must exist and be empty (a store holds one vocabulary); otherwise raises ``Conflict``
    and writes nothing.
    """
    tables = vocabulary_tables()
    missing = sorted(set(tables) - store.existing_tables())
    if missing:
        raise Conflict(
            f"CDM store {store.url} lacks vocabulary tables {missing}; create the CDM tables first"
        )
    for table in tables:
        rows = int(store.execute(f"SELECT count(*) FROM {store.qualified(table)}")[0][0])
        if rows:
            raise Conflict(f"{table} in {store.url} already holds {rows} rows; load into empty tables")
    with store.transaction():
        for table, data in tables.items():
            store.append_arrow(table, data)
    log.info("loaded the PHDS vocabulary subset (%s) into %s", VOCABULARY_VERSION, store.url)
    return {table: data.num_rows for table, data in tables.items()}


__all__ = ["VOCABULARY_VERSION", "load_vocabulary", "vocabulary_tables"]
