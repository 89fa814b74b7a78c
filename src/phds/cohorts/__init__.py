"""Cohort definitions to relations: OHDSI Circe JSON (ATLAS exports) through ohdsi-circepy, plus a YAML form.

Hub side: :func:`parse_cohort` checks a definition (supported subset, concept references) before any
node is asked to run it; :func:`validate_concepts` checks its concepts against a vocabulary.
Node side: :class:`CohortBuilder` compiles definitions on the node's CDM store (cached by fingerprint)
and :func:`count_cohort` returns exact counts with breakdowns for the disclosure gate to transform.
"""

from __future__ import annotations

from phds.cohorts.build import BuiltCohort, CohortBuilder
from phds.cohorts.circe import CohortDefinition, parse_cohort, validate_concepts
from phds.cohorts.count import (
    BREAKDOWNS,
    CohortCounts,
    CountCell,
    builder_for,
    count_cohort,
    count_cohort_persons,
)
from phds.cohorts.yaml_form import YamlCohort, compile_yaml

__all__ = [
    "BREAKDOWNS",
    "BuiltCohort",
    "CohortBuilder",
    "CohortCounts",
    "CohortDefinition",
    "CountCell",
    "YamlCohort",
    "builder_for",
    "compile_yaml",
    "count_cohort",
    "count_cohort_persons",
    "parse_cohort",
    "validate_concepts",
]
