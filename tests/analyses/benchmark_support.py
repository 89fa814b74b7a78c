"""Simulated hospitals with different case mixes for the benchmarking tests, and their pooled rows.

Five hospitals from :func:`phds.omop.simulator.generate` (general, tertiary, respiratory/CF, neonatal,
neuro-endocrine), each with its own referral mix. Two indicators:

* binary: the generator's documented ground-truth outcome (docs/ground-truth.md), asthma admission within
  a year of the first asthma diagnosis, adjusted for age, sex, BMI SDS and inhaled corticosteroids (no
  hospital effect is planted, so no hospital should be a 99.8% outlier);
* continuous: length of stay (days) of each child's first inpatient admission, read from the same
  simulated CDMs into a tabular dataset per hospital (an admissions extract), adjusted for age and sex.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from phds.analyses.omop_table import GROUND_TRUTH_TABLE
from phds.analyses.tables import TableSpec, analysis_table
from phds.omop.simulator import generate
from phds.omop.vocabulary import concepts as c
from phds.protocol.studies import StudyView
from phds.sources import NodeData

SEED, PATIENTS, HOSPITALS = 3, 6000, 5
ADMISSION_RISKS = ["age_years", "male", "bmi_sds", "ics"]
BINARY: dict[str, Any] = {
    "table": GROUND_TRUTH_TABLE,
    "indicator": "asthma admission within a year",
    "outcome": "admitted",
    "risk_factors": ADMISSION_RISKS,
}
LOS: dict[str, Any] = {
    "table": {"dataset": "admissions"},
    "indicator": "length of stay of the first admission",
    "outcome": "los_days",
    "outcome_type": "continuous",
    "risk_factors": ["age_years", "male", "infant"],
}

_FIRST_ADMISSION = f"""
with first as (
  select person_id, visit_start_date as start, visit_end_date as stop,
         row_number() over (partition by person_id order by visit_start_date, visit_occurrence_id) as k
  from visit_occurrence where visit_concept_id = {c.INPATIENT_VISIT})
select (f.stop - f.start) as los_days,
       (f.start - make_date(p.year_of_birth, p.month_of_birth, p.day_of_birth)) / 365.25 as age_years,
       case when p.gender_concept_id = {c.MALE} then 1 else 0 end as male
from first f join person p using (person_id) where f.k = 1 order by f.person_id
"""


def simulate(folder: Path) -> dict[str, Path]:
    """The five simulated CDMs (DuckDB files) by hospital slug."""
    return {r.slug: r.path for r in generate(folder, hospitals=HOSPITALS, patients=PATIENTS, seed=SEED)}


def admissions_csv(cdm: Path, out: Path) -> Path:
    """Each child's first inpatient admission (LOS in days, age, sex) from a simulated CDM, as a CSV."""
    with duckdb.connect(str(cdm), read_only=True) as con:
        frame = con.sql(_FIRST_ADMISSION).df()
    frame["infant"] = (frame["age_years"] < 1).astype(int)
    frame.to_csv(out, index=False)
    return out


def pooled_rows(data: dict[str, NodeData], table: dict[str, Any], variables: list[str]) -> pd.DataFrame:
    """The complete-case rows of the analysis table at every hospital, with a ``hospital`` column."""
    spec = TableSpec.model_validate(table)
    frames = []
    for name, node in data.items():
        frame = analysis_table(node, spec, variables).to_pandas()[variables].dropna()
        frames.append(frame.assign(hospital=name))
    return pd.concat(frames, ignore_index=True)


REQUESTER = "acme-pharma"  # the organisation of tests/sdk/stats_support.finished_view


@pytest.fixture(scope="session")
def benchmark_view(tmp_path_factory: pytest.TempPathFactory) -> StudyView:
    """A finished benchmarking study as the hub returns it: five simulated hospitals with default policies,
    except that the first belongs to the requester (``own_organisations``), so it alone is named."""
    from phds.analyses.testing import Federation, everything_auto, node_runtime
    from phds.node.policy import BenchmarkingSettings

    from ..sdk.stats_support import finished_view

    folder = tmp_path_factory.mktemp("bench-view")
    cdms = simulate(folder / "cdm")
    own = next(iter(cdms))
    runtimes = {}
    for slug, path in cdms.items():
        settings = BenchmarkingSettings(own_organisations=[REQUESTER] if slug == own else [])
        policy = everything_auto().model_copy(update={"benchmarking": settings})
        runtimes[slug] = node_runtime(slug, folder / slug, omop={"cdm": f"duckdb:///{path}"}, policy=policy)
    try:
        run = Federation(runtimes=runtimes).run("benchmarking.indicators", BINARY, requester=REQUESTER)
    finally:
        for runtime in runtimes.values():
            runtime.close()
    assert run.result is not None, (run.error, run.refused)
    return finished_view("benchmarking.indicators", BINARY, run.result, run.notes, tuple(cdms))
