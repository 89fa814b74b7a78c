"""``client.benchmark(...)``: one call for a benchmarking indicator (``benchmarking.indicators``).

    with Client(url, token) as hub:
        bench = hub.benchmark(
            "asthma admission within a year", outcome="admitted",
            risk_factors=["age_years", "male", "bmi_sds", "ics"], table=GROUND_TRUTH_TABLE,
        )
        print(bench.to_frame())
        bench.funnel_plot("funnel.png")

The study keywords are :mod:`phds.sdk.stats_methods`' (``hospitals``, ``organisation``, ``title``, …).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from phds.sdk.stats_methods import _given, table_spec

if TYPE_CHECKING:
    from phds.sdk.results_benchmark import BenchmarkResult

R = TypeVar("R")


class BenchmarkMethods:
    """The benchmarking method of :class:`phds.sdk.Client` (a mixin beside ``StatsMethods``)."""

    if TYPE_CHECKING:

        def _typed(self, cls: type[R], analysis: str, params: dict[str, Any], study: dict[str, Any]) -> R: ...

    def benchmark(
        self,
        indicator: str,
        *,
        outcome: str,
        outcome_type: Literal["binary", "continuous"] = "binary",
        risk_factors: Sequence[str] = (),
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        levels: Mapping[str, Sequence[str]] | None = None,
        reference_levels: Mapping[str, str] | None = None,
        coverage: float | None = None,
        **study: Any,
    ) -> BenchmarkResult:
        """Compare hospitals on *indicator*: crude and risk-adjusted (O/E) with funnel-plot flags."""
        params: dict[str, Any] = {
            "table": table_spec(dataset, table),
            "indicator": indicator,
            "outcome": outcome,
            "outcome_type": outcome_type,
            "risk_factors": list(risk_factors),
        }
        params.update(
            _given(
                levels={k: list(v) for k, v in levels.items()} if levels else None,
                reference_levels=dict(reference_levels) if reference_levels else None,
                coverage=coverage,
            )
        )
        study.setdefault("title", f"Benchmarking: {indicator}")
        from phds.sdk.results_benchmark import BenchmarkResult

        return self._typed(BenchmarkResult, "benchmarking.indicators", params, study)


__all__ = ["BenchmarkMethods"]
