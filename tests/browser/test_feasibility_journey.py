"""Journey 1 in chromium: a requester finds hospitals in the catalogue, builds a feasibility cohort,
signs and submits it, follows its progress and reads the per-hospital counts, table and chart.

alpha and beta answer at once; gamma's steward approves by hand, so the journey targets alpha and beta.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Portal, check_accessibility, screenshot, sign_in

STUDY_URL = re.compile(r"/portal/studies/[0-9a-f-]{36}$")


def _catalogue_lists(page: Page, *hospitals: str) -> None:
    """The nodes publish their profiles right after they start: reload until every one is listed."""
    for _ in range(30):
        if all(page.get_by_label(f"Choose {h}").count() for h in hospitals):
            return
        page.wait_for_timeout(1000)
        page.reload()
    expect(page.get_by_label(f"Choose {hospitals[-1]}")).to_be_visible()


def test_a_requester_counts_a_cohort_from_catalogue_to_result(
    page: Page, portal: Portal, tmp_path: Path
) -> None:
    sign_in(page, portal, portal.requester, next_path="/portal/catalogue")
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalogue of hospitals")
    _catalogue_lists(page, "Alpha", "Beta", "Gamma")
    expect(page.get_by_role("status")).to_have_text("3 hospitals.")
    check_accessibility(page)
    screenshot(page, "catalogue", tmp_path)

    page.get_by_label("Search").fill("gamma")  # HTMX replaces the table as one types
    expect(page.get_by_role("status")).to_have_text("1 of 3 hospitals match the filter.")
    expect(page).to_have_url(re.compile(r"q=gamma"))
    page.get_by_role("link", name="Clear the filter").click()
    expect(page.get_by_role("status")).to_have_text("3 hospitals.")
    page.get_by_label("Choose Alpha").check()
    page.get_by_label("Choose Beta").check()
    page.get_by_role("button", name="Count a cohort at the chosen hospitals").click()

    expect(page).to_have_url(re.compile(r"/portal/feasibility\?hospitals=alpha&hospitals=beta$"))
    expect(page.locator("#hospital-alpha")).to_be_checked()
    expect(page.locator("#hospital-beta")).to_be_checked()
    expect(page.locator("#hospital-gamma")).not_to_be_checked()
    page.get_by_role("button", name="Review the study").click()  # nothing picked yet: the errors say so
    expect(page.get_by_role("alert")).to_contain_text("pick at least one concept for the entry event")
    check_accessibility(page)

    page.get_by_label("Concept name, code or id").fill("asthma")  # the live search (HTMX)
    expect(page.locator("#concept-status")).to_have_text("6 concepts match “asthma”.")
    results = page.locator("#concept-results")
    page.get_by_role("button", name="Add as entry event: Asthma", exact=True).click()
    expect(page.get_by_role("list", name="Entry event concepts")).to_contain_text("Asthma")
    expect(page.get_by_label("Include descendants (e.g. childhood asthma under asthma)")).to_be_checked()
    page.get_by_label("Youngest age (years)").fill("2")
    page.get_by_label("Oldest age (years)").fill("11")
    page.get_by_label("Concept name, code or id").fill("1154343")  # a concept id finds albuterol
    expect(results).to_contain_text("albuterol")
    page.get_by_role("button", name="Add as criterion: albuterol").click()
    expect(page.get_by_role("group", name="Criterion 1: albuterol (Drug)")).to_be_visible()
    expect(page.locator("#cohort-preview")).to_contain_text("age: {min: 2, max: 11}")
    page.get_by_text("The cohort in the YAML form (what the hospitals receive)").click()
    check_accessibility(page)
    screenshot(page, "feasibility", tmp_path)

    page.get_by_role("button", name="Review the study").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Review and sign")
    expect(page.locator(".facts")).to_contain_text("alpha, beta")
    check_accessibility(page)
    page.set_input_files("#key-file", str(portal.network.requester_key_path))
    page.set_input_files("#attestation-file", str(portal.network.attestation_path))
    page.get_by_role("button", name="Sign and submit").click()

    expect(page).to_have_url(STUDY_URL, timeout=30_000)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Feasibility: Asthma, aged 2-11, with albuterol"
    )
    expect(page.get_by_role("table", name="Each hospital's state")).to_contain_text("alpha")
    check_accessibility(page)
    # The progress fragment polls every 2 s and reloads the page once the study is final.
    counts = page.get_by_role("table", name="Persons matching the cohort, per hospital")
    expect(counts).to_be_visible(timeout=120_000)
    expect(page.locator("#study-state")).to_have_text("completed")
    for hospital in ("alpha", "beta"):
        row = counts.get_by_role("row").filter(has=page.get_by_role("rowheader", name=hospital, exact=True))
        expect(row.get_by_role("cell").nth(0)).to_have_text("answered")
        expect(row.get_by_role("cell").nth(1)).to_have_text(re.compile(r"^(\d+|<\d+)$"))
    expect(page.locator("#network-total")).to_have_text(re.compile(r"^\d+(–\d+)?$"))
    expect(page.get_by_role("table", name="Persons by sex, per hospital and in the network")).to_be_visible()
    chart = page.get_by_role("img", name=re.compile("^Bar chart of the persons matching the cohort"))
    chart.scroll_into_view_if_needed()
    page.wait_for_function("() => document.getElementById('feasibility-chart').naturalWidth > 0")
    expect(page.get_by_role("link", name="The result's table as CSV")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "study-feasibility", tmp_path)

    with page.expect_download() as download:
        page.get_by_role("link", name="The result's table as CSV").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("hospital,state,persons,persons_lower,persons_upper")
    assert [line.split(",")[0] for line in lines[1:]] == ["alpha", "beta", "network total"]
