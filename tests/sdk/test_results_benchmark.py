"""``BenchmarkResult`` over a real benchmarking run (five simulated hospitals, real gates): the table, the
outlier list and the funnel plot files, with numbers checked against the result and scipy."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scipy import stats

from phds.errors import InputError
from phds.protocol.studies import StudyView
from phds.sdk.result_registry import result_for
from phds.sdk.results_benchmark import BenchmarkResult

from ..analyses.benchmark_support import benchmark_view

__all__ = ["benchmark_view"]  # fixture


def test_the_registry_reads_a_benchmarking_study_as_a_benchmark_result(benchmark_view: StudyView) -> None:
    result = result_for(benchmark_view)
    assert isinstance(result, BenchmarkResult)
    frame = result.to_frame()
    assert list(frame.index) == [r["hospital"] for r in benchmark_view.result["rows"]]  # type: ignore[index]
    own = frame[frame["own"]]
    assert len(own) == 1 and not own.index[0].startswith("Hospital ")  # the requester's own, named
    assert all(h.startswith("Hospital ") for h in frame.index[~frame["own"]])
    for label, row in frame.iterrows():
        assert row["o_e"] == pytest.approx(row["observed"] / row["expected"])
        # the crude proportion's Clopper–Pearson interval, recomputed from scipy's beta quantiles
        x, n = int(row["observed"]), int(row["n"])
        assert row["crude_lower"] == pytest.approx(stats.beta.ppf(0.025, x, n - x + 1)), label
        assert row["crude_upper"] == pytest.approx(stats.beta.ppf(0.975, x + 1, n - x)), label
        assert row["observed_display"] == str(x)
    assert set(result.outliers("95%")) >= set(result.outliers("99.8%"))
    assert result.indicator in result.summary()


def test_the_funnel_plot_is_written_as_png_and_svg(benchmark_view: StudyView, tmp_path: Path) -> None:
    result = result_for(benchmark_view)
    assert isinstance(result, BenchmarkResult)
    png, svg = tmp_path / "funnel.png", tmp_path / "funnel.svg"
    fig = result.funnel_plot(png)
    result.funnel_plot(svg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.parse(svg).getroot().tag.endswith("svg")
    left, _right = fig.axes
    labels = {t.get_text() for t in left.texts}
    assert labels == set(result.to_frame().index)  # one labelled point per hospital
    # the outermost 99.8% upper limit at the largest E is 1 + 3.09/√E
    grid_high = max(float(line.get_xdata()[-1]) for line in left.lines if len(line.get_xdata()) > 2)
    upper = max(float(line.get_ydata()[-1]) for line in left.lines if len(line.get_xdata()) > 2)
    assert upper == pytest.approx(1 + stats.norm.ppf(0.999) / math.sqrt(grid_high), rel=1e-9)
    with pytest.raises(InputError):
        result.funnel_plot(tmp_path / "funnel.jpg")
