"""``client.fit(...)``: train a federated model in one call (``learning.fedavg`` / ``learning.fedprox``).

    with Client(url, token) as hub:
        fit = hub.fit(dataset="cnsim", outcome="DIS_DIAB",
                      numeric=["LAB_TSC", "LAB_HDL", "LAB_GLUC_ADJUSTED"], categorical={"GENDER": ["0", "1"]},
                      rounds=40, local_epochs=25, learning_rate=4.0, batch_size=0)
        fit.metrics, fit.plot("roc.png")

``algorithm="fedprox"`` with ``mu=`` chooses FedProx. Every other parameter of the analysis
(``model``, ``preprocessing``, ``clip_norm``, ``held_out_fraction``, ``round_deadline_seconds``, …)
passes by name; the study's keywords (``hospitals``, ``dp``, ``secure_aggregation``, ``title``, …) are
taken out first, as for :meth:`~phds.sdk.stats_methods.StatsMethods.run`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from phds.errors import InputError, PhdsError
from phds.sdk.stats_methods import STUDY_KEYS, Progress, table_spec

if TYPE_CHECKING:
    from phds.sdk.results import StudyResult
    from phds.sdk.results_learning import FitResult

FIT_STUDY_KEYS = STUDY_KEYS | {"dp", "secure_aggregation"}


class LearningMethods:
    """:meth:`fit` for :class:`phds.sdk.Client`."""

    if TYPE_CHECKING:

        def run(  # the signature of StatsMethods.run, which Client also inherits
            self,
            analysis: str,
            params: Mapping[str, Any],
            *,
            hospitals: Sequence[str] | None = None,
            organisation: str | None = None,
            title: str | None = None,
            purpose: str | None = None,
            service_type: str = "analytical_study",
            deadline_seconds: float | None = None,
            dp: Mapping[str, Any] | None = None,
            secure_aggregation: bool = False,
            timeout: float | None = None,
            progress: Progress | None = None,
        ) -> StudyResult: ...

    def fit(
        self,
        *,
        outcome: str,
        numeric: Sequence[str] = (),
        categorical: Mapping[str, Sequence[str]] | None = None,
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        algorithm: Literal["fedavg", "fedprox"] = "fedavg",
        model: str | Mapping[str, Any] = "logistic",
        **options: Any,
    ) -> FitResult:
        """Train a federated model of the binary *outcome* on the declared features; returns the
        :class:`~phds.sdk.results_learning.FitResult`."""
        if algorithm not in ("fedavg", "fedprox"):
            raise InputError("algorithm is fedavg or fedprox", field="algorithm")
        params: dict[str, Any] = {
            "table": table_spec(dataset, table),
            "outcome": outcome,
            "features": {
                "numeric": list(numeric),
                "categorical": {k: list(v) for k, v in (categorical or {}).items()},
            },
            "model": {"kind": model} if isinstance(model, str) else dict(model),
        }
        study = {k: options.pop(k) for k in list(options) if k in FIT_STUDY_KEYS}
        params.update(options)
        study.setdefault("title", f"{algorithm}: {outcome}")
        from phds.sdk.results_learning import FitResult

        result = self.run(f"learning.{algorithm}", params, **study)
        if not isinstance(result, FitResult):
            raise PhdsError(f"the hub's result of learning.{algorithm} is not a FitResult")
        return result


__all__ = ["LearningMethods"]
