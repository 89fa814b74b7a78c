"""Typed results of the federated models: ``stats.glm`` → :class:`GlmResult`, ``survival.cox`` →
:class:`CoxResult`, ``survival.km`` → :class:`KmResult`.

Each prints a summary laid out like R's ``summary()`` (and statsmodels'), gives its tables as pandas
DataFrames and draws itself with :meth:`plot` (see :mod:`phds.sdk.plots`). Only what the hub sent is
shown: the pooled estimates; per-hospital estimates only where the analysis released them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from phds.protocol.studies import StudyView
from phds.sdk.results import StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "NA"
    return "<2e-16" if p < 2e-16 else f"{p:.3g}"


def _stars(p: float) -> str:
    if math.isnan(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def format_table(frame: pd.DataFrame, p_column: str | None, digits: int = 5) -> str:
    """A coefficient table as R prints it: significant digits, p-values as ``<2e-16``, stars."""
    text = frame.copy().astype(object)
    for column in frame.columns:
        if column == p_column:
            text[column] = [_p_text(float(v)) for v in frame[column]]
        elif pd.api.types.is_float_dtype(frame[column]):
            text[column] = [f"{float(v):.{digits}g}" for v in frame[column]]
    if p_column is not None:
        text[""] = [_stars(float(v)) for v in frame[p_column]]
    return text.to_string()


SIGNIF = "---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


class _Plottable(StudyResult):
    def plot(self, path: str | Path | None = None) -> Figure:
        """Draw this result (:func:`phds.sdk.plots.plot_result`); also write *path* (.png/.svg) if given."""
        from phds.sdk.plots import plot_result

        return plot_result(self, path)


class GlmResult(_Plottable):
    """A federated generalised linear model: coefficients, deviances, AIC, iterations."""

    analysis = "stats.glm"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.formula: str | None = raw.get("formula") or study.spec.analysis.params.get("formula")
        self.family: str = str(raw.get("family") or study.spec.analysis.params.get("family") or "gaussian")
        self.link: str | None = raw.get("link")
        self.n: int = int(raw.get("n_obs") or raw.get("n") or 0)
        self.coefficients: list[dict[str, Any]] = list(raw.get("coefficients") or [])
        self.statistic: str = str(raw.get("statistic") or "z")
        self.dispersion: float = _num(raw.get("dispersion"))
        self.null_deviance: float = _num(raw.get("null_deviance"))
        self.df_null: int | None = raw.get("df_null")
        self.deviance: float = _num(raw.get("deviance"))
        self.df_residual: int | None = raw.get("df_residual")
        self.log_likelihood: float = _num(raw.get("log_likelihood"))
        self.aic: float = _num(raw.get("aic"))
        self.iterations: int | None = raw.get("iterations")
        self.converged: bool | None = raw.get("converged")
        self.by_hospital: dict[str, Any] = dict(raw.get("by_hospital") or raw.get("hospitals_detail") or {})

    @property
    def params(self) -> pd.Series:
        """The estimates by term (like statsmodels' ``.params``)."""
        frame = self.to_frame()
        return frame["estimate"]

    def to_frame(self) -> pd.DataFrame:
        """One row per term: ``estimate``, ``std_error``, ``statistic``, ``p_value``, ``ci_lower``,
        ``ci_upper`` (the Wald 95% interval)."""
        columns = ["estimate", "std_error", "statistic", "p_value", "ci_lower", "ci_upper"]
        rows = [{"term": c["term"], **{k: _num(c.get(k)) for k in columns}} for c in self.coefficients]
        return pd.DataFrame(rows, columns=["term", *columns]).set_index("term")

    def summary(self) -> str:
        """The model as R's ``summary(glm)`` prints it, with 95% Wald intervals."""
        stat = self.statistic
        frame = self.to_frame().rename(
            columns={
                "estimate": "Estimate",
                "std_error": "Std. Error",
                "statistic": f"{stat} value",
                "p_value": f"Pr(>|{stat}|)",
                "ci_lower": "[0.025",
                "ci_upper": "0.975]",
            }
        )
        frame.index.name = None
        dispersion = "" if math.isnan(self.dispersion) else f"{self.dispersion:.6g}"
        scale = "taken to be 1" if self.family in ("binomial", "poisson") else f"{dispersion}"
        lines = [
            self._header(),
            "",
            f"Call:  glm(formula = {self.formula}, family = {self.family}"
            + (f'(link = "{self.link}"))' if self.link else ")"),
            "",
            "Coefficients:",
            format_table(frame, f"Pr(>|{stat}|)"),
            SIGNIF,
            "",
            f"(Dispersion parameter for {self.family} family {scale})",
            "",
            f"    Null deviance: {self.null_deviance:.6g}  on {self.df_null} degrees of freedom",
            f"Residual deviance: {self.deviance:.6g}  on {self.df_residual} degrees of freedom",
            f"AIC: {self.aic:.6g}    Log-likelihood: {self.log_likelihood:.6g}    n = {self.n}",
            "",
            f"Number of Fisher Scoring iterations: {self.iterations}"
            + ("" if self.converged in (None, True) else "  (NOT CONVERGED)"),
        ]
        lines += [f"Note: {note}" for note in self.raw.get("notes") or []]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class CoxResult(_Plottable):
    """A federated Cox proportional-hazards model: coefficients, hazard ratios, likelihood-ratio test."""

    analysis = "survival.cox"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.coefficients: list[dict[str, Any]] = list(raw.get("coefficients") or [])
        self.log_likelihood: float = _num(raw.get("log_likelihood"))
        self.log_likelihood_null: float = _num(raw.get("log_likelihood_null"))
        self.lr_test: dict[str, Any] = dict(raw.get("lr_test") or {})
        self.n: int | None = raw.get("n") or raw.get("n_obs")
        self.events: int | None = raw.get("events") or raw.get("n_events")
        self.ties: str | None = raw.get("ties") or study.spec.analysis.params.get("ties")
        self.by_hospital: dict[str, Any] = dict(raw.get("by_hospital") or {})

    def to_frame(self) -> pd.DataFrame:
        """One row per covariate: ``coef``, ``exp_coef`` (the hazard ratio), ``se``, ``z``, ``p``,
        ``hr_lower_95``, ``hr_upper_95``."""
        columns = ["coef", "exp_coef", "se", "z", "p", "hr_lower_95", "hr_upper_95"]
        rows = []
        for c in self.coefficients:
            row = {k: _num(c.get(k)) for k in columns}
            row["exp_coef"] = _num(c.get("hazard_ratio", c.get("exp_coef")))
            rows.append({"covariate": c.get("covariate") or c.get("term"), **row})
        return pd.DataFrame(rows, columns=["covariate", *columns]).set_index("covariate")

    @property
    def hazard_ratios(self) -> pd.Series:
        """exp(coef) by covariate."""
        return self.to_frame()["exp_coef"]

    def summary(self) -> str:
        """The model as R's ``summary(coxph)`` prints it."""
        frame = self.to_frame().rename(
            columns={
                "exp_coef": "exp(coef)",
                "se": "se(coef)",
                "p": "Pr(>|z|)",
                "hr_lower_95": "lower .95",
                "hr_upper_95": "upper .95",
            }
        )
        frame.index.name = None
        counts = f"  n= {self.n}, number of events= {self.events}" if self.n is not None else ""
        mode = str(self.raw.get("mode") or "").replace("_", " ")
        model = f"Cox proportional hazards (ties: {self.ties or 'efron'}{'; ' + mode if mode else ''})"
        lines = [self._header(), "", model, counts]
        lines += ["", format_table(frame, "Pr(>|z|)"), SIGNIF, ""]
        lines.append(f"Log-likelihood: {self.log_likelihood:.6g} (null model {self.log_likelihood_null:.6g})")
        if self.lr_test:
            lr = self.lr_test
            lines.append(
                f"Likelihood ratio test= {_num(lr.get('statistic')):.4g}  on {lr.get('df')} df,"
                f"   p={_p_text(_num(lr.get('p')))}"
            )
        lines += [f"Note: {note}" for note in self.raw.get("notes") or []]
        return "\n".join(line for line in lines if line is not None)

    def __str__(self) -> str:
        return self.summary()


class KmResult(_Plottable):
    """Kaplan–Meier curves on the agreed time bins: pooled, per group, per hospital; at-risk and log-rank.

    Each curve is a list of bins (``start``, ``end`` (None for the last, open bin), ``at_risk`` at the
    bin's start, ``events``, ``censored``, ``survival`` after the bin's events, ``se``, and the 95% band
    ``ci_lower_95``/``ci_upper_95``)."""

    analysis = "survival.km"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.pooled: list[dict[str, Any]] = [dict(b) for b in raw.get("pooled") or []]
        self.by_group: dict[str, list[dict[str, Any]]] = {
            str(g): [dict(b) for b in bins] for g, bins in (raw.get("by_group") or {}).items()
        }
        self.by_hospital: dict[str, list[dict[str, Any]]] = {
            str(h): [dict(b) for b in bins] for h, bins in (raw.get("by_hospital") or {}).items()
        }
        self.log_rank: dict[str, Any] | None = raw.get("logrank") or raw.get("log_rank")
        self.group: str | None = study.spec.analysis.params.get("group")

    @property
    def curves(self) -> dict[str, list[dict[str, Any]]]:
        """The pooled curves to show: one per group, or the single pooled curve (``all``)."""
        return self.by_group or {"all": self.pooled}

    def to_frame(self, hospital: str | None = None) -> pd.DataFrame:
        """The life table, one row per bin: ``group``, ``start``, ``end``, ``at_risk``, ``events``,
        ``censored``, ``survival``, ``se``, ``ci_lower_95``, ``ci_upper_95`` (pooled, or *hospital*'s)."""
        curves = self.curves if hospital is None else {"all": self.by_hospital[hospital]}
        rows = [{"group": g, **point} for g, points in curves.items() for point in points]
        return pd.DataFrame(rows)

    def at_risk(self, times: Sequence[float]) -> pd.DataFrame:
        """Persons at risk at each of *times* in every pooled curve (exact at bin starts, else None)."""
        table = {group: [_at_risk(points, t) for t in times] for group, points in self.curves.items()}
        return pd.DataFrame(table, index=list(times)).T

    def summary(self) -> str:
        """Each pooled life table and the log-rank test."""
        lines = [self._header(), ""]
        frame = self.to_frame()
        for group in self.curves:
            part = frame[frame["group"] == group].drop(columns="group")
            title = "all persons" if group == "all" else f"{self.group} = {group}"
            lines += [f"{title}:", part.to_string(index=False, na_rep=""), ""]
        if self.log_rank:
            lr = self.log_rank
            lines.append(
                f"Log-rank test between {lr.get('groups', 'groups')}:"
                f" chi-squared = {_num(lr.get('statistic')):.4g}"
                f" on {lr.get('df')} df, p = {_p_text(_num(lr.get('p')))}"
            )
        lines += [f"Note: {note}" for note in self.raw.get("notes") or []]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _at_risk(points: Sequence[Mapping[str, Any]], t: float) -> int | None:
    """At risk at *t*: the at-risk number of the bin *t* falls in (exact when *t* is a bin start)."""
    for point in points:
        end = point.get("end")
        if float(point["start"]) <= t and (end is None or t < float(end)):
            return int(point["at_risk"]) if float(point["start"]) == t else None
    return None
