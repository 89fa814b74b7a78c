"""GROUND_TRUTH_TABLE rebuilds docs/ground-truth.md exactly, and a pooled Logit on it recovers the truth."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import chi2

from phds.analyses.omop_table import GROUND_TRUTH_TABLE, omop_table_arrow
from phds.analyses.tables import TableSpec
from phds.omop.simulator import generate
from phds.omop.simulator import truth as tr
from phds.omop.store import open_store
from phds.omop.vocabulary import concepts as c
from phds.paediatrics.growth import sds_from_value

#: Fixed, as in tests/omop/test_simulator_truth.py: each true coefficient leaves its 95% CI in 5% of seeds.
SEED = 5
TERMS = ["age_years", "male", "bmi_sds", "ics"]

# docs/ground-truth.md, "Rebuilding the cohort, covariates and outcome from the CDM", steps 1-7.
TRUTH_SQL = f"""
WITH first_asthma AS (
    SELECT person_id, condition_start_date AS index_date, visit_occurrence_id AS index_visit,
           row_number() OVER (PARTITION BY person_id
                              ORDER BY condition_start_date, condition_occurrence_id) AS k
    FROM condition_occurrence WHERE condition_concept_id = {c.ASTHMA}
), cohort AS (
    SELECT f.*, p.gender_concept_id, make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth) AS birth
    FROM first_asthma f JOIN person p USING (person_id) JOIN observation_period o USING (person_id)
    WHERE f.k = 1 AND o.observation_period_end_date >= f.index_date + {tr.WINDOW_DAYS}
)
SELECT k.person_id AS subject_id, (k.index_date - k.birth) / 365.25 AS age_years, k.gender_concept_id,
       (k.gender_concept_id = {c.MALE})::INT AS male, m.value_as_number AS bmi,
       EXISTS (SELECT 1 FROM drug_exposure d WHERE d.person_id = k.person_id
               AND d.drug_concept_id IN ({", ".join(map(str, c.INHALED_CORTICOSTEROIDS))})
               AND d.drug_exposure_start_date
                   BETWEEN k.index_date AND k.index_date + {tr.ICS_WINDOW_DAYS})::INT AS ics,
       EXISTS (SELECT 1 FROM visit_occurrence v JOIN condition_occurrence a USING (visit_occurrence_id)
               WHERE v.person_id = k.person_id AND v.visit_concept_id = {c.INPATIENT_VISIT}
               AND a.condition_concept_id = {c.ASTHMA}
               AND v.visit_start_date
                   BETWEEN k.index_date + 1 AND k.index_date + {tr.WINDOW_DAYS})::INT AS admitted
FROM cohort k LEFT JOIN measurement m
  ON m.visit_occurrence_id = k.index_visit AND m.measurement_concept_id = {c.BMI}
ORDER BY k.person_id
"""


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The three synthetic hospitals, 20,000 children each (about 6,000 children with asthma in all)."""
    results = generate(tmp_path_factory.mktemp("truth"), hospitals=3, patients=20_000, seed=SEED)
    return [r.path for r in results]


@pytest.fixture(scope="module")
def tables(hospitals: list[Path]) -> list[pd.DataFrame]:
    spec = TableSpec.model_validate(GROUND_TRUTH_TABLE)
    frames = []
    for path in hospitals:
        with open_store(f"duckdb:///{path}", read_only=True) as store:
            frames.append(omop_table_arrow(store, spec).to_pandas())
    return frames


def test_the_table_is_the_documented_rebuild_child_by_child(
    hospitals: list[Path], tables: list[pd.DataFrame]
) -> None:
    for path, table in zip(hospitals, tables, strict=True):
        with duckdb.connect(str(path), read_only=True) as con:
            expected = con.execute(TRUTH_SQL).df()
        expected["bmi_sds"] = sds_from_value(
            "bmi", expected["gender_concept_id"].to_numpy(), expected["age_years"].to_numpy(), expected["bmi"]
        )
        assert table["subject_id"].tolist() == expected["subject_id"].tolist()
        for name in ["male", "ics", "admitted"]:
            assert table[name].tolist() == expected[name].tolist(), name
        for name in ["age_years", "bmi_sds"]:
            assert table[name].isna().tolist() == expected[name].isna().tolist(), name
            assert np.array_equal(table[name].dropna(), expected[name].dropna()), name
        # docs: only children diagnosed in their first 2 weeks have no BMI reference (and no BMI)
        assert (table.loc[table["bmi_sds"].isna(), "age_years"] < 14 / 365.25).all()


def test_pooled_logit_recovers_the_documented_coefficients(tables: list[pd.DataFrame]) -> None:
    pooled = pd.concat(tables, ignore_index=True).dropna()
    assert len(pooled) > 5_000 and 0.03 < pooled["admitted"].mean() < 0.3
    fit = sm.Logit(pooled["admitted"].astype(float), sm.add_constant(pooled[TERMS].astype(float))).fit(disp=0)
    truth = {"const": tr.COEFFICIENTS["intercept"], **{n: tr.COEFFICIENTS[n] for n in TERMS}}
    ci = fit.conf_int(alpha=0.05)
    for name, beta in truth.items():
        lo, hi = ci.loc[name]
        assert lo < beta < hi, f"{name}: true {beta} outside the 95% CI ({lo:.3f}, {hi:.3f})"
    diff = fit.params.to_numpy() - np.array(list(truth.values()))
    wald = float(diff @ np.linalg.solve(fit.cov_params().to_numpy(), diff))
    assert wald < chi2.ppf(0.999, df=len(truth)), wald
    assert ci.loc["ics"].iloc[1] < 0 and ci.loc["bmi_sds"].iloc[0] > 0  # the effects are detected
