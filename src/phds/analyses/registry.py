"""The analysis registry: every vetted analysis by its stable name and version.

Built-in analyses are registered exactly as a hospital's installed plugin would be (datasette's
``DEFAULT_PLUGINS`` plus setuptools entry points): :data:`DEFAULT_ANALYSES` names their classes as
``module:Class``, and every distribution may add more under the entry-point group ``phds.analyses``::

    [project.entry-points."phds.analyses"]
    "myorg.growth_velocity" = "myorg_phds.velocity:GrowthVelocity"

Both go through one loader, which checks that the object is an :class:`~phds.analyses.base.Analysis`
and that its registered name is the one it declares. A plugin may not replace a built-in analysis.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from phds.analyses.base import Analysis
from phds.errors import ConfigError, InputError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "phds.analyses"
DEFAULT_ANALYSES: dict[str, str] = {
    "feasibility.count": "phds.analyses.feasibility:FeasibilityCount",
    "stats.mean_variance": "phds.analyses.mean_variance:MeanVariance",
    "system.noop": "phds.analyses.noop:NoOp",
    "stats.summary": "phds.analyses.summary:Summary",
    "stats.table": "phds.analyses.contingency:ContingencyTable",
    "stats.characterisation": "phds.analyses.characterisation:Characterisation",
    "survival.cox": "phds.analyses.cox:CoxPH",
    "survival.km": "phds.analyses.km:KaplanMeier",
    "stats.glm": "phds.analyses.glm:Glm",
    "benchmarking.indicators": "phds.analyses.benchmarking:Benchmarking",
    "learning.fedavg": "phds.analyses.learning:FedAvg",
    "learning.fedprox": "phds.analyses.learning:FedProx",
    "synthetic.mst": "phds.analyses.synthetic:SyntheticMst",
}


def load_analysis(name: str, target: Any) -> Analysis[Any]:
    """Instantiate *target* (a ``module:Class`` string or the class) registered as *name*."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    analysis = target() if isinstance(target, type) else target
    if not isinstance(analysis, Analysis):
        raise ConfigError(f"analysis plugin {name!r} is not a phds.analyses.Analysis")
    if analysis.name != name:
        raise ConfigError(f"analysis plugin registered as {name!r} calls itself {analysis.name!r}")
    return analysis


@cache
def _registry() -> dict[str, Analysis[Any]]:
    found = {name: load_analysis(name, target) for name, target in DEFAULT_ANALYSES.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            if ep.value != DEFAULT_ANALYSES.get(ep.name):
                raise ConfigError(f"analysis plugin {ep.value!r} may not replace the built-in {ep.name!r}")
            continue  # the built-in, registered through PHDS's own entry points
        found[ep.name] = load_analysis(ep.name, ep.load())
        log.info("analysis plugin %s loaded from %s", ep.name, ep.value)
    return found


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
