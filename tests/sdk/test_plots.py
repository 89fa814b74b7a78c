"""Plots are written as real PNG/SVG files and draw the result's own numbers (read back from the Figure)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from phds.errors import InputError
from phds.sdk.plots import plot_result, save
from phds.sdk.result_registry import result_for
from phds.sdk.results import StudyResult
from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
from phds.sdk.results_stats import CoxResult, GlmResult, KmResult

from .stats_support import PARAMS, finished_view, results, run_rounds_on, sites

__all__ = ["results", "sites"]  # fixtures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("key", list(PARAMS))
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_every_statistic_is_written_as_png_and_svg(
    results: dict[str, StudyResult], tmp_path: Path, key: str, suffix: str
) -> None:
    path = tmp_path / f"{key.replace(':', '-')}{suffix}"
    result = results[key]
    assert hasattr(result, "plot")
    fig = result.plot(path)
    assert isinstance(fig, Figure)
    data = path.read_bytes()
    assert len(data) > 2000
    if suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    else:
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:1000]
        assert result.study.spec.title.encode() in data  # text stays text in SVG


def _errorbars(fig: Figure, label: str) -> tuple[list[float], list[float], list[float]]:
    """(x, left whisker, right whisker) of the errorbar series *label* in the figure's first axes."""
    container = next(c for c in fig.axes[0].containers if c.get_label() == label)
    assert isinstance(container, ErrorbarContainer)
    line, _, (whiskers,) = container.lines
    assert line is not None
    segments = whiskers.get_segments()
    return [float(x) for x in line.get_xdata()], [s[0][0] for s in segments], [s[1][0] for s in segments]


def test_glm_forest_plot_draws_the_odds_ratios_with_their_intervals(results: dict[str, StudyResult]) -> None:
    fit = results["stats.glm"]
    assert isinstance(fit, GlmResult)
    fig = plot_result(fit)
    x, low, high = _errorbars(fig, "pooled")
    frame = fit.to_frame().drop(index="Intercept")
    assert x == pytest.approx([math.exp(v) for v in frame["estimate"]], rel=1e-12)
    assert low == pytest.approx([math.exp(v) for v in frame["ci_lower"]], rel=1e-12)
    assert high == pytest.approx([math.exp(v) for v in frame["ci_upper"]], rel=1e-12)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(frame.index)
    assert "no per-hospital estimates" in ax.get_title()


def test_cox_forest_plot_draws_the_hazard_ratios(results: dict[str, StudyResult]) -> None:
    fit = results["survival.cox"]
    assert isinstance(fit, CoxResult)
    x, low, high = _errorbars(plot_result(fit), "pooled")
    frame = fit.to_frame()
    assert x == pytest.approx(list(frame["exp_coef"]), rel=1e-12)
    assert low == pytest.approx(list(frame["hr_lower_95"]), rel=1e-12)
    assert high == pytest.approx(list(frame["hr_upper_95"]), rel=1e-12)


def test_summary_plot_draws_each_hospitals_mean_and_the_pooled_one(results: dict[str, StudyResult]) -> None:
    summary = results["stats.summary"]
    assert isinstance(summary, SummaryResult)
    fig = plot_result(summary)
    x, _, _ = _errorbars(fig, "hospitals")
    assert x == pytest.approx([summary.by_hospital[h]["mean"] for h in ("site1", "site2", "site3")])
    pooled, low, high = _errorbars(fig, "pooled")
    half = 1.96 * summary.sd / math.sqrt(summary.n)
    assert pooled == pytest.approx([summary.mean]) and low == pytest.approx([summary.mean - half])
    assert high == pytest.approx([summary.mean + half])


def test_km_plot_draws_the_pooled_steps_and_the_numbers_at_risk(results: dict[str, StudyResult]) -> None:
    km = results["survival.km"]
    assert isinstance(km, KmResult)
    fig = plot_result(km)
    curve, table = fig.axes
    pooled = next(line for line in curve.lines if line.get_label() == "pooled")
    life = km.to_frame()
    starts, survival = [float(s) for s in life["start"]], [float(s) for s in life["survival"]]
    assert pd.isna(life["end"].iloc[-1]) and len(starts) >= 2  # the last bin is open
    ends = [float(e) for e in life["end"].iloc[:-1]]
    assert list(pooled.get_xdata()) == [starts[0], *ends]  # a closed bin's survival from its end
    assert list(pooled.get_ydata()) == [1.0, *survival[:-1]]
    dotted = next(
        line for line in curve.lines if line.get_linestyle() == ":" and line.get_color() == pooled.get_color()
    )
    assert list(dotted.get_xdata())[:2] == [starts[-1], starts[-1]]  # the open bin's, from its start
    assert list(dotted.get_ydata()) == [survival[-2], survival[-1], survival[-1]]
    assert {line.get_label() for line in curve.lines} >= {"site1", "site2", "site3"}
    texts = {(round(t.get_position()[0], 9), t.get_text()) for t in table.texts}
    for start, at_risk in zip(starts, life["at_risk"], strict=True):
        assert (round(start, 9), str(at_risk)) in texts
    assert next(t.get_text() for t in table.get_yticklabels()) == "pooled"
    assert f"p = {km.raw['logrank']['p']:.3g}" in curve.get_title()


def test_grouped_km_plot_has_one_curve_and_at_risk_row_per_group(results: dict[str, StudyResult]) -> None:
    km = results["survival.km:group"]
    assert isinstance(km, KmResult)
    fig = plot_result(km)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert [label for label in labels if not label.startswith("_")] == ["fin = 0", "fin = 1"]
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["fin = 0", "fin = 1"]


def _bar_widths(fig: Figure, label: str) -> list[float]:
    container = next(c for c in fig.axes[0].containers if c.get_label() == label)
    return [float(p.get_width()) for p in container.patches]


def test_table_pyramid_has_the_two_sex_levels_as_its_sides(results: dict[str, StudyResult]) -> None:
    table = results["stats.table"]
    assert isinstance(table, TableResult)
    fig = plot_result(table)
    counts = table.counts().loc[["1", "2", "3"]]
    assert _bar_widths(fig, "0") == [-float(v) for v in counts["0"]]
    assert _bar_widths(fig, "1") == [float(v) for v in counts["1"]]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["1", "2", "3"]


def test_characterisation_pyramid_has_the_two_cohorts_as_its_sides(results: dict[str, StudyResult]) -> None:
    char = results["stats.characterisation"]
    assert isinstance(char, CharacterisationResult)
    fig = plot_result(char)
    bmi = next(v for v in char.variables if v["variable"] == "PM_BMI_CATEGORICAL")
    girls = [float(bmi["by_cohort"]["girls"]["pooled"][lv]["lower"]) for lv in ("1", "2", "3")]
    boys = [float(bmi["by_cohort"]["boys"]["pooled"][lv]["lower"]) for lv in ("1", "2", "3")]
    assert _bar_widths(fig, "girls") == [-v for v in girls]
    assert _bar_widths(fig, "boys") == boys


def test_unknown_formats_and_analyses_are_refused(results: dict[str, StudyResult], tmp_path: Path) -> None:
    fig = plot_result(results["stats.glm"])
    with pytest.raises(InputError, match=r"\.png or \.svg"):
        save(fig, tmp_path / "forest.pdf")
    assert not (tmp_path / "forest.pdf").exists()
    generic = result_for(finished_view("system.noop", {}, {"ok": True}, []))
    with pytest.raises(InputError, match=r"no plot for analysis system\.noop"):
        plot_result(generic, tmp_path / "noop.png")


def test_age_pyramid_is_youngest_first_and_shows_suppressed_cells_as_ranges(tmp_path: Path) -> None:
    """ICH E11 groups by sex at two small hospitals: cells under 5 leave as "<5", pooled as intervals."""
    cells = {  # (age group, sex): persons at each hospital
        ("child (2-11 y)", "female"): (40, 35), ("child (2-11 y)", "male"): (52, 41),
        ("infant (28 d-23 m)", "female"): (3, 9), ("infant (28 d-23 m)", "male"): (12, 8),
        ("adolescent (12-17 y)", "female"): (7, 2), ("adolescent (12-17 y)", "male"): (9, 6),
    }  # fmt: skip
    files = []
    for i in range(2):
        path = tmp_path / f"h{i}.csv"
        rows = [f"{group},{sex}" for (group, sex), n in cells.items() for _ in range(n[i])]
        path.write_text("age_group,sex\n" + "\n".join(rows) + "\n", encoding="utf-8")
        files.append(path)
    levels = {"age_group": ["infant (28 d-23 m)", "child (2-11 y)", "adolescent (12-17 y)"],
              "sex": ["female", "male"]}  # text levels leave a hospital only when declared  # fmt: skip
    params = {"table": {"dataset": "kids"}, "rows": "age_group", "columns": "sex", "levels": levels}
    result = run_rounds_on("stats.table", params, files, "kids", tmp_path)
    assert isinstance(result, TableResult)
    assert result.to_frame("site1").loc["infant (28 d-23 m)", "female"] == "<5"
    shown = result.to_frame()
    low, high = result.counts(), result.counts(bound="upper")
    fig = plot_result(result, tmp_path / "pyramid.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "infant (28 d-23 m)", "child (2-11 y)", "adolescent (12-17 y)"
    ]  # fmt: skip
    texts = {t.get_text() for t in ax.texts}
    assert {str(shown.loc[g, s]) for g, s in cells} <= texts
    assert any("–" in text for text in texts)  # at least one pooled interval
    hatched = [p for p in ax.patches if p.get_hatch()]
    widths = sorted(round(abs(p.get_width())) for p in hatched if p.get_width())
    gaps = sorted(int(high.loc[g, s] - low.loc[g, s]) for g, s in cells if high.loc[g, s] > low.loc[g, s])
    assert widths == gaps and gaps
    assert "hatched" in ax.get_title()


def test_feasibility_plot_draws_dp_counts_with_their_intervals(tmp_path: Path) -> None:
    """Under differential privacy the bars are the noisy counts and the network total carries its 95%
    interval as an error bar that stops at 0; the printed result says how much budget is left."""
    from datetime import UTC, datetime

    from matplotlib.container import ErrorbarContainer

    from phds.analyses.testing import Federation, everything_auto
    from phds.demo.scenario import default_cohort
    from phds.omop.simulator import generate
    from phds.protocol.studies import StudyView
    from phds.sdk.result_registry import result_for
    from phds.sdk.results import FeasibilityResult

    made = generate(tmp_path / "cdm", hospitals=2, patients=400, seed=5)
    omop = {h.slug: {"cdm": f"duckdb:///{h.path}"} for h in made}
    params = {"cohort": default_cohort(), "breakdowns": ["sex"]}
    with Federation(omop=omop, policy=everything_auto(), folder=tmp_path / "fed", signed=True) as fed:
        run = fed.run("feasibility.count", params, dp={"epsilon": 1.0}, service_type="feasibility")
    assert run.result is not None, run.refused
    names = sorted(omop)
    view = StudyView.model_validate({
        "id": "dp-study", "state": "completed", "round": 1, "version": 1, "submitted_at": None,
        "finished_at": None, "result": {**run.result, "attribution": {"answered": names}},
        "spec": {"title": "DP count", "purpose": "p", "organisation": "acme", "service_type": "feasibility",
                 "hospitals": names, "analysis": {"name": "feasibility.count", "params": params}},
        "hospitals": [{"hospital": h, "state": "answered", "updated_at": datetime.now(UTC)} for h in names],
    })  # fmt: skip
    result = result_for(view)
    assert isinstance(result, FeasibilityResult) and result.total.estimate is not None
    assert "budget left" in str(result) and "±" in str(result)
    ax = plot_result(result, tmp_path / "dp.png").axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert bars and "noisy" in ax.get_ylabel()
    segments = bars[0].lines[2][0].get_segments()
    assert all(min(s[0][1], s[1][1]) >= 0 for s in segments)  # the interval never goes below 0
