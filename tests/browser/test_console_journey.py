"""Journey 3 in chromium: gamma's data steward approves a study in the node's own console.

A requester submits a study to gamma (whose policy asks its steward). ``phds node console`` runs as a
real process beside gamma's node; the steward opens the sign-in link it prints, reads the study in full
in the queue, approves it with a note, looks at the audit log, policy, budget and earnings, and the
study finishes at the hub.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from phds.demo.network import LocalNetwork, free_port, phds_command
from phds.demo.scenario import default_cohort
from phds.node.config import load_node_config
from phds.node.local import open_local

from ..integration.support import wait_until
from .conftest import Portal, check_accessibility, screenshot

STEWARD = "Dr Gamma Steward"


@dataclass
class RunningConsole:
    process: subprocess.Popen[str]
    url: str
    link: str


@pytest.fixture
def gamma_console(portal: Portal) -> Iterator[RunningConsole]:
    """``phds node console`` for gamma's node, as a process; its first sign-in link."""
    network: LocalNetwork = portal.network
    port = free_port()
    process = subprocess.Popen(
        phds_command(
            "node",
            "console",
            "--config",
            str(network.nodes["gamma"].config),
            "--port",
            str(port),
            "--steward",
            STEWARD,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=network.env(),
        cwd=network.workdir,
    )
    try:
        assert process.stdout is not None
        printed: list[str] = []
        for line in process.stdout:
            printed.append(line)
            if "/sign-in?token=" in line:
                break
        links = [part for line in printed for part in line.split() if "/sign-in?token=" in part]
        assert links, f"the console printed no sign-in link: {''.join(printed)}"
        yield RunningConsole(process, f"http://127.0.0.1:{port}", links[0])
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_steward_approves_a_study_in_the_node_console_and_it_finishes_at_the_hub(
    page: Page, portal: Portal, gamma_console: RunningConsole, tmp_path: Path
) -> None:
    network = portal.network
    title = "Console journey: asthma and salbutamol"
    with network.client() as client:
        study = client.submit(
            {
                "title": title,
                "purpose": "Can gamma's children with asthma support a salbutamol trial?",
                "organisation": "acme-pharma",
                "service_type": "feasibility",
                "hospitals": ["gamma"],
                "analysis": {
                    "name": "feasibility.count",
                    "params": {"cohort": default_cohort(), "breakdowns": ["sex", "age_group"]},
                },
                "deadline_seconds": 300,
            }
        )
    config = load_node_config(network.nodes["gamma"].config)

    def filed() -> bool:
        with open_local(config) as node:
            return any(p.study_id == study.id for p in node.approvals.pending())

    wait_until(filed, "gamma's node to file the study for its steward")

    page.goto(gamma_console.link)
    expect(page).to_have_url(f"{gamma_console.url}/approvals")
    expect(page.get_by_role("heading", level=1)).to_have_text("Studies waiting for your decision")
    item = page.locator(f"#study-{study.id}")
    expect(item.get_by_role("heading", name=title)).to_be_visible()
    for text in (
        "Can gamma's children with asthma support a salbutamol trial?",
        "acme-pharma",
        "verified: attested by the network trust key",
        "feasibility.count@1",
        "317009 Asthma, with its descendants",
        "from 2 to 11 years at the entry event",
        "after steward approval",
    ):
        expect(item).to_contain_text(text)
    parameters = item.get_by_role("table", name="Every parameter")
    expect(parameters.get_by_role("rowheader", name="breakdowns")).to_be_visible()
    expect(parameters).to_contain_text('"age_group"')
    expect(parameters).to_contain_text("min_count: 1")  # the cohort text itself, in full
    item.get_by_text("All parameters as JSON").click()
    expect(item.locator("details[open] pre")).to_contain_text('"breakdowns"')
    item.get_by_text("The cohort as the requester wrote it").click()
    check_accessibility(page)
    screenshot(page, "console-queue", tmp_path)

    item.get_by_label("Note with the approval (optional)").fill("Ethics approval GAM-2026-07")
    item.get_by_role("button", name="Approve this study").click()
    expect(page.get_by_role("status")).to_contain_text(f"approved by {STEWARD}")
    expect(page.locator(f"#study-{study.id}")).to_have_count(0)
    decided = page.get_by_role("table", name="The latest")
    expect(decided.get_by_role("row", name=title).first).to_contain_text("Ethics approval GAM-2026-07")
    check_accessibility(page)
    screenshot(page, "console-approved", tmp_path)

    with network.client() as client:
        view = client.wait(study.id, timeout=180)
    assert view.state.value == "completed", view
    with open_local(config) as node:
        [approval] = [e for e in node.audit.entries(study.id) if e.kind == "approval"]
        assert approval.payload["steward"] == STEWARD
        assert approval.payload["reason"] == "Ethics approval GAM-2026-07"
        assert approval.payload["requester_category"] == "industry"

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    page.get_by_label("Kind of entry").select_option("approval")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("table")).to_contain_text(study.id)
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_role("heading", name="The chain verifies")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "console-audit", tmp_path)

    page.get_by_role("link", name="Policy").click()
    expect(page.get_by_role("table", name="rules, in order")).to_contain_text("feasibility counts")
    expect(page.get_by_role("table", name="latest")).to_contain_text(study.id)
    check_accessibility(page)
    screenshot(page, "console-policy", tmp_path)

    page.get_by_role("link", name="Privacy budget").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Privacy budget")
    check_accessibility(page)
    screenshot(page, "console-budget", tmp_path)

    page.get_by_role("link", name="Earnings").click()
    expect(page.get_by_role("heading", name="Statement of")).to_be_visible()  # the hub answered
    check_accessibility(page)
    screenshot(page, "console-earnings", tmp_path)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You signed out.")
    check_accessibility(page)
    screenshot(page, "console-sign-in", tmp_path)
    page.goto(gamma_console.link)  # the link worked once
    expect(page.get_by_role("alert")).to_contain_text("does not work")
    page.goto(f"{gamma_console.url}/approvals")
    expect(page).to_have_url(f"{gamma_console.url}/sign-in")
