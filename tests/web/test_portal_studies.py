"""Studies and their results over a real hub: the list, a study's page, its progress fragment, the
feasibility and generic result partials, downloads, and other organisations' studies (404)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest

from phds.demo.scenario import default_cohort
from phds.hub.testing import mean_variance_payload, released_count, study_spec
from phds.protocol.studies import StudyView
from phds.sdk.result_registry import result_for
from phds.web.render import templates

from .conftest import World


def _count(n: int) -> dict[str, Any]:
    return {"type": "count", **released_count(n)}


def _breakdown(cells: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "breakdown",
        "total": _count(sum(cells.values())),
        "cells": {k: _count(v) for k, v in cells.items()},
    }


def _feasibility(world: World, **fields: Any) -> str:
    params = {"cohort": default_cohort(), "breakdowns": ["sex"]}
    spec = study_spec("acme-pharma", ["north", "south"], "feasibility.count", params, **fields)
    study: dict[str, Any] = world.api("POST", "/studies", "researcher@acme.example", json=spec)
    return str(study["id"])


@pytest.fixture(scope="module")
def finished(world: World) -> str:
    """acme-pharma's feasibility count: north counts 12 (7 girls, 5 boys), south 3 (suppressed)."""
    study_id = _feasibility(world, title="Asthma at north and south")
    world.answer("north", study_id, {"persons": _count(12), "by_sex": _breakdown({"female": 7, "male": 5})})
    world.answer("south", study_id, {"persons": _count(3), "by_sex": _breakdown({"female": 2, "male": 1})})
    return study_id


def test_a_feasibility_result_shows_suppressed_counts_and_the_total_as_an_interval(
    world: World, finished: str
) -> None:
    page = world.browser().get(f"/portal/studies/{finished}").text
    assert "<h1>Asthma at north and south</h1>" in page
    assert re.search(r'<th scope="row">north</th>\s*<td>answered</td>\s*<td class="num">12</td>', page)
    south = r'<th scope="row">south</th>\s*<td>answered</td>\s*<td class="num">'
    assert re.search(south + r'<span class="suppressed">&lt;5</span>', page)
    assert '<strong id="network-total"><span class="interval">13–16</span></strong>' in page
    assert "it includes 1 suppressed count:" in page and "lies between 13 and 16" in page
    assert 'id="breakdown-sex"' in page and "Persons by sex, per hospital and in the network" in page
    assert f'src="/portal/studies/{finished}/chart.svg"' in page and 'alt="Bar chart of the persons' in page
    assert "hx-trigger" not in page  # final: no polling
    assert "default_cohort" not in page and "Children 2-11 with asthma and salbutamol" in page  # the spec


def test_downloads_json_csv_and_the_chart(world: World, finished: str) -> None:
    browser = world.browser()
    as_json = browser.get(f"/portal/studies/{finished}/result.json")
    assert as_json.headers["content-disposition"] == f'attachment; filename="study-{finished}-result.json"'
    assert as_json.json() == world.api("GET", f"/studies/{finished}", "researcher@acme.example")["result"]
    rows = list(csv.DictReader(io.StringIO(browser.get(f"/portal/studies/{finished}/result.csv").text)))
    assert [(r["hospital"], r["persons"], r["persons_lower"], r["persons_upper"]) for r in rows] == [
        ("north", "12", "12", "12"),
        ("south", "<5", "1", "4"),
        ("network total", "13–16", "13", "16"),
    ]
    assert rows[0]["sex:female"] == "7"
    png = browser.get(f"/portal/studies/{finished}/chart.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = browser.get(f"/portal/studies/{finished}/chart.svg")
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content[:500]


def test_the_progress_fragment_polls_until_final_then_reloads_the_page(world: World) -> None:
    browser = world.browser()
    study_id = _feasibility(world, title="Progress")
    running = browser.get(f"/portal/studies/{study_id}")
    assert (
        'hx-trigger="every 2s"' in running.text
        and f'href="/portal/studies/{study_id}">refresh</a>' in running.text
    )
    version = int(re.search(r"progress\?after=(\d+)", running.text).group(1))  # type: ignore[union-attr]
    hx = {"HX-Request": "true"}
    unchanged = browser.get(f"/portal/studies/{study_id}/progress?after={version}", headers=hx)
    assert unchanged.status_code == 204 and "HX-Refresh" not in unchanged.headers
    world.answer("north", study_id, {"persons": _count(20), "by_sex": _breakdown({"female": 10, "male": 10})})
    changed = browser.get(f"/portal/studies/{study_id}/progress?after={version}", headers=hx)
    assert changed.status_code == 200 and "<html" not in changed.text
    assert re.search(
        r'<th scope="row">north</th>\s*<td><span class="state state-answered">answered', changed.text
    )
    assert re.search(
        r'<th scope="row">south</th>\s*<td><span class="state state-pending">pending', changed.text
    )
    world.answer("south", study_id, {"persons": _count(8), "by_sex": _breakdown({"female": 4, "male": 4})})
    final = browser.get(f"/portal/studies/{study_id}/progress?after={version}", headers=hx)
    assert (final.status_code, final.headers["HX-Refresh"]) == (204, "true")
    assert "hx-trigger" not in browser.get(f"/portal/studies/{study_id}/progress").text


def test_the_list_filters_by_state(world: World, finished: str) -> None:
    browser = world.browser()
    everything = browser.get("/portal/studies").text
    assert f'href="/portal/studies/{finished}"' in everything
    done = browser.get("/portal/studies?state=completed").text
    assert f'href="/portal/studies/{finished}"' in done and "state state-running" not in done
    waiting = _feasibility(world, title="Still waiting")
    active = browser.get("/portal/studies?state=active").text
    assert (
        f'href="/portal/studies/{waiting}"' in active and f'href="/portal/studies/{finished}"' not in active
    )
    odd = browser.get("/portal/studies?state=asleep").text
    assert "There is no state “asleep”; showing every study." in odd


def test_another_organisations_study_is_not_found_everywhere(world: World, finished: str) -> None:
    rival = world.browser("someone@rival.example")
    for path in ("", "/progress", "/result.json", "/result.csv", "/chart.png"):
        answer = rival.get(f"/portal/studies/{finished}{path}")
        assert answer.status_code == 404, path
        assert '<h1 id="error-title">Not found</h1>' in answer.text and "Traceback" not in answer.text
    assert f"/portal/studies/{finished}" not in rival.get("/portal/studies").text
    assert rival.get("/portal/studies/not-a-study").status_code == 404


def test_a_steward_follows_the_study_but_its_result_belongs_to_the_requester(
    world: World, finished: str
) -> None:
    steward = world.browser("steward@north.example")
    page = steward.get(f"/portal/studies/{finished}").text
    assert "The result belongs to the requester" in page and 'id="feasibility-counts"' not in page
    assert steward.get(f"/portal/studies/{finished}/result.csv").status_code == 409


def test_a_mean_variance_result_renders_through_its_partial_and_the_generic_one(world: World) -> None:
    params = {"dataset": "visits", "variable": "age"}
    spec = study_spec("acme-pharma", ["north", "south"], "stats.mean_variance", params)
    study_id = world.api("POST", "/studies", "researcher@acme.example", json=spec)["id"]
    values = {"north": [4.0, 6.0, 8.0, 10.0, 12.0], "south": [5.0, 7.0, 9.0, 11.0, 13.0, 15.0]}
    for hospital, xs in values.items():
        world.answer(hospital, study_id, mean_variance_payload(1, xs)["values"])
    mean = sum(values["north"] + values["south"]) / 11
    for hospital, xs in values.items():
        world.answer(hospital, study_id, mean_variance_payload(2, xs, mean)["values"])
    browser = world.browser()
    page = browser.get(f"/portal/studies/{study_id}").text
    assert "<dt>Mean</dt><dd>" + f"{mean:.6g}</dd>" in page  # results/stats.mean_variance.html
    assert re.search(r'<th scope="row">north</th><td class="num">5</td><td class="num">0</td>', page)
    view = StudyView.model_validate(world.api("GET", f"/studies/{study_id}", "researcher@acme.example"))
    generic = templates.env.get_template("results/generic.html")
    page = generic.render(study=view, result=result_for(view), viewer=None)  # any analysis without one
    assert 'id="generic-result"' in page and f"<dt>mean</dt><dd>{mean:.6g}</dd>" in page
    assert re.search(r'<dt>n_by_hospital</dt><dd><dl class="json json-1"><dt>north</dt><dd>5</dd>', page)
    assert '<dt>missing_by_hospital</dt><dd><dl class="json json-1"><dt>north</dt><dd>0</dd>' in page
    rows = list(csv.DictReader(io.StringIO(browser.get(f"/portal/studies/{study_id}/result.csv").text)))
    assert [(r["hospital"], r["n"]) for r in rows] == [
        ("north", "5"),
        ("south", "6"),
        ("network total", "11"),
    ]
    assert browser.get(f"/portal/studies/{study_id}/chart.svg").status_code == 404
    assert json.loads(browser.get(f"/portal/studies/{study_id}/result.json").text)["n"] == 11


def _noisy(value: int, half: int) -> dict[str, Any]:
    """A count released under differential privacy: the noisy value and its 95% interval."""
    statement = {
        "mechanism": "discrete_gaussian",
        "scale": 4.6,
        "rho": 0.02,
        "epsilon": 0.5,
        "delta": 1e-7,
        "ci95": float(half),
    }
    return {
        "type": "count",
        "value": value,
        "suppressed": False,
        "threshold": 5,
        "lower": max(0, value - half),
        "upper": value + half,
        "dp": statement,
    }


def test_differential_privacy_shows_intervals_and_the_budget_left(world: World) -> None:
    spec = study_spec(
        "acme-pharma",
        ["north", "south"],
        "feasibility.count",
        {"cohort": default_cohort()},
        title="Noisy",
        dp={"epsilon": 1.0},
    )
    study_id = world.api("POST", "/studies", "researcher@acme.example", json=spec)["id"]
    budget = [
        {
            "dataset": "omop",
            "spent_rho": 0.02,
            "remaining_rho": 0.98,
            "remaining_epsilon": 4.25,
            "delta": 1e-7,
        }
    ]
    world.answer("north", study_id, {"persons": _noisy(42, 9)}, budget)
    world.answer("south", study_id, {"persons": _noisy(17, 9)}, budget)
    page = world.browser().get(f"/portal/studies/{study_id}").text
    assert re.search(
        r'<th scope="row">north</th>\s*<td>answered</td>\s*<td class="num">42 <small>\(95% interval 33–51\)',
        page,
    )
    assert re.search(r'id="network-total">59 ± 13 <small>\(95% interval \d+–\d+\)</small>', page)
    assert "Differential privacy: each count is noisy" in page and "it includes" not in page
    assert "<dt>Differential privacy</dt><dd>ε = 1.0;" in page
    budget_rows = re.findall(r'<tr><th scope="row">(\w+)</th><td>omop</td><td class="num">4.25</td>', page)
    assert budget_rows == ["north", "south"]
