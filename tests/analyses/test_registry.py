"""Every vetted analysis is registered under its stable name, with a Params model and both steps."""

from __future__ import annotations

import pytest

from phds.analyses import available_analyses, get_analysis
from phds.errors import InputError

EXPECTED = {
    "feasibility.count",
    "stats.mean_variance",
    "stats.summary",
    "stats.table",
    "stats.characterisation",
    "survival.cox",
    "survival.km",
    "stats.glm",
    "system.noop",
}


def test_the_registry_holds_every_vetted_analysis_once() -> None:
    registry = available_analyses()
    assert set(registry) >= EXPECTED
    for name, analysis in registry.items():
        assert analysis.name == name
        assert analysis.version
        assert analysis.data_kind in {"omop", "tabular", "none"}


def test_an_unknown_name_or_version_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError, match=r"field analysis\.name"):
        get_analysis("stats.lasso")
    with pytest.raises(InputError, match=r"field analysis\.version"):
        get_analysis("stats.summary", "99")
