"""A federated GLM over synthetic hospitals recovers the generator's documented ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phds.analyses import get_analysis
from phds.analyses.omop_table import GROUND_TRUTH_TABLE
from phds.omop.simulator import generate
from phds.omop.simulator.truth import COEFFICIENTS

from .conftest import run_rounds

#: Fixed seed: each true coefficient leaves its 95% interval in 5% of seeds (see docs/ground-truth.md).
SEED = 5
FORMULA = "admitted ~ age_years + male + bmi_sds + ics"


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [
        r.path
        for r in generate(tmp_path_factory.mktemp("glm-truth"), hospitals=3, patients=20_000, seed=SEED)
    ]


def test_the_federated_fit_recovers_the_documented_coefficients(
    hospitals: list[Path], make_hospital: Any
) -> None:
    nodes = [make_hospital(p.stem, omop={"cdm": f"duckdb:///{p}"}) for p in hospitals]
    params = {"table": GROUND_TRUTH_TABLE, "formula": FORMULA, "family": "binomial"}
    result = run_rounds(get_analysis("stats.glm"), params, nodes).result
    assert result["converged"]
    assert sorted(result["n_by_hospital"]) == sorted(p.stem for p in hospitals)
    by_term = {row["term"].lower(): row for row in result["coefficients"]}
    for term, truth in COEFFICIENTS.items():
        row = by_term[term]
        assert row["ci_lower"] <= truth <= row["ci_upper"], (term, truth, row)
    # The protective inhaled corticosteroid and the BMI effect are detected, not just covered.
    assert by_term["ics"]["ci_upper"] < 0 < by_term["bmi_sds"]["ci_lower"]
