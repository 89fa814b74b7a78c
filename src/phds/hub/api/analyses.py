"""``/api/v1/analyses``: the vetted analyses this hub knows, with the JSON Schema of their parameters.

A requester (or the portal, which builds its study forms from these schemas) learns from here what it
may ask for. Each hospital's node still decides, by its own policy and its own installed analyses, what
runs (DESIGN invariant 4); the hub's list is what it can check and combine.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter

from phds.analyses import Analysis, available_analyses
from phds.errors import NotFound
from phds.hub.auth import AnyUser
from phds.protocol.analyses import AnalysisInfo

router = APIRouter(prefix="/analyses", tags=["analyses"])


def analysis_info(analysis: Analysis[Any]) -> AnalysisInfo:
    """The wire description of one registered analysis."""
    doc = inspect.getdoc(type(analysis)) or ""
    return AnalysisInfo(
        name=analysis.name,
        version=analysis.version,
        title=analysis.title,
        description=doc.split("\n\n", 1)[0].replace("\n", " ").strip(),
        data_kind=analysis.data_kind,
        service_types=list(analysis.service_types),
        dp_support=analysis.dp_support,
        secure_aggregation_support=analysis.secure_aggregation_support,
        dp_secure_support=analysis.dp_secure_support,
        params_schema=analysis.params_model.model_json_schema(),
    )


@router.get("", response_model=list[AnalysisInfo])
def list_analyses(caller: AnyUser) -> list[AnalysisInfo]:
    """Every analysis the hub knows, by name."""
    return [analysis_info(a) for _, a in sorted(available_analyses().items())]


@router.get("/{name}", response_model=AnalysisInfo)
def get_analysis_info(name: str, caller: AnyUser) -> AnalysisInfo:
    """One analysis by its registry name; 404 when the hub does not know it."""
    analysis = available_analyses().get(name)
    if analysis is None:
        raise NotFound(f"no analysis {name!r}; GET /api/v1/analyses lists those this hub knows")
    return analysis_info(analysis)
