"""The planted ground truth is recoverable from the CDM, and growth follows UK-WHO (rcpchgrowth)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import chi2

from phds.omop.simulator import codes, generate_hospital
from phds.omop.simulator import truth as tr
from phds.omop.simulator.casemix import PROFILES
from phds.omop.simulator.writers import open_sink
from phds.paediatrics.growth import sds, sds_from_value

N = 30_000
#: Fixed: each true coefficient falls outside its 95% CI in 5% of seeds, so a random seed would make the
#: five-coefficient check fail about one run in four. The joint Wald test below does not depend on luck.
SEED = 1


@pytest.fixture(scope="module")
def cdm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """The respiratory hospital (asthma × 1.8) with 30,000 children."""
    path = tmp_path_factory.mktemp("truth") / "west-respiratory.duckdb"
    sink = open_sink(path, "duckdb")
    generate_hospital(sink, PROFILES[2], index=2, patients=N, seed=SEED)
    sink.close()
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def cohort_sql() -> str:
    """The cohort, covariates and outcome exactly as docs/ground-truth.md defines them."""
    ics = ", ".join(str(c) for c in codes.ICS)
    bmi = codes.MEASUREMENT["bmi"][0]
    asthma = codes.CONDITION["asthma"]
    return f"""
    WITH first_asthma AS (
        SELECT person_id, condition_start_date AS index_date, visit_occurrence_id AS index_visit,
               row_number() OVER (PARTITION BY person_id
                                  ORDER BY condition_start_date, condition_occurrence_id) AS k
        FROM condition_occurrence WHERE condition_concept_id = {asthma}
    ), cohort AS (
        SELECT f.person_id, f.index_date, f.index_visit, p.gender_concept_id,
               make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth) AS birth_date
        FROM first_asthma f JOIN person p USING (person_id) JOIN observation_period o USING (person_id)
        WHERE f.k = 1 AND o.observation_period_end_date >= f.index_date + {tr.WINDOW_DAYS}
    )
    SELECT c.person_id,
           (c.index_date - c.birth_date) / 365.25 AS age_years,
           c.gender_concept_id,
           (c.gender_concept_id = {codes.MALE})::INT AS male,
           m.value_as_number AS bmi,
           EXISTS (SELECT 1 FROM drug_exposure d
                   WHERE d.person_id = c.person_id AND d.drug_concept_id IN ({ics})
                   AND d.drug_exposure_start_date
                       BETWEEN c.index_date AND c.index_date + {tr.ICS_WINDOW_DAYS})::INT AS ics,
           EXISTS (SELECT 1 FROM visit_occurrence v JOIN condition_occurrence a USING (visit_occurrence_id)
                   WHERE v.person_id = c.person_id AND v.visit_concept_id = {codes.INPATIENT}
                   AND a.condition_concept_id = {asthma}
                   AND v.visit_start_date
                       BETWEEN c.index_date + 1 AND c.index_date + {tr.WINDOW_DAYS})::INT AS admitted
    FROM cohort c JOIN measurement m
         ON m.visit_occurrence_id = c.index_visit AND m.measurement_concept_id = {bmi}
    ORDER BY c.person_id
    """


def cohort_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The cohort with ``bmi_sds`` computed by the vectorised UK-WHO LMS (rcpchgrowth's tables)."""
    df: pd.DataFrame = con.execute(cohort_sql()).df()
    df["bmi_sds"] = sds_from_value(
        "bmi", df["gender_concept_id"].to_numpy(), df["age_years"].to_numpy(), df["bmi"]
    )
    return df


def test_logistic_model_recovers_the_true_coefficients(cdm: duckdb.DuckDBPyConnection) -> None:
    df = cohort_frame(cdm)
    assert len(df) > 3_000 and df["bmi_sds"].notna().all()
    assert 0.03 < df["admitted"].mean() < 0.3
    names = ["age_years", "male", "bmi_sds", "ics"]
    x = sm.add_constant(df[names].astype(float))
    fit = sm.Logit(df["admitted"].astype(float), x).fit(disp=0)
    ci = fit.conf_int(alpha=0.05)
    truth = {"const": tr.COEFFICIENTS["intercept"], **{n: tr.COEFFICIENTS[n] for n in names}}
    for name, beta in truth.items():
        lo, hi = ci.loc[name]
        assert lo < beta < hi, f"{name}: true {beta} outside 95% CI ({lo:.3f}, {hi:.3f})"
    # jointly: the Wald statistic of (estimate - truth) is chi-square with 5 degrees of freedom
    diff = fit.params.to_numpy() - np.array(list(truth.values()))
    wald = float(diff @ np.linalg.solve(fit.cov_params().to_numpy(), diff))
    assert wald < chi2.ppf(0.999, df=len(truth)), wald
    # the data have power: ICS protection and the BMI effect are detected, a null ICS effect is rejected
    assert ci.loc["ics"][1] < 0 and ci.loc["bmi_sds"][0] > 0


def test_bmi_sds_at_index_is_what_rcpchgrowth_computes(cdm: duckdb.DuckDBPyConnection) -> None:
    df = cdm.execute(cohort_sql() + " LIMIT 200").df()
    vectorised = sds_from_value(
        "bmi", df["gender_concept_id"].to_numpy(), df["age_years"].to_numpy(), df["bmi"]
    )
    scalar = [
        sds("bmi", float(b), "male" if g == codes.MALE else "female", float(a))
        for b, g, a in zip(df["bmi"], df["gender_concept_id"], df["age_years"], strict=True)
    ]
    assert np.allclose(vectorised, scalar, atol=1e-6)


def _sample_sds(cdm: duckdb.DuckDBPyConnection, measure: str, obese: bool, n: int = 400) -> np.ndarray:
    """UK-WHO SDS by rcpchgrowth (scalar API) of one measurement each of *n* random children."""
    concept = codes.MEASUREMENT[measure][0]
    obesity = codes.CONDITION["obesity"]
    where = (
        f"m.person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = {obesity}) "
        f"AND m.measurement_date >= (SELECT min(condition_start_date) FROM condition_occurrence o "
        f"WHERE o.person_id = m.person_id AND o.condition_concept_id = {obesity})"
        if obese
        else "m.person_id NOT IN (SELECT person_id FROM condition_occurrence "
        f"WHERE condition_concept_id = {obesity})"
    )
    rows = cdm.execute(f"""
        SELECT * FROM (
            SELECT m.value_as_number, p.gender_concept_id,
                   (m.measurement_date
                    - make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth)) / 365.25
            FROM measurement m JOIN person p USING (person_id)
            WHERE m.measurement_concept_id = {concept} AND {where}
            QUALIFY row_number() OVER (PARTITION BY m.person_id ORDER BY m.measurement_id) = 1
            ORDER BY m.measurement_id
        ) USING SAMPLE reservoir({n} ROWS) REPEATABLE (7)""").fetchall()
    assert len(rows) == n
    values = [sds(measure, float(v), "male" if g == codes.MALE else "female", float(a)) for v, g, a in rows]  # type: ignore[arg-type]
    return np.array([z for z in values if np.isfinite(z)])


@pytest.mark.parametrize("measure", ["height", "bmi", "weight", "ofc"])
def test_growth_sds_of_children_without_obesity_is_standard_normal(
    cdm: duckdb.DuckDBPyConnection, measure: str
) -> None:
    z = _sample_sds(cdm, measure, obese=False)
    assert len(z) > 390
    assert abs(z.mean()) < 0.15, z.mean()  # 3 standard errors
    assert 0.87 < z.std() < 1.13, z.std()  # about 3.5 standard errors


def test_children_with_obesity_have_bmi_sds_above_the_obesity_cut_off(cdm: duckdb.DuckDBPyConnection) -> None:
    z = _sample_sds(cdm, "bmi", obese=True, n=200)
    assert z.mean() > 2.3
    assert np.mean(z > 2.05) > 0.9  # UK clinical obesity cut-off: 98th centile


def test_head_circumference_only_under_two_and_hba1c_plausible(cdm: duckdb.DuckDBPyConnection) -> None:
    ofc, hba1c = codes.MEASUREMENT["ofc"][0], codes.MEASUREMENT["hba1c"][0]
    max_age = cdm.execute(f"""SELECT max((measurement_date - make_date(p.year_of_birth, p.month_of_birth,
        p.day_of_birth)) / 365.25) FROM measurement JOIN person p USING (person_id)
        WHERE measurement_concept_id = {ofc}""").fetchone()
    assert max_age is not None and 1.9 < max_age[0] < 2.0
    lo, mid, hi = cdm.execute(
        f"SELECT min(value_as_number), median(value_as_number), max(value_as_number) FROM measurement "
        f"WHERE measurement_concept_id = {hba1c}"
    ).fetchone() or (0, 0, 0)
    assert 5 <= lo and 7 < mid < 9 and hi <= 16
    units = cdm.execute("SELECT count(*) FROM measurement WHERE unit_concept_id IS NULL").fetchone()
    assert units == (0,)


def test_admissions_follow_the_model_in_another_hospital_with_no_hospital_effect(
    cdm: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The general hospital's admissions match the model, and pooling it adds no hospital effect."""
    sink = open_sink(tmp_path / "north-general.duckdb", "duckdb")
    generate_hospital(sink, PROFILES[0], index=0, patients=15_000, seed=SEED)
    sink.close()
    with duckdb.connect(str(tmp_path / "north-general.duckdb"), read_only=True) as con:
        general = cohort_frame(con)
    x = tr.Covariates(
        general["age_years"].to_numpy(),
        general["male"].to_numpy(float),
        general["bmi_sds"].to_numpy(),
        general["ics"].to_numpy(float),
    )
    expected = tr.admission_probability(x).sum()
    assert abs(general["admitted"].sum() - expected) < 4 * np.sqrt(expected)

    pooled = pd.concat([cohort_frame(cdm).assign(general=0), general.assign(general=1)], ignore_index=True)
    names = ["age_years", "male", "bmi_sds", "ics", "general"]
    fit = sm.Logit(pooled["admitted"].astype(float), sm.add_constant(pooled[names].astype(float))).fit(disp=0)
    lo, hi = fit.conf_int(alpha=0.05).loc["general"]
    assert lo < tr.HOSPITAL_EFFECT < hi
