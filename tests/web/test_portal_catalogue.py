"""The catalogue pages over a real hub: profiles as nodes publish them, filters, HTMX, the detail page."""

from __future__ import annotations

import re

from .conftest import World


def _rows(html: str) -> list[str]:
    """The hospitals listed in the results table, by their slug."""
    return re.findall(r'<a href="/portal/catalogue/([a-z-]+)">', html)


def test_the_catalogue_lists_every_published_profile_with_its_healthdcat_fields(world: World) -> None:
    page = world.browser().get("/portal/catalogue")
    assert page.status_code == 200
    assert _rows(page.text) == ["north", "south"]  # east has a node but published nothing
    north = page.text[page.text.index('href="/portal/catalogue/north"') :]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", north, flags=re.S)[:4]
    assert [re.sub(r"\s+", " ", c).strip() for c in cells[:3]] == ["GB", "120", "0–17 years"]
    assert re.match(r"\d{4}-\d{2} to \d{4}-\d{2}", cells[3].strip())
    assert "condition: " in north and "5.4" in north
    assert 'name="hospitals" value="north"' in page.text  # a requester may choose hospitals


def test_filters_narrow_the_list_and_a_bad_number_is_shown_next_to_its_field(world: World) -> None:
    browser = world.browser()
    assert _rows(browser.get("/portal/catalogue?country=FR").text) == ["south"]
    assert _rows(browser.get("/portal/catalogue?min_persons=100").text) == ["north"]
    assert _rows(browser.get("/portal/catalogue?age_min=0&age_max=5").text) == ["north"]
    assert _rows(browser.get("/portal/catalogue?age_min=15").text) == ["north", "south"]
    assert _rows(browser.get("/portal/catalogue?q=cystic").text) == ["south"]
    nothing = browser.get("/portal/catalogue?q=no-such-hospital-anywhere")
    assert _rows(nothing.text) == [] and "No hospital matches" in nothing.text
    bad = browser.get("/portal/catalogue?min_persons=lots")
    assert bad.status_code == 200 and _rows(bad.text) == ["north", "south"]
    assert 'aria-invalid="true" aria-describedby="error-min_persons"' in bad.text
    assert 'id="error-min_persons">Minimum persons must be a whole number' in bad.text
    swapped = browser.get("/portal/catalogue?age_min=10&age_max=3")
    assert "The oldest age is below the youngest" in swapped.text


def test_htmx_gets_only_the_results_and_keeps_the_chosen_hospitals_ticked(world: World) -> None:
    headers = {"HX-Request": "true", "HX-Target": "catalogue-results"}
    fragment = world.browser().get("/portal/catalogue?country=&hospitals=south", headers=headers)
    assert fragment.text.lstrip().startswith('<div id="catalogue-results">')
    assert "<html" not in fragment.text
    assert re.search(r'value="south" id="choose-south" aria-label="[^"]+" checked', fragment.text)
    assert re.search(r'value="north" id="choose-north" aria-label="[^"]+">', fragment.text)


def test_a_hospital_page_shows_its_whole_profile_and_links_to_the_builder(world: World) -> None:
    browser = world.browser()
    page = browser.get("/portal/catalogue/north")
    assert page.status_code == 200
    for text in (
        "Persons by ICH E11 age group",
        "Persons by sex",
        "Records and persons in each OMOP domain",
        "Most frequent",
        "How these counts were protected",
        "SNOMED",
    ):
        assert text in page.text, text
    assert 'href="/portal/feasibility?hospitals=north"' in page.text
    missing = browser.get("/portal/catalogue/east")
    assert missing.status_code == 404
    assert "has not published a catalogue entry" in missing.text and "What to do" in missing.text


def test_a_steward_sees_only_their_hospital_and_cannot_choose(world: World) -> None:
    page = world.browser("steward@north.example").get("/portal/catalogue")
    assert _rows(page.text) == ["north"]
    assert 'name="hospitals"' not in page.text
    assert world.browser("steward@north.example").get("/portal/catalogue/south").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(world: World) -> None:
    answer = world.browser(None).get("/portal/catalogue?country=FR")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/sign-in?next=/portal/catalogue%3Fcountry%3DFR"
