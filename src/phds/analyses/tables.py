"""Analysis tables: the one table an analysis sees at a node, named by the requester, built at the node.

A table is either a tabular dataset registered at the node (``{"dataset": "cnsim"}``, like DataSHIELD's
tables) or an OMOP cohort with declared covariates (``{"cohort": …, "covariates": […]}``, in the spirit
of OHDSI FeatureExtraction; see :mod:`phds.analyses.omop_table`). Requesters name variables; nodes never
ship rows. Variable names are checked against a strict pattern and looked up as ibis columns, so no
requester text is ever run as SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from phds.analyses.omop_covariates import CovariateList
from phds.errors import InputError
from phds.privacy.aggregates import Persons
from phds.sources.identity import OMOP_PERSON, ROW_ID

if TYPE_CHECKING:
    from phds.sources import NodeData

VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"
"""A variable name; the node's own columns (``__phds…``) are refused by :func:`analysis_table`."""


class TableSpec(BaseModel):
    """Which table an analysis runs on: a tabular ``dataset`` or an OMOP ``cohort`` with covariates."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$"
    )
    cohort: str | dict[str, Any] | None = Field(default=None, description="Circe JSON / YAML cohort")
    covariates: CovariateList = Field(default_factory=list, description="OMOP covariates (omop_covariates)")
    entries: Literal["first", "all"] = Field(default="first", description="cohort entries: one row each")
    source: str | None = Field(default=None, max_length=100, description="OMOP source name at the node")

    @model_validator(mode="after")
    def _one_kind(self) -> TableSpec:
        if (self.dataset is None) == (self.cohort is None):
            raise ValueError("name either a dataset or a cohort (with covariates)")
        if self.dataset is not None and (self.covariates or "entries" in self.model_fields_set):
            raise ValueError("covariates and entries belong to a cohort table, not to a dataset")
        return self


def analysis_table(
    data: NodeData, spec: TableSpec, variables: list[str], field: str = "analysis.params"
) -> Any:
    """The ibis table *spec* names at this node, checked to have every one of *variables*."""
    if spec.dataset is not None:
        table = data.tabular(spec.dataset)
    else:
        from phds.analyses.omop_table import omop_analysis_table

        table = omop_analysis_table(data, spec)
    hidden = [v for v in variables if v.startswith("__phds")]
    if hidden:
        raise InputError(f"{hidden[0]!r} is not a variable", field=field)
    missing = [v for v in variables if v not in table.columns]
    if missing:
        shown = [c for c in table.columns if not c.startswith("__phds")]
        raise InputError(
            f"the table has no variable {', '.join(repr(m) for m in missing)} (it has: {', '.join(shown)})",
            field=field,
        )
    return table


def id_column(spec: TableSpec) -> str:
    """The column that identifies a row's person: the node's row identity, or the OMOP person."""
    return ROW_ID if spec.dataset is not None else OMOP_PERSON


def persons_of(data: NodeData, spec: TableSpec, frame: Any) -> Persons:
    """The persons behind the rows of *frame* (a DataFrame holding :func:`id_column`)."""
    ids = np.asarray(frame[id_column(spec)].to_numpy())
    return Persons(data.universe(dataset=spec.dataset, source=spec.source), ids)
