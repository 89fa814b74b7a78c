"""The steward console's pages over a real node folder: the queue shows each study in full; the audit
log, policy, budget and earnings pages show what the CLI shows."""

from __future__ import annotations

import json
import sqlite3

from phds.node.local import open_local

from .console_support import Console, NodeFolder


def test_the_queue_shows_each_study_in_full(console: Console) -> None:
    console.sign_in()
    page = console.http.get("/approvals")
    assert page.status_code == 200
    text = page.text
    headers = page.headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    for expected in (
        "Asthma and salbutamol",
        "A second look",
        "How many children with asthma take salbutamol?",
        "pharma-y",
        "<strong>industry</strong>",
        "verified: attested by the network trust key",
        "feasibility.count@1",
        "gosh, alder",
        "breakdowns",
        "age_group",
        "317009 Asthma, with its descendants",
        "1154343 albuterol",
        "from 2 to 11 years at the entry event",
        "rule 1 (pharma feasibility by hand) allows feasibility.count@1 for pharma-y (industry, feasibility)",
        "approval <strong>manual</strong>",
        "The cohort as the requester wrote it",
    ):
        assert expected in text, expected
    assert "(the hub&#39;s title)" not in text  # the signed title, not the hub's
    assert "min_count: 1" in text  # the cohort as written, in its <details>
    assert text.count("<h1") == 1
    with open_local(console.app.state.config) as local:
        bindings = [p.binding for p in local.approvals.pending()]
    assert all(f'name="binding" value="{b}"' in text for b in bindings)


# -- audit, policy, budget, earnings ------------------------------------------------------------------


def test_the_audit_log_pages_newest_first_filters_by_kind_and_verifies_the_chain(
    console: Console, console_node: NodeFolder
) -> None:
    console.sign_in()
    with open_local(console_node.config) as local:
        for i in range(60):
            local.audit.append("error", study_id=f"s{i}", payload={"error": "test", "n": i})
        total = local.audit.count()
    first = console.http.get("/audit").text
    assert f"Entries 1–50 of {total}" in first and "Page 1 of 2" in first
    assert first.index("<code>s59</code>") < first.index("<code>s58</code>")
    assert f"Entries 51–{total} of {total}" in console.http.get("/audit?page=2").text
    decisions = console.http.get("/audit?kind=decision").text
    assert "Entries 1–2 of 2 of kind decision" in decisions and "<code>s59</code>" not in decisions
    assert console.http.get("/audit?kind=nonsense").status_code == 422

    verified = console.http.post("/audit/verify", data={"csrf_token": console.csrf("/audit")})
    assert f"ok: {total} entries, head " in verified.text and "The chain verifies" in verified.text
    with sqlite3.connect(console_node.config.db_path) as con:
        con.execute("UPDATE audit_log SET payload = ? WHERE seq = 3", (json.dumps({"edited": True}),))
    broken = console.http.post("/audit/verify", data={"csrf_token": console.csrf("/audit")})
    assert "BROKEN at seq 3: content does not match its hash (edited)" in broken.text


def test_the_policy_page_shows_rules_settings_and_the_rule_of_each_recent_decision(console: Console) -> None:
    console.sign_in()
    text = console.http.get("/policy").text
    assert "pharma feasibility by hand" in text and "academic feasibility" in text
    assert "min_cell_count" in text and "requester_budget" in text
    assert text.count("rule 1 (pharma feasibility by hand) allows") == 2
    assert "steward approves" in text


def test_the_budget_page_lists_spent_and_remaining_per_organisation_and_the_network(
    console: Console, console_node: NodeFolder
) -> None:
    console.sign_in()
    assert "No privacy budget has been spent" in console.http.get("/budget").text
    with open_local(console_node.config) as local, local.db.transaction():
        local.ledger.spend("omop:cdm", "pharma-y", 0.01, study_id="study-1", task_id="t")
        line = local.ledger.line("omop:cdm", "pharma-y")
    text = console.http.get("/budget").text
    assert "Dataset <code>omop:cdm</code>" in text and "All organisations (network ceiling)" in text
    assert "pharma-y" in text and f"{line.remaining_epsilon:.3g}" in text


def test_the_earnings_page_says_clearly_when_the_hub_cannot_answer(console: Console) -> None:
    console.sign_in()
    page = console.http.get("/earnings?period=2026-11")
    assert page.status_code == 200
    assert "The hub did not give the statement" in page.text and "no node credential" in page.text
    assert console.http.get("/earnings?period=November").status_code == 422
