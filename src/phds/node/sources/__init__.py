"""The data a node serves: OMOP CDM stores and tabular datasets, opened lazily and kept open."""

from phds.node.sources.context import NodeData
from phds.node.sources.tabular import TabularDataset

__all__ = ["NodeData", "TabularDataset"]
