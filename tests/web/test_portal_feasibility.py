"""The feasibility builder over a real hub: live search, picking concepts, errors next to their fields,
the YAML form it writes, pasted and uploaded cohorts, and the review page it ends in."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from phds.cohorts import parse_cohort
from phds.demo.scenario import default_cohort
from phds.omop.vocabulary import concepts as c

from .conftest import Browserless, World

BUILT = [
    ("entry", str(c.ASTHMA)),
    ("entry_descendants", "on"),
    ("c-0-concept", str(c.ALBUTEROL)),
    ("c-0-kind", "require"),
    ("c-0-min_count", "1"),
    ("c-0-descendants", "on"),
    ("age_min", "2"),
    ("age_max", "11"),
    ("hospitals", "north"),
    ("hospitals", "south"),
    ("breakdowns", "sex"),
    ("purpose", "Feasibility of a paediatric asthma trial"),
    ("cohort_name", "Children 2-11 with asthma and salbutamol"),
]


def _error(page: str, field: str) -> str:
    found = re.search(rf'<small class="field-error" id="error-{re.escape(field)}">(.*?)</small>', page, re.S)
    assert found, f"no error shown for {field}"
    return html.unescape(found.group(1))


def _reviewed_spec(page: str) -> dict[str, Any]:
    found = re.search(r'<textarea name="spec" id="spec-json"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "not the review page"
    spec: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return spec


def _builder(world: World) -> Browserless:
    browser = world.browser()
    assert browser.get("/portal/feasibility").status_code == 200
    return browser


def test_the_builder_ticks_the_hospitals_chosen_in_the_catalogue(world: World) -> None:
    page = world.browser().get("/portal/feasibility?hospitals=south&hospitals=nowhere").text
    assert 'value="south" checked' in page and 'value="north">' in page
    assert "nowhere (not in the catalogue)" in page


def test_the_live_search_finds_concepts_by_name_code_and_id(world: World) -> None:
    browser = world.browser()
    by_name = browser.get("/portal/feasibility/concepts?q=asthma", headers={"HX-Request": "true"}).text
    assert "<html" not in by_name and "6 concepts match" in by_name
    assert f'value="add-entry:{c.ASTHMA}"' in by_name and f'value="add-criterion:{c.ASTHMA}"' in by_name
    assert 'aria-label="Add as entry event: Asthma"' in by_name
    by_code = browser.get("/portal/feasibility/concepts?q=195967001").text
    assert re.search(r'<th scope="row">Asthma</th>', by_code)
    drugs = browser.get("/portal/feasibility/concepts?q=a&domain=Drug").text
    assert "albuterol" in drugs and "Asthma" not in drugs
    assert "Type part of a concept" in browser.get("/portal/feasibility/concepts?q=").text
    assert "No concept of a condition" in browser.get("/portal/feasibility/concepts?q=zzzz").text


def test_without_javascript_search_and_add_post_the_whole_form(world: World) -> None:
    browser = _builder(world)
    searched = browser.post("/portal/feasibility", [("q", "asthma"), ("action", "search")])
    assert searched.status_code == 200 and f'value="add-entry:{c.ASTHMA}"' in searched.text
    added = browser.post("/portal/feasibility", [("q", "asthma"), ("action", f"add-entry:{c.ASTHMA}")])
    assert f'<input type="hidden" name="entry" value="{c.ASTHMA}">' in added.text
    assert "5 descendants the hub knows" in added.text and "Childhood asthma" in added.text
    both = browser.post(
        "/portal/feasibility", [("entry", str(c.ASTHMA)), ("action", f"add-criterion:{c.BODY_WEIGHT}")]
    )
    assert "Criterion 1: Body weight (Measurement)" in both.text
    assert 'name="c-0-value_min"' in both.text  # a measurement criterion has a value range
    assert "name: Asthma" in html.unescape(both.text)  # the YAML so far
    removed = browser.post(
        "/portal/feasibility",
        [("entry", str(c.ASTHMA)), ("c-0-concept", "3025315"), ("action", "remove-criterion:0")],
    )
    assert "Criterion 1" not in removed.text


def test_an_entry_event_keeps_one_domain_and_the_error_is_next_to_the_search(world: World) -> None:
    page = _builder(world).post(
        "/portal/feasibility",
        [("entry", str(c.ASTHMA)), ("q", "albuterol"), ("action", f"add-entry:{c.ALBUTEROL}")],
    )
    assert page.status_code == 422
    assert "albuterol is a Drug concept and the entry event is a Condition one" in _error(page.text, "q")
    assert 'href="#field-q"' in page.text  # the error summary links to the field
    assert f'name="entry" value="{c.ALBUTEROL}"' not in page.text


def test_review_errors_name_their_fields(world: World) -> None:
    browser = _builder(world)
    empty = browser.post("/portal/feasibility", [("purpose", ""), ("action", "review")])
    assert empty.status_code == 422
    assert _error(empty.text, "entry").startswith("pick at least one concept for the entry event")
    assert _error(empty.text, "hospitals") == "Choose at least one hospital."
    assert _error(empty.text, "purpose").startswith("Say what the count is for")
    assert 'name="cohort_name" maxlength="200" value=""' in empty.text  # the automatic name stays out
    fields = [(k, v) for k, v in BUILT if k not in ("age_min", "age_max")]
    ages = browser.post(
        "/portal/feasibility", [*fields, ("age_min", "11"), ("age_max", "2"), ("action", "review")]
    )
    assert _error(ages.text, "age_max") == "the oldest age (2) is below the youngest (11)"
    assert (
        'id="field-age_max" name="age_max"' in ages.text and 'aria-describedby="error-age_max"' in ages.text
    )
    window = browser.post(
        "/portal/feasibility", [*BUILT, ("c-0-start", "30"), ("c-0-end", "-30"), ("action", "review")]
    )
    assert _error(window.text, "c-0-end") == "the last day (-30) is before the first (30)"
    words = browser.post("/portal/feasibility", [*BUILT, ("c-0-start", "soon"), ("action", "review")])
    assert _error(words.text, "c-0-start") == "the first day must be a whole number"


def test_the_built_cohort_is_the_yaml_form_the_nodes_accept(world: World) -> None:
    page = _builder(world).post("/portal/feasibility", [*BUILT, ("action", "review")])
    assert page.status_code == 200, page.text
    spec = _reviewed_spec(page.text)
    assert spec["title"] == "Feasibility: Children 2-11 with asthma and salbutamol"
    assert (spec["organisation"], spec["service_type"], spec["hospitals"]) == (
        "acme-pharma",
        "feasibility",
        ["north", "south"],
    )
    params = spec["analysis"]["params"]
    assert spec["analysis"]["name"] == "feasibility.count" and params["breakdowns"] == ["sex"]
    assert "#   317009 Asthma (Condition, SNOMED 195967001)" in params["cohort"]
    built = parse_cohort(params["cohort"])
    assert built.fingerprint == parse_cohort(default_cohort()).fingerprint  # the demo's asthma cohort


def test_a_pasted_cohort_is_checked_as_the_hub_checks_it(world: World) -> None:
    browser = _builder(world)
    study = [("hospitals", "north"), ("purpose", "Pasted"), ("action", "review-definition")]
    unknown = "entry: {condition: {concepts: [999999999]}}\n"
    page = browser.post("/portal/feasibility", [*study, ("cohort_text", unknown)])
    assert page.status_code == 422
    assert "the hub's vocabulary has no concept 999999999" in _error(page.text, "cohort_text")
    broken = browser.post("/portal/feasibility", [*study, ("cohort_text", "entry: {condition: [\n")])
    assert re.match(r"file the pasted cohort, line 2: not valid YAML", _error(broken.text, "cohort_text"))
    nothing = browser.post("/portal/feasibility", study)
    assert _error(nothing.text, "cohort_text") == "Paste a cohort, or choose an ATLAS export file."
    good = browser.post("/portal/feasibility", [*study, ("cohort_text", default_cohort())])
    spec = _reviewed_spec(good.text)
    assert spec["title"] == "Children 2-11 with asthma and salbutamol"  # the cohort's own name
    assert spec["analysis"]["params"]["cohort"] == default_cohort()


def test_an_uploaded_atlas_export_goes_to_review(world: World) -> None:
    browser = _builder(world)
    export = {"name": "Asthma (ATLAS)", "expression": parse_cohort(default_cohort()).expression}
    files = {"cohort_file": ("asthma.json", json.dumps(export).encode(), "application/json")}
    study = [("hospitals", "south"), ("purpose", "An ATLAS cohort"), ("action", "review-definition")]
    page = browser.post("/portal/feasibility", study, files=files)
    assert page.status_code == 200, page.text
    spec = _reviewed_spec(page.text)
    assert spec["title"] == "Asthma (ATLAS)" and spec["hospitals"] == ["south"]
    assert json.loads(spec["analysis"]["params"]["cohort"]) == export
    bad = {"cohort_file": ("asthma.json", b'{"PrimaryCriteria": {"CriteriaList": [{"Specimen": {}}]}}', "")}
    refused = browser.post("/portal/feasibility", study, files=bad)
    assert "Specimen: not supported" in _error(refused.text, "cohort_file")


def test_only_requesters_build_studies(world: World) -> None:
    page = world.browser("steward@north.example").get("/portal/feasibility")
    assert page.status_code == 403 and "this page is for requesters" in page.text
