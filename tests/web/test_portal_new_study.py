"""New study over a real hub in process: the analysis picker, the generated forms, their errors, the
review they end in; and a study's result page, its CSV and plot, scoped to the requester's organisation."""

from __future__ import annotations

import csv
import io
import re

from phds.analyses import available_analyses
from phds.hub.testing import mean_variance_payload, study_spec

from .conftest import World

GLM = "/portal/studies/new?analysis=stats.glm"
P = "analysis.params"


def glm_form(**fields: str) -> dict[str, str]:
    form = {
        "analysis": "stats.glm",
        "title": "HDL and diabetes",
        "purpose": "Portal tests",
        "service_type": "analytical_study",
        f"{P}.table.dataset": "cnsim",
        f"{P}.formula": "DIS_DIAB ~ LAB_HDL",
        f"{P}.family": "binomial",
    }
    form.update(fields)
    return form


def test_the_picker_lists_every_analysis_and_the_study_file_form(world: World) -> None:
    page = world.browser().get("/portal/studies/new").text
    for name in available_analyses():
        assert f'href="/portal/studies/new?analysis={name}"' in page
    assert '<form method="post" action="/portal/studies/review" enctype="multipart/form-data">' in page
    assert 'name="study_file"' in page and 'name="spec"' in page


def test_the_form_fits_the_analysis_and_the_hub(world: World) -> None:
    browser = world.browser()
    glm = browser.get(GLM).text
    assert 'name="hospitals" value="north"' in glm and 'name="hospitals" value="south"' in glm
    assert 'value="east"' not in glm  # no catalogue entry
    assert '<option value="analytical_study" selected>' in glm
    assert 'name="secure_aggregation"' in glm and 'name="dp.epsilon"' not in glm  # GLMs have no DP
    assert '<option value="gaussian" selected>gaussian</option>' in glm
    assert re.search(r'id="f-analysis-params-formula" name="analysis.params.formula" [^>]* required', glm)
    feasibility = browser.get("/portal/studies/new?analysis=feasibility.count").text
    assert '<option value="feasibility" selected>' in feasibility
    assert (
        'name="dp.__include"' in feasibility
        and 'name="analysis.params.breakdowns" value="sex"' in feasibility
    )
    assert '<textarea id="f-analysis-params-cohort"' in feasibility


def test_a_filled_form_goes_to_the_review_of_the_study_it_describes(world: World) -> None:
    browser = world.browser()
    browser.get(GLM)
    form = [*glm_form().items(), ("hospitals", "north"), ("hospitals", "south")]
    answer = browser.post("/portal/studies/new", form)
    assert answer.status_code == 200, answer.text
    assert "<h1>Review and sign</h1>" in answer.text
    assert "&#34;formula&#34;: &#34;DIS_DIAB ~ LAB_HDL&#34;" in answer.text
    assert "&#34;organisation&#34;: &#34;acme-pharma&#34;" in answer.text
    assert "max_iter" not in answer.text  # defaults are left to the analysis


def test_problems_come_back_next_to_their_fields(world: World) -> None:
    browser = world.browser()
    browser.get(GLM)
    form = glm_form(**{f"{P}.max_iter": "many", f"{P}.levels": "a: [b"})
    answer = browser.post("/portal/studies/new", form)
    assert answer.status_code == 422
    assert (
        '<p class="field-error" id="f-analysis-params-max_iter-error"><strong>Error:</strong>' in answer.text
    )
    assert "&#39;many&#39; is not a whole number" in answer.text
    assert 'id="f-analysis-params-levels-error"' in answer.text
    assert re.search(r'id="f-hospitals"[^>]*aria-invalid="true"', answer.text)  # no hospital chosen
    assert 'value="HDL and diabetes"' in answer.text  # what was typed stays
    browser.get(GLM)
    answer = browser.post(
        "/portal/studies/new", [*glm_form(**{f"{P}.formula": ""}).items(), ("hospitals", "north")]
    )
    assert answer.status_code == 422
    assert re.search(
        r'id="f-analysis-params-formula-error"><strong>Error:</strong> Field required', answer.text
    )


def test_a_cohort_is_added_and_removed_by_the_server(world: World) -> None:
    browser = world.browser()
    browser.get("/portal/studies/new?analysis=stats.characterisation")
    name = f"{P}.cohorts"
    form = {"analysis": "stats.characterisation", f"{name}.__items": "1", f"{name}.0.label": "girls"}
    added = browser.post("/portal/studies/new", {**form, "form_action": f"add:{name}"}).text
    assert "<legend>Cohort 2" in added and 'name="analysis.params.cohorts.0.label" value="girls"' in added
    removed = browser.post(
        "/portal/studies/new",
        {**form, f"{name}.__items": "2", f"{name}.1.label": "boys", "form_action": f"remove:{name}.0"},
    ).text
    assert (
        "<legend>Cohort 2" not in removed and 'name="analysis.params.cohorts.0.label" value="boys"' in removed
    )


def test_only_requesters_start_studies_and_unknown_analyses_are_not_found(world: World) -> None:
    admin = world.browser("admin@op.example")
    assert admin.get("/portal/studies/new").status_code == 403
    missing = world.browser().get("/portal/studies/new?analysis=stats.nothing")
    assert missing.status_code == 404 and "GET /api/v1/analyses lists" in missing.text


def test_the_result_page_its_csv_and_its_plot(world: World) -> None:
    params = {"dataset": "visits", "variable": "age"}
    spec = study_spec("acme-pharma", ["north", "south"], "stats.mean_variance", params)
    study_id = world.api("POST", "/studies", "researcher@acme.example", json=spec)["id"]
    browser = world.browser()
    running = browser.get(f"/portal/studies/{study_id}/analysis").text
    assert 'id="study-progress"' in running and "The result appears here" in running
    values = {"north": [4.0, 6.0, 8.0, 10.0, 12.0], "south": [5.0, 7.0, 9.0, 11.0, 13.0, 15.0]}
    for hospital, xs in values.items():
        world.answer(hospital, study_id, mean_variance_payload(1, xs)["values"])
    mean = sum(values["north"] + values["south"]) / 11
    for hospital, xs in values.items():
        world.answer(hospital, study_id, mean_variance_payload(2, xs, mean)["values"])
    page = browser.get(f"/portal/studies/{study_id}/analysis").text
    assert '<h2 id="result-title">Result</h2>' in page and "<dt>Answered</dt><dd>north, south</dd>" in page
    assert f"<dt>Mean</dt><dd>{mean:.6g}</dd>" in page and "Download the per-hospital counts (CSV)" in page
    download = browser.get(f"/portal/studies/{study_id}/table.csv")
    assert download.headers["content-type"].startswith("text/csv")
    assert (
        download.headers["content-disposition"]
        == f'attachment; filename="stats.mean_variance-{study_id[:8]}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [(r["hospital"], r["n"]) for r in rows] == [
        ("north", "5"),
        ("south", "6"),
        ("network total", "11"),
    ]
    no_plot = browser.get(f"/portal/studies/{study_id}/plot.png")
    assert no_plot.status_code == 404 and "there is no plot of a stats.mean_variance result" in no_plot.text
    rival = world.browser("someone@rival.example")
    for path in ("/analysis", "/table.csv", "/plot.png", "/plot.svg"):
        assert rival.get(f"/portal/studies/{study_id}{path}").status_code == 404, path


def test_an_analysis_name_is_never_a_path_at_the_hub(world: World) -> None:
    answer = world.browser().get("/portal/studies/new?analysis=../studies")
    assert answer.status_code == 422 and "is not an analysis name" in answer.text
