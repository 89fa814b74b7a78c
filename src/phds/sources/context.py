"""``NodeData``: what a vetted analysis may read at a node, and nothing else."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from phds.errors import InputError
from phds.omop.store import CdmStore, open_store
from phds.sources.tabular import TabularDataset


class NodeData:
    """The node's data sources: OMOP CDM stores by name and tabular datasets by name.

    Stores are opened read-only on first use and kept open; tabular datasets are loaded once into an
    in-process DuckDB. Analyses get ibis tables from here; no SQL text from a requester is ever run.
    """

    def __init__(self, omop: Mapping[str, str], tabular: Mapping[str, Path]) -> None:
        self._omop_urls = dict(omop)
        self._datasets = {name: TabularDataset(name, Path(path)) for name, path in tabular.items()}
        self._stores: dict[str, CdmStore] = {}
        self._duck = duckdb.connect(":memory:")
        self._ibis: Any = None
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    @property
    def omop_names(self) -> list[str]:
        return list(self._omop_urls)

    @property
    def dataset_names(self) -> list[str]:
        return list(self._datasets)

    def omop(self, name: str | None = None) -> CdmStore:
        """The named OMOP store, or the only/first one when *name* is None."""
        if not self._omop_urls:
            raise InputError("this hospital serves no OMOP CDM", field="analysis.params.source")
        key = name or next(iter(self._omop_urls))
        if key not in self._omop_urls:
            raise InputError(
                f"no OMOP source {key!r} at this hospital (has: {', '.join(self._omop_urls)})",
                field="analysis.params.source",
            )
        with self._lock:
            if key not in self._stores:
                url = self._omop_urls[key]
                self._stores[key] = open_store(url, read_only=url.startswith("duckdb:"))
            return self._stores[key]

    def universe(self, *, dataset: str | None = None, source: str | None = None) -> str:
        """The name of the dataset a person set belongs to, for the overlap guard."""
        if dataset is not None:
            return f"tabular:{dataset}"
        key = source or (next(iter(self._omop_urls)) if self._omop_urls else "")
        return f"omop:{key}"

    def tabular(self, name: str) -> Any:
        """An ibis table over the named tabular dataset."""
        if name not in self._datasets:
            known = ", ".join(self._datasets) or "none"
            raise InputError(
                f"no dataset {name!r} at this hospital (has: {known})", field="analysis.params.dataset"
            )
        with self._lock:
            table = f"dataset_{sorted(self._datasets).index(name)}"
            if name not in self._loaded:
                self._datasets[name].load_into(self._duck, table)
                self._loaded.add(name)
            if self._ibis is None:
                import ibis

                self._ibis = ibis.duckdb.from_connection(self._duck)
            return self._ibis.table(table)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._duck.close()
