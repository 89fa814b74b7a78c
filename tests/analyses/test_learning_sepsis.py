"""A federated sepsis model recovers the simulator's PICU ground truth across 3 hospitals (slow tier).

The PICU cohort (``PICU_SEPSIS_TABLE``, ``phds.omop.simulator.picu_truth``) comes from the ``picu``
branch; until it is merged this module is skipped. docs/examples/fl-sepsis.yaml is the same study.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from phds.analyses import omop_table
from phds.analyses.testing import Federation
from phds.sdk import load_study

pytestmark = pytest.mark.slow

if not hasattr(omop_table, "PICU_SEPSIS_TABLE"):
    pytest.skip("the PICU sepsis cohort of the picu branch is not merged yet", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fl-sepsis.yaml"


def test_fedavg_recovers_the_picu_sepsis_signal(tmp_path: Path) -> None:
    from phds.omop.simulator import generate
    from phds.omop.simulator.picu_truth import COEFFICIENTS

    spec = load_study(EXAMPLE)
    params = dict(spec.analysis.params)
    assert params["table"] == omop_table.PICU_SEPSIS_TABLE, "the example writes out the ground-truth table"
    made = generate(tmp_path / "data", hospitals=3, patients=20000, seed=7, overwrite=True)
    omop = {r.slug: {"cdm": f"duckdb:///{r.path.resolve()}"} for r in made}
    with Federation(omop=omop) as network:
        run = network.run(spec.analysis.name, params, secure_aggregation=True)
    assert run.result is not None, (run.error, run.refused)
    coef = run.result["coefficients"]
    # The strong planted effects come out with their signs; every hospital separates cases from others.
    for term in ("heart_rate", "temperature", "lactate", "wbc", "crp"):
        assert coef[term] > 0 and COEFFICIENTS[term] > 0, term
    assert coef["systolic_bp"] < 0 and COEFFICIENTS["systolic_bp"] < 0
    for hospital, row in run.result["metrics"]["per_hospital"].items():
        assert not row["from_bins"] and row["auroc"] > 0.75, hospital
