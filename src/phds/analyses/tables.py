"""Analysis tables: the one table an analysis sees at a node, named by the requester, built at the node.

A table is either a tabular dataset registered at the node (``{"dataset": "cnsim"}``, like DataSHIELD's
tables) or an OMOP cohort with declared covariates (``{"cohort": …, "covariates": […]}``, in the spirit
of OHDSI FeatureExtraction; see :mod:`phds.analyses.omop_table`). Requesters name variables; nodes never
ship rows. Variable names are checked against a strict pattern and looked up as ibis columns, so no
requester text is ever run as SQL.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from phds.analyses.omop_covariates import CovariateList
from phds.errors import InputError
from phds.node.sources import NodeData

VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"


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
    missing = [v for v in variables if v not in table.columns]
    if missing:
        raise InputError(
            f"the table has no variable {', '.join(repr(m) for m in missing)} "
            f"(it has: {', '.join(table.columns)})",
            field=field,
        )
    return table
