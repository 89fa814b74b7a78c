"""Journey 2 in chromium: a requester fits a GLM from the form generated from its parameters, signs it in
the browser, and reads the summary, the forest plot and the CSV of the coefficients.

The model is a logistic regression of inhaled corticosteroid use on age and sex in the synthetic
hospitals' asthma cohort (docs/ground-truth.md's analysis table): alpha and beta each hold about 50 such
children, enough for three parameters under the GLM's disclosure checks.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import yaml
from playwright.sync_api import Browser, Page, expect

from phds.analyses.omop_table import GROUND_TRUTH_TABLE

from ..integration.support import approve
from .conftest import Portal, check_accessibility, screenshot, sign_in

FORMULA = "ics ~ age_years + male"
STUDY_ID = re.compile(r"/portal/studies/([0-9a-f-]{36})")
LOADED_IMAGE = "(id) => { const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; }"


def open_glm_form(page: Page, portal: Portal) -> None:
    sign_in(page, portal, portal.requester, next_path="/portal/studies/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("New study")
    check_accessibility(page)
    page.get_by_role("link", name="Generalised linear model (federated IRLS)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "New study: Generalised linear model (federated IRLS)"
    )


def fill_study(page: Page, title: str) -> None:
    page.get_by_label("Title").fill(title)
    page.get_by_label("Purpose").fill("Portal journey: does ICS use rise with age in children with asthma?")
    page.get_by_label("Alpha (alpha").check()
    page.get_by_label("Beta (beta").check()


def fill_table(page: Page) -> None:
    """The analysis table of docs/ground-truth.md: the asthma cohort and its five covariates, in YAML."""
    page.get_by_label("Cohort").fill(yaml.safe_dump(GROUND_TRUTH_TABLE["cohort"], sort_keys=False))
    page.get_by_label("Covariates").fill(yaml.safe_dump(GROUND_TRUTH_TABLE["covariates"], sort_keys=False))


def test_a_requester_fits_a_glm_from_the_generated_form_and_reads_its_summary(
    page: Page, portal: Portal, tmp_path: Path
) -> None:
    open_glm_form(page, portal)
    expect(page.get_by_label("Service type")).to_have_value("analytical_study")
    expect(page.get_by_label("Family")).to_have_value("gaussian")  # the schema's default
    check_accessibility(page)
    fill_study(page, "ICS by age (portal GLM)")
    fill_table(page)
    page.get_by_label("Formula").fill(FORMULA)
    page.get_by_label("Family").select_option("binomial")
    screenshot(page, "new-study", tmp_path)
    page.get_by_role("button", name="Review the study").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Review and sign")
    expect(page.locator("#spec-preview")).to_contain_text(FORMULA)
    check_accessibility(page)
    page.set_input_files("#key-file", str(portal.network.requester_key_path))
    page.set_input_files("#attestation-file", str(portal.network.attestation_path))
    page.get_by_role("button", name="Sign and submit").click()
    page.wait_for_url(STUDY_ID, timeout=30_000)
    match = STUDY_ID.search(page.url)
    assert match is not None
    study_id = match.group(1)

    coefficients = page.locator("table#coefficients")  # the study page reloads itself when the study ends
    expect(coefficients).to_be_visible(timeout=180_000)
    check_accessibility(page)  # the partial inside the study page

    page.goto(f"{portal.url}/studies/{study_id}/analysis")  # the result on a page of its own
    for term in ("Intercept", "age_years", "male"):
        expect(coefficients.get_by_role("rowheader", name=term, exact=True)).to_be_visible()
    expect(page.get_by_text(f"glm(formula = {FORMULA}, family = binomial")).to_be_visible()
    n_table = page.locator("table.n-by-hospital")
    # The browser journeys share one network, and alpha's overlap guard may refuse this cohort next to
    # the feasibility journey's (they differ by a few persons; the guard's band is drawn per node key).
    with portal.network.client() as client:
        states = {h.hospital: h.state.value for h in client.study(study_id).hospitals}
    assert states["beta"] == "answered" and states["alpha"] in ("answered", "refused"), states
    for hospital, state in states.items():
        row = n_table.get_by_role("rowheader", name=hospital)
        expect(row).to_be_visible() if state == "answered" else expect(row).to_have_count(0)
    plot = page.locator("#result-plot")
    expect(plot).to_have_attribute("alt", re.compile("Forest plot of the odds ratios"))
    page.wait_for_function(LOADED_IMAGE, arg="result-plot", timeout=60_000)
    check_accessibility(page)
    screenshot(page, "study-glm", tmp_path)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the coefficients (CSV)").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["term"] for r in rows] == ["Intercept", "age_years", "male"]
    shown = coefficients.locator("tbody tr").nth(1).locator("td").first.inner_text()
    assert float(shown) == float(f"{float(rows[1]['estimate']):.5g}")
    svg = page.request.get(f"{portal.url}/studies/{study_id}/plot.svg")
    assert svg.ok and svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.body()[:2000]


def test_the_form_comes_back_with_each_problem_next_to_its_field(page: Page, portal: Portal) -> None:
    open_glm_form(page, portal)
    fill_study(page, "A GLM with mistakes")
    fill_table(page)
    page.get_by_label("Formula").fill(FORMULA)
    page.get_by_label("Levels", exact=True).fill("sex: [female, male")
    page.get_by_role("button", name="Review the study").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("There is a problem")
    expect(summary).to_contain_text("Levels: line 1, column 19: not valid YAML")
    expect(page.locator("#f-analysis-params-levels-error")).to_contain_text("not valid YAML")
    expect(page.get_by_label("Levels", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Title")).to_have_value("A GLM with mistakes")  # nothing typed is lost
    expect(page.get_by_label("Alpha (alpha")).to_be_checked()
    check_accessibility(page)

    page.get_by_label("Levels", exact=True).fill("")
    page.get_by_label("Formula").fill("")
    page.get_by_role("button", name="Review the study").click()  # the analysis's own check now
    expect(page.locator("#f-analysis-params-formula-error")).to_contain_text("Field required")
    expect(page.get_by_role("alert")).to_contain_text("Formula: Field required")
    page.get_by_role("link", name="Formula").click()
    expect(page.get_by_label("Formula")).to_be_focused()


def test_a_pasted_study_file_goes_to_the_review(page: Page, portal: Portal) -> None:
    sign_in(page, portal, portal.requester, next_path="/portal/studies/new")
    study = {
        "title": "Pasted GLM",
        "purpose": "Portal journey: a study file pasted into the page",
        "service_type": "analytical_study",
        "hospitals": ["alpha", "beta"],
        "analysis": {
            "name": "stats.glm",
            "params": {"table": GROUND_TRUTH_TABLE, "formula": FORMULA, "family": "binomial"},
        },
    }
    page.get_by_label("Or paste it here").fill(yaml.safe_dump(study, sort_keys=False))
    page.get_by_role("button", name="Review the study file").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Review and sign")
    expect(page.locator("#spec-preview")).to_contain_text("Pasted GLM")


def test_the_result_page_follows_a_running_study_and_shows_the_result_when_it_ends(
    page: Page, portal: Portal
) -> None:
    """gamma's steward approves by hand: the page shows the study waiting, then (without a reload by the
    person) the summary once the steward has approved at the node."""
    spec = {
        "title": "Age of children with asthma (portal progress)",
        "purpose": "Portal journey: the result page follows a study that waits for a steward",
        "organisation": "acme-pharma",
        "service_type": "analytical_study",
        "hospitals": ["alpha", "gamma"],
        "analysis": {
            "name": "stats.summary",
            "params": {"table": GROUND_TRUTH_TABLE, "variable": "age_years", "quantiles": [0.5]},
        },
    }
    with portal.network.client() as client:
        study_id = client.submit(spec).id
    sign_in(page, portal, portal.requester, next_path=f"/portal/studies/{study_id}/analysis")
    gamma = page.locator("#hospital-progress").get_by_role("row", name=re.compile("^gamma"))
    expect(gamma).to_contain_text("awaiting approval", timeout=60_000)
    check_accessibility(page)
    approve(portal.network, "gamma", study_id)
    expect(page.locator("table#quantiles")).to_be_visible(timeout=120_000)
    expect(page.get_by_role("heading", name="Summary of age_years")).to_be_visible()
    expect(page.locator("table#by-hospital").get_by_role("rowheader", name="gamma")).to_be_visible()
    check_accessibility(page)


def test_a_list_of_cohorts_grows_and_shrinks_without_javascript(
    browser: Browser, page: Page, portal: Portal
) -> None:
    form = "/portal/studies/new?analysis=stats.characterisation"
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        sign_in(plain, portal, portal.requester, next_path=form)
        expect(plain.get_by_role("group", name="Cohort 1")).to_be_visible()
        plain.get_by_label("Label").fill("girls")
        plain.get_by_role("button", name="Add another cohort").click()
        expect(plain.get_by_role("group", name="Cohort 2")).to_be_visible()
        expect(plain.get_by_role("group", name="Cohort 1").get_by_label("Label")).to_have_value("girls")
        plain.get_by_role("group", name="Cohort 2").get_by_label("Label").fill("boys")
        plain.get_by_role("button", name="Remove cohort 1").click()
        expect(plain.get_by_role("group", name="Cohort 2")).to_have_count(0)
        expect(plain.get_by_role("group", name="Cohort 1").get_by_label("Label")).to_have_value("boys")
    finally:
        context.close()
    sign_in(page, portal, portal.requester, next_path=form)  # axe needs JavaScript in the page
    page.get_by_role("button", name="Add another cohort").click()
    expect(page.get_by_role("group", name="Cohort 2")).to_be_visible()
    check_accessibility(page)
