"""The requester's SDK: submit studies to a PHDS hub, follow them, and read typed results.

    from phds.sdk import Client

    with Client("https://hub.example", token) as hub:
        study = hub.submit("asthma-feasibility.yaml")
        result = study.results()           # waits on the hub's long poll
        print(result.to_frame())           # one row per hospital and a network total

        fit = hub.glm("DIS_DIAB ~ GENDER + LAB_HDL", family="binomial", dataset="cnsim")
        print(fit.summary())               # as R's summary(glm); fit.plot("forest.png") draws it

Errors are :class:`phds.errors.PhdsError` subclasses, the same the hub raised.
"""

from phds.sdk.client import Client, Study
from phds.sdk.results import (
    Attribution,
    FeasibilityResult,
    GenericResult,
    MeanVarianceResult,
    StudyResult,
    Total,
)
from phds.sdk.results_benchmark import BenchmarkResult
from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
from phds.sdk.results_learning import FitResult
from phds.sdk.results_stats import CoxResult, GlmResult, KmResult
from phds.sdk.results_synthetic import SyntheticResult
from phds.sdk.studyfile import load_study

__all__ = [
    "Attribution",
    "BenchmarkResult",
    "CharacterisationResult",
    "Client",
    "CoxResult",
    "FeasibilityResult",
    "FitResult",
    "GenericResult",
    "GlmResult",
    "KmResult",
    "MeanVarianceResult",
    "Study",
    "StudyResult",
    "SummaryResult",
    "SyntheticResult",
    "TableResult",
    "Total",
    "load_study",
]
