"""One call per statistic: build the study, submit it, wait for it and return the typed result.

    with Client(url, token) as hub:
        fit = hub.glm("DIS_DIAB ~ GENDER * PM_BMI_CONTINUOUS + LAB_HDL", family="binomial", dataset="cnsim")
        print(fit.summary())
        fit.plot("forest.png")

Every method takes the analysis's own parameters, then the table (``dataset="cnsim"`` for a tabular
dataset registered at the nodes, or ``table={...}`` for an OMOP cohort table, see
:class:`phds.analyses.tables.TableSpec`), then the study's: ``hospitals`` (default: every hospital in the
catalogue), ``organisation`` (default: the token's), ``title``, ``purpose``, ``service_type`` (default
``analytical_study``), ``deadline_seconds``, and for waiting ``timeout`` and ``progress``. A study that
ends without a result raises :class:`~phds.errors.Conflict` with the hub's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from phds.errors import Conflict, InputError, PhdsError
from phds.protocol.studies import StudyView

if TYPE_CHECKING:
    from phds.sdk.client import Study
    from phds.sdk.results import StudyResult
    from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
    from phds.sdk.results_stats import CoxResult, GlmResult, KmResult

R = TypeVar("R")
Progress = Callable[[StudyView], None]


def table_spec(dataset: str | None, table: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"dataset": …}`` or the given table; exactly one of them."""
    if (dataset is None) == (table is None):
        raise InputError(
            "give either dataset= (a tabular dataset) or table= (an OMOP cohort table)", field="table"
        )
    return {"dataset": dataset} if dataset is not None else dict(table or {})


class StatsMethods:
    """Convenience methods of :class:`phds.sdk.Client` for the federated statistics."""

    if TYPE_CHECKING:

        def submit(self, study: Mapping[str, Any]) -> Study: ...
        def wait(
            self, study_id: str, *, timeout: float | None = None, progress: Progress | None = None
        ) -> StudyView: ...
        def results(
            self, study_id: str, *, wait: bool = False, progress: Progress | None = None
        ) -> StudyResult: ...
        def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...

    def run(
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
    ) -> StudyResult:
        """Submit *analysis* with *params* as a study, wait for it, and return its typed result.

        *dp* is the study's ``dp:`` block (e.g. ``{"epsilon": 1.0}``) and *secure_aggregation* asks for
        network sums only; each node still applies the stricter of these and its own policy."""
        spec: dict[str, Any] = {
            "title": title or f"{analysis} from the PHDS SDK",
            "purpose": purpose or f"{analysis} requested through the PHDS SDK",
            "organisation": organisation or self._request("GET", "/me")["organisation"],
            "service_type": service_type,
            "hospitals": list(hospitals) if hospitals is not None else self._catalogue_hospitals(),
            "analysis": {"name": analysis, "params": dict(params)},
        }
        if deadline_seconds is not None:
            spec["deadline_seconds"] = deadline_seconds
        if dp is not None:
            spec["dp"] = dict(dp)
        if secure_aggregation:
            spec["secure_aggregation"] = True
        study = self.submit(spec)
        view = self.wait(study.id, timeout=timeout, progress=progress)
        if not view.state.is_final:
            raise Conflict(f"study {view.id} is still {view.state.value} after {timeout} s; fetch it later")
        return self.results(view.id)

    def _catalogue_hospitals(self) -> list[str]:
        names = [str(e["hospital"]) for e in self._request("GET", "/catalogue")]
        if not names:
            raise InputError(
                "no hospital has published a catalogue entry; name them with hospitals=", field="hospitals"
            )
        return names

    def glm(
        self,
        formula: str,
        *,
        family: str = "gaussian",
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        offset: str | None = None,
        weights: str | None = None,
        reference_levels: Mapping[str, str] | None = None,
        **study: Any,
    ) -> GlmResult:
        """Fit a federated GLM (``stats.glm``): R-style *formula*, ``gaussian``/``binomial``/``poisson``."""
        params: dict[str, Any] = {"table": table_spec(dataset, table), "formula": formula, "family": family}
        params.update(_given(offset=offset, weights=weights, reference_levels=reference_levels))
        study.setdefault("title", f"GLM ({family}): {formula}")
        from phds.sdk.results_stats import GlmResult

        return self._typed(GlmResult, "stats.glm", params, study)

    def cox(
        self,
        duration: str,
        event: str,
        covariates: Sequence[str],
        *,
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        ties: str = "efron",
        stratified_by_hospital: bool = True,
        **options: Any,
    ) -> CoxResult:
        """Fit a federated Cox model (``survival.cox``), stratified by hospital unless told otherwise.

        ``time_origin``, ``time_width``, ``min_risk_set`` and ``max_iterations`` pass through; every other
        keyword is the study's."""
        params: dict[str, Any] = {
            "table": table_spec(dataset, table), "duration": duration, "event": event,
            "covariates": list(covariates), "ties": ties, "stratified_by_hospital": stratified_by_hospital,
        }  # fmt: skip
        for key in ("time_origin", "time_width", "min_risk_set", "max_iterations"):
            if key in options:
                params[key] = options.pop(key)
        options.setdefault("title", f"Cox model of {duration}/{event} on {', '.join(covariates)}")
        from phds.sdk.results_stats import CoxResult

        return self._typed(CoxResult, "survival.cox", params, options)

    def km(
        self,
        duration: str,
        event: str,
        *,
        group: str | None = None,
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> KmResult:
        """Kaplan–Meier curves (``survival.km``), by *group* when given.

        Other analysis parameters (e.g. ``time_width``) pass through by name as the analysis defines
        them; the study's keywords are taken out first."""
        params: dict[str, Any] = {"table": table_spec(dataset, table), "duration": duration, "event": event}
        params.update(_given(group=group))
        study = {k: options.pop(k) for k in list(options) if k in STUDY_KEYS}
        params.update(options)
        study.setdefault("title", f"Kaplan–Meier of {duration}/{event}" + (f" by {group}" if group else ""))
        from phds.sdk.results_stats import KmResult

        return self._typed(KmResult, "survival.km", params, study)

    def summary(
        self,
        variable: str,
        *,
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        quantiles: Sequence[float] = (0.25, 0.5, 0.75),
        **study: Any,
    ) -> SummaryResult:
        """n, missing, mean, SD and federated quantiles of a numeric *variable* (``stats.summary``)."""
        params = {"table": table_spec(dataset, table), "variable": variable, "quantiles": list(quantiles)}
        study.setdefault("title", f"Summary of {variable}")
        from phds.sdk.results_descriptive import SummaryResult

        return self._typed(SummaryResult, "stats.summary", params, study)

    def table(
        self,
        rows: str,
        columns: str | None = None,
        *,
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        levels: Mapping[str, Sequence[str]] | None = None,
        **study: Any,
    ) -> TableResult:
        """A one- or two-way contingency table with a chi-square test (``stats.table``)."""
        params: dict[str, Any] = {"table": table_spec(dataset, table), "rows": rows}
        params.update(_given(columns=columns, levels={k: list(v) for k, v in (levels or {}).items()} or None))
        study.setdefault("title", f"Table of {rows}" + (f" by {columns}" if columns else ""))
        from phds.sdk.results_descriptive import TableResult

        return self._typed(TableResult, "stats.table", params, study)

    def characterisation(
        self,
        cohorts: Sequence[Mapping[str, Any]],
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        levels: Mapping[str, Sequence[str]] | None = None,
        compare: tuple[str, str] | None = None,
        **study: Any,
    ) -> CharacterisationResult:
        """Table 1 of *cohorts* (``stats.characterisation``): each ``{"label", "table", "where"}``."""
        params: dict[str, Any] = {
            "cohorts": [dict(c) for c in cohorts], "numeric": list(numeric), "categorical": list(categorical),
        }  # fmt: skip
        params.update(_given(levels={k: list(v) for k, v in (levels or {}).items()} or None, compare=compare))
        study.setdefault("title", "Table 1: " + ", ".join(str(c.get("label")) for c in cohorts))
        from phds.sdk.results_descriptive import CharacterisationResult

        return self._typed(CharacterisationResult, "stats.characterisation", params, study)

    def _typed(self, cls: type[R], analysis: str, params: dict[str, Any], study: dict[str, Any]) -> R:
        unknown = set(study) - STUDY_KEYS
        if unknown:
            raise InputError(f"unknown keyword(s): {', '.join(sorted(unknown))}", field="params")
        result = self.run(analysis, params, **study)
        if not isinstance(result, cls):
            raise PhdsError(f"the hub's result of {analysis} is not a {cls.__name__}")
        return result


STUDY_KEYS = {
    "hospitals", "organisation", "title", "purpose", "service_type", "deadline_seconds",
    "timeout", "progress",
}  # fmt: skip


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
