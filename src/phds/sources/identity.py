"""Row identities at a node: the column a dataset's rows are told apart by, for the overlap guard.

Importing this module loads no database driver, so analyses (and the hub, which imports them) can name
the column without importing DuckDB.
"""

ROW_ID = "__phds_row"
"""The node-side row identity of a tabular dataset (its position in the file); never an analysis variable."""

OMOP_PERSON = "subject_id"
"""The person column of an OMOP analysis table."""

__all__ = ["OMOP_PERSON", "ROW_ID"]
