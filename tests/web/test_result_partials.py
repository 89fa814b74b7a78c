"""The result partials print real results (real analyses over in-process hospitals with real gates) as
the typed results hold them: every number on the page is one the result carries, withheld and noisy
values are marked, and the CSV and plot are the SDK's own."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from phds.analyses.testing import Federation
from phds.sdk.result_registry import result_for
from phds.sdk.results import StudyResult
from phds.sdk.results_descriptive import CharacterisationResult, SummaryResult, TableResult
from phds.sdk.results_stats import CoxResult, GlmResult, KmResult
from phds.web.kit import format_number
from phds.web.pages import study_results  # noqa: F401 (installs the result helpers in the templates)
from phds.web.pages.study_plots import draw, result_csv
from phds.web.render import templates

from ..sdk.stats_support import PARAMS, cnsim_paths, finished_view, results, rossi, sites

__all__ = ["results", "sites"]  # fixtures

PARTIALS = [
    "stats.glm",
    "survival.cox",
    "survival.km",
    "survival.km:group",
    "stats.summary",
    "stats.table",
    "stats.characterisation",
]


def render(result: StudyResult) -> str:
    name = result.study.spec.analysis.name
    template = templates.env.get_template(f"results/{name}.html")
    return template.render(study=result.study, result=result, viewer=None)


class Tables(HTMLParser):
    """Each table's caption, whether every ``th`` has a scope, and every cell's text and class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self.cells: list[tuple[str, str]] = []  # (class, text) of every td
        self.images: list[dict[str, str | None]] = []
        self._text: list[str] | None = None
        self._class = ""
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"caption": "", "unscoped": 0})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "th" and not a.get("scope"):
            self.tables[-1]["unscoped"] += 1
        elif tag == "td":
            self._text, self._class = [], str(a.get("class") or "")
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._in_caption = False
        elif tag == "td" and self._text is not None:
            self.cells.append((self._class, "".join(self._text).strip()))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.tables[-1]["caption"] += data
        if self._text is not None:
            self._text.append(data)


def parse(html: str) -> Tables:
    parsed = Tables()
    parsed.feed(html)
    return parsed


@pytest.mark.parametrize("key", PARTIALS)
def test_every_partial_has_captioned_tables_with_scoped_headers_and_a_csv(
    results: dict[str, StudyResult], key: str
) -> None:
    result = results[key]
    html = render(result)
    page = parse(html)
    assert page.tables, key
    for table in page.tables:
        assert table["caption"].strip(), f"{key}: a table without a caption"
        assert table["unscoped"] == 0, f"{key}: a header cell without scope"
    rows = list(csv.reader(io.StringIO(result_csv(result))))
    assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows)
    for hospital in result.attribution.answered:
        assert hospital in html


def test_the_glm_summary_prints_the_results_own_numbers(results: dict[str, StudyResult]) -> None:
    fit = results["stats.glm"]
    assert isinstance(fit, GlmResult)
    html = render(fit)
    assert f'glm(formula = {fit.formula}, family = binomial(link = "logit"))' in html
    for c in fit.coefficients:
        assert f"<code>{c['term']}</code>" in html
        for key, digits in (("estimate", 5), ("std_error", 5), ("statistic", 4)):
            assert format_number(float(c[key]), digits) in html
    assert "Odds ratio (95% CI)" in html
    assert format_number(fit.deviance, 6) in html and format_number(fit.aic, 6) in html
    assert "<2e-16" in html or any(c["p_value"] < 1e-3 for c in fit.coefficients)
    for hospital, n in fit.raw["n_by_hospital"].items():
        assert re.search(rf"<th scope=\"row\">{hospital}</th><td class=\"num\">{n}</td>", html)
    [image] = parse(html).images
    assert image["src"] == f"/portal/studies/{fit.study.id}/plot.png"
    assert "forest plot" in str(image["alt"]).lower()
    frame = list(csv.DictReader(io.StringIO(result_csv(fit))))
    assert [row["term"] for row in frame] == [c["term"] for c in fit.coefficients]
    assert float(frame[1]["estimate"]) == pytest.approx(fit.coefficients[1]["estimate"], rel=1e-12)


def test_the_cox_page_shows_hazard_ratios_and_events_per_hospital(results: dict[str, StudyResult]) -> None:
    fit = results["survival.cox"]
    assert isinstance(fit, CoxResult)
    html = render(fit)
    for c in fit.coefficients:
        assert format_number(float(c["hazard_ratio"]), 4) in html
        assert f"{format_number(c['hr_lower_95'], 4)} to {format_number(c['hr_upper_95'], 4)}" in html
    assert "Stratified by hospital" in html
    assert "Likelihood ratio test" in html and format_number(fit.lr_test["statistic"], 4) in html


def test_the_km_page_has_the_life_table_on_the_agreed_grid(results: dict[str, StudyResult]) -> None:
    for key in ("survival.km", "survival.km:group"):
        fit = results[key]
        assert isinstance(fit, KmResult)
        html = render(fit)
        for group, points in fit.curves.items():
            for p in points:
                assert format_number(float(p["survival"]), 4) in html
            if group != "all":
                assert f"Life table, {fit.group} = {group}" in html
        assert f"{len(fit.raw['time_bins'])} time bin" in html
        assert "end of follow-up" in html  # the open last bin
    grouped = results["survival.km:group"]
    assert isinstance(grouped, KmResult) and grouped.log_rank
    assert "Log-rank test" in render(grouped)


def test_the_summary_page_shows_quantiles_with_their_intervals(results: dict[str, StudyResult]) -> None:
    summary = results["stats.summary"]
    assert isinstance(summary, SummaryResult)
    html = render(summary)
    for q in summary.quantiles().to_dict("records"):
        assert f"({format_number(q['lower'], 6)}, {format_number(q['upper'], 6)}]" in html


def test_table_one_is_the_analysis_renderers_table(results: dict[str, StudyResult]) -> None:
    t1 = results["stats.characterisation"]
    assert isinstance(t1, CharacterisationResult)
    html = render(t1)
    frame = t1.to_frame()
    texts = {text for _, text in parse(html).cells}
    assert {str(v) for v in frame.to_numpy().ravel() if str(v)} <= texts
    assert 'scope="colgroup" colspan="4">girls' in html  # 3 hospitals and Pooled
    assert result_csv(t1) == t1.to_csv()


def test_withheld_counts_are_shown_as_released_and_marked(
    results: dict[str, StudyResult], tmp_path: Path, shared_data: Path
) -> None:
    """prio (prior convictions) has rare levels: the gates withhold them and the page says so."""
    data = rossi(shared_data)
    tables = {}
    for i in range(2):
        part = tmp_path / f"rossi{i}.csv"
        data.iloc[i::2].to_csv(part, index=False)
        tables[f"h{i}"] = {"rossi": part}
    params = {"table": {"dataset": "rossi"}, "rows": "prio"}
    with Federation(tables, folder=tmp_path / "fed") as fed:
        run = fed.run("stats.table", params)
    assert run.result is not None, run.refused
    table = result_for(finished_view("stats.table", params, run.result, run.notes, tuple(tables)))
    assert isinstance(table, TableResult)
    cells = parse(render(table)).cells
    withheld = [(cls, text) for cls, text in cells if "<" in text or "–" in text or "≥" in text]
    assert withheld and all("suppressed" in cls for cls, _ in withheld)
    exact = [(cls, text) for cls, text in cells if text.isdigit()]
    assert exact and not any("suppressed" in cls for cls, _ in exact)


def test_noisy_values_are_marked_and_the_budget_is_stated(tmp_path: Path, shared_data: Path) -> None:
    tables = {f"h{i}": {"cnsim": p} for i, p in enumerate(cnsim_paths(shared_data)[:2], 1)}
    params = {"dataset": "cnsim", "variable": "LAB_HDL"}
    with Federation(tables, folder=tmp_path / "fed") as fed:
        run = fed.run("stats.mean_variance", params, dp={"epsilon": 1.0, "bounds": {"LAB_HDL": [0, 5]}})
    assert run.result is not None, run.refused
    result = result_for(finished_view("stats.mean_variance", params, run.result, run.notes, tuple(tables)))
    html = render(result)
    assert "Differential privacy." in html and "± half-width" in html
    parts = templates.env.get_template("results/_parts.html").module
    budget = str(parts.budget(result))  # type: ignore[attr-defined]
    assert (
        "your budget left at each hospital" in budget
        and '<th scope="row">h1</th><td>tabular:cnsim</td>' in budget
    )
    noisy = [(cls, text) for cls, text in parse(html).cells if "±" in text]
    assert len(noisy) == 2 and all("suppressed" in cls for cls, _ in noisy)


def test_the_plot_is_drawn_as_png_and_svg(results: dict[str, StudyResult]) -> None:
    fit = results["stats.glm"]
    assert draw(fit, "png").startswith(b"\x89PNG\r\n\x1a\n")
    svg = draw(fit, "svg")
    assert b"<svg" in svg[:2000] and fit.study.spec.title.encode() in svg


def test_every_partial_example_is_in_the_sdk_suite() -> None:
    assert {k.split(":")[0] for k in PARTIALS} <= {k.split(":")[0] for k in PARAMS}
