"""The requester's SDK: submit studies to a PHDS hub, follow them, and read typed results.

    from phds.sdk import Client

    with Client("https://hub.example", token) as hub:
        study = hub.submit("asthma-feasibility.yaml")
        result = study.results()           # waits on the hub's long poll
        print(result.to_frame())           # one row per hospital and a network total

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
from phds.sdk.studyfile import load_study

__all__ = [
    "Attribution",
    "Client",
    "FeasibilityResult",
    "GenericResult",
    "MeanVarianceResult",
    "Study",
    "StudyResult",
    "Total",
    "load_study",
]
