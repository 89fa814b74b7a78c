"""The asthma cohort on a synthetic paediatric hospital with the shipped vocabulary (concept_ancestor)."""

from __future__ import annotations

from pathlib import Path

from phds.cohorts import count_cohort, parse_cohort
from phds.omop.store import open_store
from phds.omop.vocabulary.concepts import ASTHMA

DATA = Path(__file__).parent / "data"

# data/asthma.yaml by hand: first asthma-or-descendant diagnosis in observation, salbutamol or a descendant
# starting within 365 days of it in the same observation period, Circe age (index year - birth year) 2-11.
ASTHMA_SQL = """
WITH asthma AS (
  SELECT descendant_concept_id AS id FROM concept_ancestor WHERE ancestor_concept_id = 317009
  UNION SELECT 317009),
salbutamol AS (
  SELECT descendant_concept_id AS id FROM concept_ancestor WHERE ancestor_concept_id = 1154343
  UNION SELECT 1154343),
ev AS (
  SELECT co.person_id, co.condition_start_date AS d,
         op.observation_period_start_date AS ops, op.observation_period_end_date AS ope,
         row_number() OVER (PARTITION BY co.person_id ORDER BY co.condition_start_date) AS rn
  FROM condition_occurrence co
  JOIN observation_period op ON op.person_id = co.person_id
   AND co.condition_start_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
  WHERE co.condition_concept_id IN (SELECT id FROM asthma))
SELECT count(DISTINCT ev.person_id) FROM ev JOIN person p ON p.person_id = ev.person_id
WHERE ev.rn = 1 AND year(ev.d) - p.year_of_birth BETWEEN 2 AND 11 AND EXISTS (
  SELECT 1 FROM drug_exposure de
  WHERE de.person_id = ev.person_id AND de.drug_concept_id IN (SELECT id FROM salbutamol)
    AND de.drug_exposure_start_date BETWEEN ev.d - INTERVAL 365 DAY AND ev.d + INTERVAL 365 DAY
    AND de.drug_exposure_start_date BETWEEN ev.ops AND ev.ope)
"""


def test_asthma_cohort_on_a_synthetic_hospital_equals_hand_written_sql(synthetic_hospital: Path) -> None:
    with open_store(f"duckdb:///{synthetic_hospital}", read_only=True) as store:
        descendants = store.execute(
            "SELECT count(*) FROM concept_ancestor WHERE ancestor_concept_id = ?", [ASTHMA]
        )
        assert descendants[0][0] > 1  # the shipped vocabulary knows asthma's descendants
        expected = store.execute(ASTHMA_SQL)[0][0]
        counts = count_cohort(
            store, parse_cohort((DATA / "asthma.yaml").read_text()), breakdowns=["sex", "age_group"]
        )
        assert counts.total == expected > 0
        assert sum(counts.table("sex").values()) == counts.total
        assert set(counts.table("age_group")) <= {
            "child (2-11 y)",
            "adolescent (12-17 y)",
            "infant (28 d-23 m)",
        }
