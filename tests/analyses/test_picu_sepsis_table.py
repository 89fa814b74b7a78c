"""PICU_SEPSIS_TABLE rebuilds docs/ground-truth.md ("PICU sepsis"); pooled and federated fits recover it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import chi2

from phds.analyses.omop_table import PICU_SEPSIS_TABLE, omop_table_arrow
from phds.analyses.tables import TableSpec
from phds.analyses.testing import run_federation
from phds.omop.simulator import generate
from phds.omop.simulator import picu_truth as pt
from phds.omop.store import open_store
from phds.omop.vocabulary import concepts as c

#: Fixed, as for the asthma truth: each true coefficient leaves its 95% CI in 5% of seeds.
SEED = 4
PATIENTS = 30_000
FORMULA = "sepsis ~ " + " + ".join(pt.TERMS)
_CONCEPTS = {
    "heart_rate": c.HEART_RATE,
    "respiratory_rate": c.RESPIRATORY_RATE,
    "temperature": c.BODY_TEMPERATURE,
    "systolic_bp": c.SYSTOLIC_BLOOD_PRESSURE,
    "lactate": c.LACTATE_BLOOD,
    "wbc": c.LEUKOCYTES,
    "crp": c.C_REACTIVE_PROTEIN,
}
_VALUES = ",\n       ".join(
    f"max(m.value_as_number) FILTER (WHERE m.measurement_concept_id = {cid}) AS {name}"
    for name, cid in _CONCEPTS.items()
)

# docs/ground-truth.md, "PICU sepsis", "Rebuilding the cohort": steps 1-4 as one query.
TRUTH_SQL = f"""
WITH first_picu AS (
    SELECT person_id, visit_occurrence_id AS index_visit, visit_start_date AS index_date,
           row_number() OVER (PARTITION BY person_id ORDER BY visit_start_date, visit_occurrence_id) AS k
    FROM visit_occurrence WHERE visit_concept_id = {c.INTENSIVE_CARE_VISIT}
), cohort AS (
    SELECT f.*, make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth) AS birth
    FROM first_picu f JOIN person p USING (person_id) JOIN observation_period o USING (person_id)
    WHERE f.k = 1 AND o.observation_period_end_date >= f.index_date + {pt.WINDOW_DAYS}
)
SELECT k.person_id AS subject_id, (k.index_date - k.birth) / 365.25 AS age_years,
       {_VALUES},
       EXISTS (SELECT 1 FROM condition_occurrence s WHERE s.visit_occurrence_id = k.index_visit
               AND s.condition_concept_id = {c.SEPSIS}
               AND s.condition_start_date BETWEEN k.index_date AND k.index_date + {pt.WINDOW_DAYS})::INT
           AS sepsis
FROM cohort k LEFT JOIN measurement m
  ON m.visit_occurrence_id = k.index_visit AND m.measurement_date = k.index_date
GROUP BY k.person_id, k.index_date, k.birth, k.index_visit
ORDER BY k.person_id
"""


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three simulated hospitals (general, tertiary, respiratory): about 2,300 PICU admissions in all."""
    results = generate(tmp_path_factory.mktemp("picu"), hospitals=3, patients=PATIENTS, seed=SEED)
    return [r.path for r in results]


@pytest.fixture(scope="module")
def tables(hospitals: list[Path]) -> list[pd.DataFrame]:
    spec = TableSpec.model_validate(PICU_SEPSIS_TABLE)
    frames = []
    for path in hospitals:
        with open_store(f"duckdb:///{path}", read_only=True) as store:
            frames.append(omop_table_arrow(store, spec).to_pandas())
    return frames


def test_the_table_is_the_documented_rebuild_admission_by_admission(
    hospitals: list[Path], tables: list[pd.DataFrame]
) -> None:
    for path, table in zip(hospitals, tables, strict=True):
        with duckdb.connect(str(path), read_only=True) as con:
            expected = con.execute(TRUTH_SQL).df()
        assert list(table.columns) == ["subject_id", *pt.TERMS, "sepsis"]
        assert table["subject_id"].tolist() == expected["subject_id"].tolist()
        assert table["sepsis"].tolist() == expected["sepsis"].tolist()
        for name in pt.TERMS:
            assert np.array_equal(table[name].to_numpy(), expected[name].to_numpy()), name
        assert not table.isna().any().any()  # every admission has all seven values


def _pooled(tables: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True)


def test_case_mix_differs_but_the_sepsis_model_is_shared(tables: list[pd.DataFrame]) -> None:
    general, tertiary, _respiratory = tables
    assert len(tertiary) > 2 * len(general)  # admission rate 4% against 1.5%
    assert tertiary["sepsis"].mean() > general["sepsis"].mean() + 0.08  # sicker admissions
    assert tertiary["lactate"].mean() > general["lactate"].mean()
    for table in tables:  # each hospital's own fit is compatible with the one shared truth
        fit = sm.Logit(table["sepsis"].astype(float), sm.add_constant(table[list(pt.TERMS)])).fit(disp=0)
        diff = fit.params.to_numpy() - _truth()
        wald = float(diff @ np.linalg.solve(fit.cov_params().to_numpy(), diff))
        assert wald < chi2.ppf(0.999, df=len(diff)), wald


def _truth() -> np.ndarray:
    return np.array([pt.COEFFICIENTS["intercept"], *(pt.COEFFICIENTS[t] for t in pt.TERMS)])


def test_pooled_logit_recovers_the_documented_coefficients(tables: list[pd.DataFrame]) -> None:
    pooled = _pooled(tables)
    assert len(pooled) > 1_500 and 0.2 < pooled["sepsis"].mean() < 0.5
    fit = sm.Logit(pooled["sepsis"].astype(float), sm.add_constant(pooled[list(pt.TERMS)])).fit(disp=0)
    ci = fit.conf_int(alpha=0.05)
    for name, beta in zip(["const", *pt.TERMS], _truth(), strict=True):
        lo, hi = ci.loc[name]
        assert lo < beta < hi, f"{name}: true {beta} outside the 95% CI ({lo:.4f}, {hi:.4f})"
    diff = fit.params.to_numpy() - _truth()
    wald = float(diff @ np.linalg.solve(fit.cov_params().to_numpy(), diff))
    assert wald < chi2.ppf(0.999, df=len(diff)), wald
    for name in ("lactate", "crp", "heart_rate"):  # the strongest signals are detected
        assert ci.loc[name].iloc[0] > 0, name


def test_federated_glm_over_three_hospitals_equals_the_pooled_fit(
    hospitals: list[Path], tables: list[pd.DataFrame], tmp_path: Path
) -> None:
    omop = {f"h{i}": {"cdm": f"duckdb:///{path}"} for i, path in enumerate(hospitals, 1)}
    params = {"table": PICU_SEPSIS_TABLE, "formula": FORMULA, "family": "binomial"}
    run = run_federation("stats.glm", params, {}, omop=omop, folder=tmp_path / "federation")
    assert run.error is None and run.refused == {}, (run.error, run.refused)
    assert run.result is not None
    pooled = _pooled(tables)
    ref = sm.GLM(
        pooled["sepsis"].astype(float), sm.add_constant(pooled[list(pt.TERMS)]), family=sm.families.Binomial()
    ).fit()
    ours = {row["term"]: row for row in run.result["coefficients"]}
    assert sorted(ours) == sorted(["Intercept", *pt.TERMS])
    for term, name in zip(["Intercept", *pt.TERMS], ["const", *pt.TERMS], strict=True):
        assert ours[term]["estimate"] == pytest.approx(ref.params[name], rel=1e-8, abs=1e-10), term
        assert ours[term]["std_error"] == pytest.approx(ref.bse[name], rel=1e-6), term
    assert run.result["n_obs"] == len(pooled)
    assert sorted(run.result["n_by_hospital"]) == ["h1", "h2", "h3"]
