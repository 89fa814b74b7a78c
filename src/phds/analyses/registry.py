"""The analysis registry: every vetted analysis by its stable name and version."""

from __future__ import annotations

from functools import cache
from typing import Any

from phds.analyses.base import Analysis
from phds.errors import InputError


@cache
def _registry() -> dict[str, Analysis[Any]]:
    from phds.analyses.characterisation import Characterisation
    from phds.analyses.contingency import ContingencyTable
    from phds.analyses.cox import CoxPH
    from phds.analyses.feasibility import FeasibilityCount
    from phds.analyses.glm import Glm
    from phds.analyses.km import KaplanMeier
    from phds.analyses.mean_variance import MeanVariance
    from phds.analyses.noop import NoOp
    from phds.analyses.summary import Summary

    analyses: list[Analysis[Any]] = [
        FeasibilityCount(),
        MeanVariance(),
        NoOp(),
        Summary(),
        ContingencyTable(),
        Characterisation(),
        CoxPH(),
        KaplanMeier(),
        Glm(),
    ]
    return {a.name: a for a in analyses}


def available_analyses() -> dict[str, Analysis[Any]]:
    """Every registered analysis by name."""
    return dict(_registry())


def get_analysis(name: str, version: str | None = None) -> Analysis[Any]:
    """The analysis registered as *name* (and *version*, when given)."""
    registry = _registry()
    if name not in registry:
        raise InputError(
            f"no analysis {name!r}; available: {', '.join(sorted(registry))}", field="analysis.name"
        )
    analysis = registry[name]
    if version is not None and version != analysis.version:
        raise InputError(
            f"analysis {name} has version {analysis.version}, not {version}", field="analysis.version"
        )
    return analysis
