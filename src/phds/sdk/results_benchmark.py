"""The typed result of ``benchmarking.indicators``: :class:`BenchmarkResult`.

One row per hospital as the hub labelled it (the requester's own hospital named, the others under this
study's pseudonyms, unless every hospital allowed names): n, observed O (as the gate released it: a
suppressed count stays ``"<5"``), expected E from the federated risk model, O/E with its exact Poisson
interval, the crude rate (proportion, or mean for a continuous indicator) with its exact Clopper–Pearson
(or t) interval, and where each lies against the funnel plot's 95% and 99.8% control limits
(:mod:`phds.analyses.benchmarking_stats`). :meth:`BenchmarkResult.funnel_plot` draws them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from phds.protocol.studies import StudyView
from phds.sdk.results import StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = [
    "hospital",
    "own",
    "n",
    "observed",
    "expected",
    "o_e",
    "o_e_lower",
    "o_e_upper",
    "crude",
    "crude_lower",
    "crude_upper",
    "flag",
    "crude_flag",
]


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


class BenchmarkResult(StudyResult):
    """Indicators per hospital: crude and risk-adjusted, with exact intervals and funnel-plot flags."""

    analysis = "benchmarking.indicators"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.indicator: str = str(raw.get("indicator") or "")
        self.outcome: str = str(raw.get("outcome") or "")
        self.outcome_type: str = str(raw.get("outcome_type") or "binary")
        self.coverage: float = float(raw.get("coverage") or 0.95)
        self.names_disclosed: bool = bool(raw.get("names_disclosed"))
        self.target: float = _num(raw.get("target"))
        self.target_sd: float = _num(raw.get("target_sd"))
        self.dispersion: float = float(raw.get("dispersion") or 1.0)
        self.model: dict[str, Any] = dict(raw.get("model") or {})
        self.rows: list[dict[str, Any]] = list(raw.get("rows") or [])

    def to_frame(self) -> pd.DataFrame:
        """One row per hospital: ``n``, ``observed`` (NaN when suppressed; ``observed_display`` keeps
        ``"<5"``), ``expected``, ``o_e`` and its interval, ``crude`` and its interval, ``flag`` (O/E
        against the funnel limits) and ``crude_flag``; indexed by the hospital's label."""
        records = []
        for r in self.rows:
            ratio_ci = r.get("ratio_ci") or [None, None]
            crude_ci = r.get("crude_ci") or [None, None]
            records.append(
                {
                    "hospital": r["hospital"],
                    "own": bool(r.get("own")),
                    "n": int(r["n"]),
                    "observed": _num(r.get("observed")),
                    "expected": _num(r.get("expected")),
                    "o_e": _num(r.get("ratio")),
                    "o_e_lower": _num(ratio_ci[0]),
                    "o_e_upper": _num(ratio_ci[1]),
                    "crude": _num(r.get("crude")),
                    "crude_lower": _num(crude_ci[0]),
                    "crude_upper": _num(crude_ci[1]),
                    "flag": r.get("flag"),
                    "crude_flag": r.get("crude_flag"),
                }
            )
        frame = pd.DataFrame(records, columns=COLUMNS).set_index("hospital")
        frame["observed_display"] = [str(r.get("observed_display", "")) for r in self.rows]
        return frame

    def outliers(self, limit: str = "99.8%") -> list[str]:
        """The hospitals whose O/E lies beyond the *limit* (``"95%"`` or ``"99.8%"``) control limit."""
        marks = ("(99.8%)",) if limit == "99.8%" else ("(95%)", "(99.8%)")
        return [str(r["hospital"]) for r in self.rows if any(m in str(r.get("flag")) for m in marks)]

    def funnel_plot(self, path: str | Path | None = None) -> Figure:
        """The funnel plots (:func:`phds.sdk.plots_funnel.funnel_plot`); written to *path* (.png/.svg)."""
        from phds.sdk.plots import save
        from phds.sdk.plots_funnel import funnel_plot

        fig = funnel_plot(self)
        if path is not None:
            save(fig, path)
        return fig

    plot = funnel_plot

    def summary(self) -> str:
        """The indicator table as text."""
        frame = self.to_frame()
        shown = frame[["n", "observed_display", "expected", "o_e", "o_e_lower", "o_e_upper", "crude", "flag"]]
        head = f"{self.indicator} ({self.outcome_type}; risk model {self.model.get('formula', '')})"
        return f"{head}\n{shown.to_string(float_format=lambda v: f'{v:.4g}')}"


__all__ = ["BenchmarkResult"]
