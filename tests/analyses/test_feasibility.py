"""Feasibility counts on synthetic hospitals: exact where allowed, suppressed where small, bounded totals."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pytest

from phds.analyses import get_analysis
from phds.errors import DisclosureRefused, InputError
from phds.node.gate import GateContext
from phds.omop.simulator import generate
from phds.privacy.aggregates import CountAggregate
from phds.privacy.overlap import REASON

from .conftest import run_rounds

COHORT = resources.files("phds.demo").joinpath("asthma_salbutamol.yaml").read_text(encoding="utf-8")

# Independent SQL over the same CDM: first asthma (or descendant) diagnosis per person, aged 2-11 by
# Circe's rule (year of index minus year of birth), with any salbutamol (or descendant) exposure.
EXPECTED_SQL = """
WITH asthma AS (
  SELECT c.person_id, min(c.condition_start_date) AS index_date
  FROM condition_occurrence c JOIN concept_ancestor a ON a.descendant_concept_id = c.condition_concept_id
  WHERE a.ancestor_concept_id = 317009 GROUP BY c.person_id),
in_observation AS (
  SELECT s.* FROM asthma s JOIN observation_period o ON o.person_id = s.person_id
  AND s.index_date BETWEEN o.observation_period_start_date AND o.observation_period_end_date)
SELECT count(DISTINCT s.person_id) FROM in_observation s JOIN person p ON p.person_id = s.person_id
WHERE year(s.index_date) - p.year_of_birth BETWEEN 2 AND 11
  AND EXISTS (SELECT 1 FROM drug_exposure d
              JOIN concept_ancestor a ON a.descendant_concept_id = d.drug_concept_id
              WHERE a.ancestor_concept_id = 1154343 AND d.person_id = s.person_id)
"""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("synth")
    return [r.path for r in generate(out, hospitals=3, patients=3_000, seed=11)]


def test_counts_equal_independent_sql_and_the_network_total_adds_up(
    synthetic: list[Path], make_hospital: Any
) -> None:
    hospitals = [make_hospital(p.stem, omop={"cdm": f"duckdb:///{p}"}) for p in synthetic]
    final = run_rounds(
        get_analysis("feasibility.count"), {"cohort": COHORT, "breakdowns": ["sex", "age_group"]}, hospitals
    )
    expected = {}
    for path in synthetic:
        with duckdb.connect(str(path), read_only=True) as con:
            expected[path.stem] = con.execute(EXPECTED_SQL).fetchone()[0]  # type: ignore[index]
    result = final.result
    assert {h: result["hospitals"][h]["persons"]["value"] for h in expected} == expected
    assert result["total"]["exact"] and result["total"]["lower"] == sum(expected.values())
    for hospital, count in expected.items():
        by_sex = result["hospitals"][hospital]["breakdowns"]["sex"]
        released = [c["value"] for c in by_sex.values() if not c["suppressed"]]
        assert sum(released) <= count
        if all(not c["suppressed"] for c in by_sex.values()):
            assert sum(released) == count
    # Circe ages by calendar year (year of index minus year of birth), so a "2-year-old" may still be
    # 23 months old by the exact ICH E11 rule; nobody can be a newborn or an adolescent.
    assert set(result["breakdowns"]["age_group"]) <= {"infant (28 d-23 m)", "child (2-11 y)"}


def test_small_counts_leave_only_as_below_the_threshold_with_bounded_totals(
    synthetic: list[Path], make_hospital: Any
) -> None:
    # A policy of 11 (as PCORnet) at one hospital, and a cohort of very few persons.
    rare = "entry:\n  condition: {concepts: [317009], descendants: true}\nage: {min: 0, max: 0}\n"
    hospitals = [
        make_hospital(p.stem, omop={"cdm": f"duckdb:///{p}"}, min_cell_count=11 if i == 0 else 5)
        for i, p in enumerate(synthetic)
    ]
    final = run_rounds(get_analysis("feasibility.count"), {"cohort": rare}, hospitals)
    exact = []
    for path in synthetic:
        with duckdb.connect(str(path), read_only=True) as con:
            exact.append(
                con.execute(
                    "SELECT count(DISTINCT c.person_id) FROM condition_occurrence c "
                    "JOIN concept_ancestor a ON a.descendant_concept_id = c.condition_concept_id "
                    "JOIN person p ON p.person_id = c.person_id WHERE a.ancestor_concept_id = 317009 "
                    "AND year(c.condition_start_date) - p.year_of_birth = 0"
                ).fetchone()[0]  # type: ignore[index]
            )
    total = final.result["total"]
    assert total["lower"] <= sum(exact) <= total["upper"]
    for path, threshold, n in zip(synthetic, [11, 5, 5], exact, strict=True):
        persons = final.result["hospitals"][path.stem]["persons"]
        assert persons["threshold"] == threshold
        if 0 < n < threshold:
            assert persons["value"] is None and persons["display"] == f"<{threshold}"
        else:
            assert persons["value"] == n


def test_bad_cohorts_are_refused_at_the_hub_naming_where() -> None:
    analysis = get_analysis("feasibility.count")
    with pytest.raises(InputError, match=r"analysis\.params\.cohort"):
        analysis.check_at_hub(analysis.parse_params({"cohort": "{not json"}))
    with pytest.raises(InputError, match=r"analysis\.params\.breakdowns"):
        analysis.parse_params({"cohort": COHORT, "breakdowns": ["postcode"]})


def test_a_cohort_one_person_away_from_a_released_one_is_refused_to_any_requester(
    synthetic: list[Path], make_hospital: Any
) -> None:
    """The overlap guard remembers what was released from a dataset to every organisation: a count one
    person smaller, asked by another organisation, would give that person by subtraction."""
    hospital = make_hospital("guarded", omop={"cdm": f"duckdb:///{synthetic[0]}"})
    analysis = get_analysis("feasibility.count")
    wide = analysis.parse_params({"cohort": COHORT})
    payload = hospital.answer(analysis, wide, 1, {}, study_id="s1", requester="acme")
    assert payload["values"]["persons"]["value"] >= 2 * hospital.gate.k  # released exactly
    persons = next(a for a in _aggregates(hospital, analysis, wide) if a.name == "persons")
    assert isinstance(persons, CountAggregate)
    one_less = CountAggregate("persons", persons.persons.subset(slice(1, None)))
    for org in ("acme", "other-org"):  # the same requester, and a colluding other organisation
        with pytest.raises(DisclosureRefused) as refused:
            hospital.gate.release(GateContext(f"s-{org}", f"t-{org}", org, analysis.name), [one_less])
        assert refused.value.message == REASON  # names no count and no distance


def _aggregates(hospital: Any, analysis: Any, params: Any) -> list[Any]:
    from phds.analyses.context import LocalContext

    return list(analysis.local(LocalContext(data=hospital.data), params).aggregates)
