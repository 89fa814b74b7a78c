"""What the result partials (``templates/results/*.html``) need beyond the typed results themselves.

The partials read the SDK's typed results (:mod:`phds.sdk.results_stats`,
:mod:`phds.sdk.results_descriptive`) and print their numbers; nothing here computes a statistic. These
helpers only lay numbers out: R's p-value text and significance stars, the exp() scale a binomial or
Poisson GLM is read on (as the forest plot draws it), the two-level header of a Table 1, and which
results have a plot. :func:`install` registers them in a Jinja environment (the portal's, at import of
:mod:`phds.web.pages.study_results`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment

from phds.sdk.results import FeasibilityResult, StudyResult
from phds.sdk.results_benchmark import BenchmarkResult
from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
from phds.sdk.results_learning import FitResult
from phds.sdk.results_stats import CoxResult, GlmResult, KmResult, _p_text, _stars

RATIO_LABELS = {"binomial": "Odds ratio", "poisson": "Rate ratio"}
TABLE_NAMES = {
    "stats.glm": "the coefficients",
    "survival.cox": "the hazard ratios",
    "survival.km": "the life tables",
    "stats.summary": "the per-hospital summary",
    "stats.table": "the table",
    "stats.characterisation": "Table 1",
    "stats.mean_variance": "the per-hospital counts",
    "feasibility.count": "the counts",
    "benchmarking.indicators": "the indicators per hospital",
    "synthetic.mst": "the synthetic rows",
}
"""What each analysis's CSV download holds (``table.csv``)."""
SIGNIF_LEGEND = "Significance: *** p < 0.001, ** p < 0.01, * p < 0.05, . p < 0.1"


def p_value(value: Any) -> str:
    """A p-value as R prints it (``<2e-16``, ``0.0123``; ``NA`` when missing)."""
    return _p_text(math.nan if value is None else float(value))


def stars(value: Any) -> str:
    """R's significance stars for a p-value."""
    return _stars(math.nan if value is None else float(value))


def glm_ratios(result: GlmResult) -> dict[str, tuple[float, float, float]]:
    """exp(estimate) and exp of its 95% interval by term, for a binomial (odds ratios) or Poisson (rate
    ratios) model; empty for other families. The intercept is left out, as in the forest plot."""
    if result.family not in RATIO_LABELS:
        return {}
    out: dict[str, tuple[float, float, float]] = {}
    for c in result.coefficients:
        if str(c["term"]) in ("Intercept", "(Intercept)"):
            continue
        values = [c.get(k) for k in ("estimate", "ci_lower", "ci_upper")]
        if all(v is not None for v in values):
            est, low, high = (math.exp(float(v)) for v in values)  # type: ignore[arg-type]
            out[str(c["term"])] = (est, low, high)
    return out


@dataclass(frozen=True)
class TableOne:
    """A Table 1 laid out for HTML: header groups (cohort, span), sites, and rows of display texts."""

    groups: list[tuple[str, int]]
    sites: list[str]
    rows: list[tuple[str, bool, list[str]]]  # label, is a level (indented), one text per column


def table_one(result: CharacterisationResult, hospitals: bool = True) -> TableOne:
    """The analysis's own Table 1 (:func:`phds.analyses.characterisation_render.table_one`) laid out."""
    frame = result.to_frame(hospitals=hospitals)
    groups: list[tuple[str, int]] = []
    columns: list[tuple[str, str]] = [(str(column[0]), str(column[1])) for column in frame.columns]
    for cohort, _site in columns:
        if groups and groups[-1][0] == cohort:
            groups[-1] = (cohort, groups[-1][1] + 1)
        else:
            groups.append((cohort, 1))
    labels = frame.attrs.get("labels") or [" ".join(map(str, k)) for k in frame.index]
    rows = [
        (str(label).strip(), str(label).startswith(" "), [str(v) for v in values])
        for label, values in zip(labels, frame.to_numpy().tolist(), strict=True)
    ]
    return TableOne(groups, [site for _, site in columns], rows)


def has_plot(result: StudyResult) -> bool:
    """Whether :func:`phds.sdk.plots.plot_result` draws this result (so the page shows the image)."""
    if isinstance(result, CharacterisationResult):
        return len(result.cohorts) == 2 and any(v.get("kind") == "categorical" for v in result.variables)
    if isinstance(result, GlmResult):
        return any(str(c["term"]) not in ("Intercept", "(Intercept)") for c in result.coefficients)
    if isinstance(result, CoxResult):
        return bool(result.coefficients)
    if isinstance(result, KmResult):
        return any(result.curves.values())
    if isinstance(result, BenchmarkResult):
        return any(r.get("ratio") is not None for r in result.rows)
    if isinstance(result, FitResult):
        return bool(result.roc)
    return isinstance(result, TableResult | SummaryResult | FeasibilityResult)


def display(count: Any) -> str:
    """A released count as released (``42``, ``<5``, ``40–44``, ``42 ± 5``); ``—`` when absent."""
    if count is None:
        return "—"
    if isinstance(count, Mapping):
        return str(count.get("display") or "—")
    return str(count)


WITHHELD_MARKS = ("<", "≥", "–", "±")


def withheld(text: Any) -> bool:
    """True for a released text that is not an exact count: withheld (``<5``, ``≥5``), an interval
    (``40–44``) or noisy (``42 ± 5``); the page marks those."""
    return any(mark in str(text) for mark in WITHHELD_MARKS)


def install(env: Environment) -> None:
    """Register the helpers as filters and globals of *env*."""
    env.filters.update(p_value=p_value, stars=stars, released=display)
    env.globals.update(
        glm_ratios=glm_ratios,
        table_one=table_one,
        has_plot=has_plot,
        withheld=withheld,
        ratio_labels=RATIO_LABELS,
        table_names=TABLE_NAMES,
        signif_legend=SIGNIF_LEGEND,
    )
