"""The analyses the hub offers: ``GET /api/v1/analyses``, so requesters (and the portal's forms) know
each analysis's name, version, what it is for and the JSON Schema of its parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from phds.protocol.common import WireModel
from phds.protocol.studies import ServiceType


class AnalysisInfo(WireModel):
    """One vetted analysis of the hub's registry."""

    name: str = Field(description="Registry name, e.g. 'stats.glm'")
    version: str
    title: str
    description: str = Field(description="What it computes (the analysis's own docstring, first paragraph)")
    data_kind: Literal["omop", "tabular", "none"] = Field(
        description="What it reads at a node: an OMOP CDM, a tabular dataset (or an OMOP cohort table), none"
    )
    service_types: list[ServiceType] = Field(
        description="The service types a study of it is usually bought as; empty: any"
    )
    dp_support: bool = Field(description="It can run under differential privacy (a study's dp block)")
    secure_aggregation_support: bool = Field(description="It can run under secure aggregation")
    dp_secure_support: bool = Field(description="Differential privacy and secure aggregation together")
    params_schema: dict[str, Any] = Field(
        description="JSON Schema (draft 2020-12) of its parameters, from its pydantic Params model"
    )
