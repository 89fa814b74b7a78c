"""The data a node serves: OMOP CDM stores and tabular datasets, opened lazily and kept open.

The classes are imported on first use, so :mod:`phds.sources.identity` (what the analyses, and so the
hub, need) loads without DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phds.sources.identity import ROW_ID

if TYPE_CHECKING:
    from phds.sources.context import NodeData
    from phds.sources.tabular import TabularDataset


def __getattr__(name: str) -> Any:
    if name == "NodeData":
        from phds.sources.context import NodeData

        return NodeData
    if name == "TabularDataset":
        from phds.sources.tabular import TabularDataset

        return TabularDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ROW_ID", "NodeData", "TabularDataset"]
