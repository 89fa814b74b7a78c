"""Journey 4 in chromium: the operator (admin) issues the month's invoices and downloads one as PDF; a
requester's money page; and a requester cannot reach any operator page.

What is not the journey is set up through the SDK and the nodes' own CLI, as the demo's money path does
(``phds.demo.money``): the tariff, the billing profiles, an application that alpha's and beta's stewards
accepted at their nodes (``phds node participation accept``), an accepted quote, and a feasibility study
billed under it, which alpha and beta answer at once.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from phds.billing.tariff import default_tariff
from phds.demo.money import OPERATOR_PROFILE, PROFILES, application_form
from phds.demo.network import REQUESTER_ORG, LocalNetwork, phds_command
from phds.demo.scenario import default_cohort
from phds.sdk import Client

from .conftest import Portal, check_accessibility, screenshot, sign_in

OPERATOR_URLS = [
    "/portal/operator/organisations",
    "/portal/operator/organisations/acme-pharma",
    "/portal/operator/nodes",
    "/portal/operator/billing",
    "/portal/operator/billing/applications",
    "/portal/operator/billing/tariffs",
    "/portal/operator/billing/statements",
    "/portal/operator/simulator",
    "/portal/operator/simulator?scenario=pharma-heavy",
]


ANSWERING = ("alpha", "beta")
"""The hospitals of the billed study: they answer at once (gamma's steward approves by hand)."""


def accept_at_nodes(network: LocalNetwork, application_id: str) -> None:
    """Each answering hospital's steward accepts participation at its node (``phds node participation
    accept``, signed by the node key), side by side as separate hospitals would."""
    command = ["node", "participation", "accept", application_id, "--pass-through", "0.00"]
    running = [
        subprocess.Popen(
            phds_command(*command, "--config", str(network.nodes[name].config)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=network.env(),
        )
        for name in ANSWERING
    ]
    errors = [process.communicate(timeout=180)[1] for process in running]
    for name, process, stderr in zip(ANSWERING, running, errors, strict=True):
        assert process.returncode == 0, f"{name} could not accept {application_id}: {stderr.decode()}"


def _wait_metered(operator: Client, application_id: str, fee: Decimal, timeout: float = 60.0) -> None:
    """The hub meters the node-signed receipts on its runner's tick: wait until the study is charged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if operator.applications.get(application_id).charged > fee:
            return
        time.sleep(0.3)
    pytest.fail(f"the hub metered no receipt of {application_id} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def billed_month(portal_network: LocalNetwork) -> str:
    """A study billed this month under acme-pharma's accepted application; the application's id."""
    network = portal_network
    with Client(network.hub_url, network.admin_token) as operator, network.client() as requester:
        if default_tariff().version not in {t.version for t in operator.billing.tariffs()}:
            operator.billing.add_tariff(default_tariff())
        operator.billing.set_profile("operator", OPERATOR_PROFILE)
        operator.billing.set_profile(REQUESTER_ORG, PROFILES[REQUESTER_ORG])
        services = [{"service": "application_fee"}, {"service": "feasibility", "quantity": 3}]
        form = application_form(network, "Trial site feasibility", services) | {"hospitals": list(ANSWERING)}
        app = requester.applications.file(form)
        accept_at_nodes(network, app.id)
        quote = operator.billing.quote(app.id)
        requester.quotes.accept(quote.id)
        fee = sum(
            (Decimal(line["amount"]) for line in quote.lines if line["service"] == "application_fee"),
            Decimal(0),
        )
        analysis = {
            "name": "feasibility.count",
            "params": {"cohort": default_cohort(), "breakdowns": ["sex"]},
        }
        study = requester.submit(
            {
                "title": "Asthma and salbutamol (billed feasibility)",
                "purpose": "Which sites could recruit children with asthma for a trial",
                "organisation": REQUESTER_ORG,
                "service_type": "feasibility",
                "hospitals": list(ANSWERING),
                "analysis": analysis,
                "deadline_seconds": 300,
                "application_id": app.id,
            }
        )
        requester.results(study.id, wait=True)
        _wait_metered(operator, app.id, fee)
    return app.id


def test_the_operator_issues_the_month_s_invoices_and_downloads_a_pdf(
    page: Page, portal: Portal, billed_month: str, tmp_path: Path
) -> None:
    sign_in(page, portal, portal.admin, next_path="/portal/operator/organisations")
    expect(page.get_by_role("heading", level=1)).to_have_text("Organisations")
    expect(
        page.get_by_role("row", name=re.compile(r"Acme Paediatric Pharma acme-pharma requester"))
    ).to_be_visible()
    check_accessibility(page)
    screenshot(page, "operator-organisations", tmp_path)
    page.get_by_role("link", name="Acme Paediatric Pharma").click()
    expect(page.get_by_role("heading", name="A. Researcher")).to_be_visible()
    expect(page.get_by_label("Legal name")).to_have_value(PROFILES[REQUESTER_ORG]["legal_name"])
    check_accessibility(page)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Nodes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Node health")
    for hospital in ("alpha", "beta", "gamma"):
        row = page.get_by_role("row", name=re.compile(rf"^{hospital.title()} {hospital}"))
        expect(row).to_contain_text("s ago")
        expect(row).not_to_contain_text("stale")
    check_accessibility(page)
    screenshot(page, "operator-nodes", tmp_path)

    period = datetime.now(UTC).strftime("%Y-%m")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    page.locator("#issue-period").select_option(period)
    page.get_by_label("Close the running month early").check()
    page.get_by_role("button", name="Issue invoices").click()
    issued = page.get_by_role("status")
    expect(issued).to_contain_text(f"Issued 1 invoice for {period} (closed early")
    expect(issued).to_contain_text(f"to {REQUESTER_ORG}")
    number = re.search(r"INV-\d{4}-\d{6}", issued.inner_text())
    assert number is not None
    invoice = number.group(0)
    row = page.get_by_role("row", name=re.compile(invoice))
    expect(row).to_contain_text("issued")
    check_accessibility(page)
    screenshot(page, "operator-billing", tmp_path)

    with page.expect_download() as download:
        page.get_by_role("link", name=f"PDF of {invoice}").click()
    assert download.value.suggested_filename == f"{invoice}.pdf"
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")

    page.get_by_role("link", name=invoice, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {invoice}")
    expect(page.get_by_role("table", name=f"Lines of {invoice}")).to_contain_text(billed_month)
    check_accessibility(page)
    page.get_by_label("Bank reference").fill("SEPA journey-4")
    page.get_by_role("button", name="Record payment").click()
    expect(page.get_by_role("status")).to_contain_text(f"Recorded the payment of {invoice}")

    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Hospital statements").click()
    expect(page.get_by_role("row", name=re.compile(r"^alpha"))).to_be_visible()
    check_accessibility(page)
    for section in ("Applications & quotes", "Tariffs"):
        page.get_by_role("navigation", name="Billing").get_by_role("link", name=section).click()
        check_accessibility(page)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Simulator").click()
    page.locator("#scenario").select_option("grant-funded-start")
    page.get_by_role("button", name="Run scenario").click()
    expect(page.get_by_role("heading", name="Projection: grant-funded-start")).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("Year by year"))).to_be_visible()
    charts = page.get_by_role("img")
    expect(charts).to_have_count(3)
    for i in range(3):
        assert len(charts.nth(i).get_attribute("alt") or "") > 80
    check_accessibility(page)
    screenshot(page, "operator-simulator", tmp_path)


def test_a_requester_files_an_application_decides_its_quote_and_gets_invoices(
    page: Page, portal: Portal, billed_month: str, tmp_path: Path
) -> None:
    sign_in(page, portal, portal.requester, next_path="/portal/money")
    page.get_by_role("link", name="File a new application").click()
    check_accessibility(page)
    page.get_by_label("Title").fill("Growth of children on inhaled steroids")
    page.get_by_label("Purpose").fill("Describe growth SDS of children on inhaled corticosteroids")
    page.get_by_label("Legal basis").fill("GDPR Art. 6(1)(e) and 9(2)(j)")
    page.get_by_label("Ethics approval reference").fill("CEIm-2026-031")
    page.get_by_label("Alpha").check()
    page.get_by_label("Beta").check()
    page.get_by_label("analytical study").fill("1")
    page.get_by_role("button", name="File application").click()
    filed = page.get_by_role("status")
    expect(filed).to_contain_text("Filed application APP-")
    application = re.search(r"APP-\d{4}-\d{4}", filed.inner_text())
    assert application is not None
    with Client(portal.network.hub_url, portal.network.admin_token) as operator:
        quote = operator.billing.quote(application.group(0))
    page.reload()
    expect(
        page.get_by_role("heading", name=f"Quote {quote.id} for Growth of children on inhaled steroids")
    ).to_be_visible()
    check_accessibility(page)
    screenshot(page, "money", tmp_path)
    page.get_by_role("button", name=f"Accept quote {quote.id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Accepted quote {quote.id}")

    with Client(portal.network.hub_url, portal.network.admin_token) as operator:
        operator.billing.issue(
            datetime.now(UTC).strftime("%Y-%m"), close_early=True
        )  # issued already: a no-op
        invoice = next(i for i in operator.invoices.list() if i.organisation == REQUESTER_ORG)
    page.reload()
    with page.expect_download() as download:
        page.get_by_role("link", name=f"PDF of {invoice.number}").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    check_accessibility(page)


def test_a_requester_cannot_reach_operator_pages(page: Page, portal: Portal) -> None:
    sign_in(page, portal, portal.requester)
    menu = page.get_by_role("navigation", name="Main")
    for label in ("Organisations", "Nodes", "Billing", "Simulator"):
        expect(menu.get_by_role("link", name=label)).to_have_count(0)
    assert page.locator("a[href^='/portal/operator']").count() == 0
    for url in OPERATOR_URLS:
        response = page.goto(f"{portal.network.hub_url}{url}")
        assert response is not None and response.status == 403, url
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        expect(page.get_by_role("alert")).to_contain_text("this page is for admins")
    check_accessibility(page)
