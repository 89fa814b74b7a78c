"""Which typed result class reads which analysis: :func:`result_for`.

The registry sits apart from the result classes so none of them imports another module late; the
portal, the SDK client and the tests all pick a study's result class here.
"""

from __future__ import annotations

from phds.protocol.studies import StudyView
from phds.sdk.results import FeasibilityResult, GenericResult, MeanVarianceResult, StudyResult
from phds.sdk.results_benchmark import BenchmarkResult
from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
from phds.sdk.results_learning import FedProxResult, FitResult
from phds.sdk.results_stats import CoxResult, GlmResult, KmResult
from phds.sdk.results_synthetic import SyntheticResult

RESULT_CLASSES: dict[str, type[StudyResult]] = {
    cls.analysis: cls
    for cls in (
        FeasibilityResult, MeanVarianceResult, SummaryResult, TableResult, CharacterisationResult,
        GlmResult, CoxResult, KmResult, FitResult, FedProxResult, BenchmarkResult, SyntheticResult,
    )
}  # fmt: skip
"""The typed result class of each analysis, by its name; any other analysis reads as GenericResult."""


def result_for(study: StudyView) -> StudyResult:
    """The typed result of a finished study, by its analysis name; :class:`GenericResult` otherwise."""
    return RESULT_CLASSES.get(study.spec.analysis.name, GenericResult)(study)
