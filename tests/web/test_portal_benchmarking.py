"""A benchmarking study over a real hub, answered by real node runtimes (policy, gate, audit log) on three
simulated hospitals, shown on the portal: the indicator table, the pseudonyms, the funnel plot."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from phds.analyses.testing import everything_auto, node_runtime
from phds.hub.testing import study_spec
from phds.node.executor import execute_task
from phds.node.policy import BenchmarkingSettings
from phds.omop.simulator import generate
from phds.protocol.tasks import Task

from ..analyses.benchmark_support import BINARY
from .conftest import World

HOSPITALS = ("north", "south", "east")


def _answer_every_round(world: World, study_id: str, runtimes: dict[str, Any]) -> dict[str, Any]:
    for _ in range(40):
        study: dict[str, Any] = world.api("GET", f"/studies/{study_id}", "researcher@acme.example")
        if study["state"] in ("completed", "partially_completed", "failed", "rejected"):
            return study
        for hospital, runtime in runtimes.items():
            tasks = world.api("GET", "/nodes/me/tasks", hospital, params={"wait": 0, "limit": 100})
            for raw in (t for t in tasks if t["study_id"] == study_id):
                answer = execute_task(Task.model_validate(raw), runtime)
                world.api("POST", f"/tasks/{raw['id']}/result", hospital, json=answer.model_dump(mode="json"))
    raise AssertionError("the study did not finish")


def test_the_portal_shows_the_indicators_with_pseudonyms_and_the_funnel_plot(world: World) -> None:
    folder = Path(tempfile.mkdtemp(prefix="phds-bench-portal-"))
    cdms = generate(folder, hospitals=3, patients=6000, seed=3)
    runtimes = {}
    for name, cdm in zip(HOSPITALS, cdms, strict=True):
        own = ["acme-pharma"] if name == "north" else []  # north belongs to the requester's organisation
        policy = everything_auto().model_copy(
            update={"benchmarking": BenchmarkingSettings(own_organisations=own)}
        )
        runtimes[name] = node_runtime(
            name, folder / name, omop={"cdm": f"duckdb:///{cdm.path}"}, policy=policy
        )
    spec = study_spec(
        "acme-pharma", list(HOSPITALS), "benchmarking.indicators", BINARY, service_type="analytical_study"
    )
    study_id = world.api("POST", "/studies", "researcher@acme.example", json=spec)["id"]
    try:
        study = _answer_every_round(world, study_id, runtimes)
    finally:
        for runtime in runtimes.values():
            runtime.close()
    assert study["state"] == "completed", study.get("error")
    rows = study["result"]["rows"]
    page = world.browser().get(f"/portal/studies/{study_id}").text
    assert '<h3 id="benchmarking-heading">Benchmarking: asthma admission within a year</h3>' in page
    table = page[page.index('<table id="indicators"') : page.index("</table>", page.index('id="indicators"'))]
    assert re.search(r'<th scope="row">north <small>\(your organisation\)</small></th>', table)
    shown = re.findall(r'<th scope="row">(Hospital [A-Z])</th>', table)
    assert sorted(shown) == ["Hospital A", "Hospital B"] and "south" not in table and "east" not in table
    for row in rows:  # every number on the page is the result's own
        assert f'<td class="num">{row["n"]:,}</td>' in table or f'<td class="num">{row["n"]}</td>' in table
        assert row["flag"] in table
    assert f'src="/portal/studies/{study_id}/plot.png"' in page
    png = world.browser().get(f"/portal/studies/{study_id}/plot.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    rival = world.browser("someone@rival.example").get(f"/portal/studies/{study_id}")
    assert rival.status_code == 404  # another organisation's study is not theirs to see
