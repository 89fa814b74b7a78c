"""The money pages over HTTP against a real hub on loopback (no browser): the operator's billing month,
tariffs, quotes, statements and simulator, and the requester's applications, quotes, invoices and budget."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phds.billing.render import check_facturx
from phds.billing.scenario import SHIPPED_DIR
from phds.billing.tariff import default_tariff_text
from phds.hub.testing import study_spec
from phds.protocol.studies import StudyView
from phds.web.pages.money import budget_reports

from ..sdk.billing_support import MoneyNetwork, invoiced, money_network
from .operator_support import PortalAs, alert, notice, text_of


@pytest.fixture
def network(tmp_path: Path) -> Iterator[MoneyNetwork]:
    with money_network(tmp_path) as running:
        yield running


@pytest.fixture
def admin(network: MoneyNetwork) -> Iterator[PortalAs]:
    with PortalAs(network.url, network.tokens["admin"]) as portal:
        yield portal


@pytest.fixture
def requester(network: MoneyNetwork) -> Iterator[PortalAs]:
    with PortalAs(network.url, network.tokens["requester"]) as portal:
        yield portal


def test_the_operator_s_billing_month(network: MoneyNetwork, admin: PortalAs, tmp_path: Path) -> None:
    first = invoiced(network, tmp_path)
    period = network.period
    listed = admin.get("/operator/billing")
    assert first.number in listed.text and "Awaiting payment: 1 invoice" in text_of(listed)

    again = admin.post("/operator/billing/issue", {"period": period})
    assert notice(again).startswith(f"No new invoice for {period}")
    running = datetime.now(UTC).strftime("%Y-%m")
    early = admin.post("/operator/billing/issue", {"period": running})
    assert early.status_code == 409 and "has not ended" in alert(early)

    unexplained = admin.post(f"/operator/billing/invoices/{first.number}/credit", {"reason": " "})
    assert unexplained.status_code == 422 and alert(unexplained)
    credited = admin.post(f"/operator/billing/invoices/{first.number}/credit", {"reason": "wrong address"})
    assert notice(credited).startswith("Issued credit note") and f"cancelling {first.number}" in notice(
        credited
    )
    reissued = admin.post("/operator/billing/issue", {"period": period})
    [number] = re.findall(r"INV-\d{4}-\d{6}", notice(reissued).split(":", 1)[1])
    assert notice(reissued).startswith(f"Issued 1 invoice for {period}: {number} to uni-a (€")

    pdf = admin.get(f"/invoices/{number}/document", format="pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
    assert check_facturx(pdf.content)  # the Factur-X XML is embedded and valid
    xml = admin.get(f"/invoices/{number}/document", format="xml")
    assert xml.headers["content-type"] == "application/xml" and b"CrossIndustryInvoice" in xml.content
    assert admin.get("/invoices/..%2Fusers/document").status_code in (404, 422)

    detail = text_of(admin.get(f"/operator/billing/invoices/{number}"))
    assert "research" in detail.lower() and "Record the payment" in detail
    paid = admin.post(
        f"/operator/billing/invoices/{number}/payment", {"reference": "SEPA 42", "paid_on": "bad"}
    )
    assert paid.status_code == 422 and "not a date" in alert(paid)
    paid = admin.post(f"/operator/billing/invoices/{number}/payment", {"reference": "SEPA 42"})
    assert notice(paid).startswith(f"Recorded the payment of {number}")
    twice = admin.post(f"/operator/billing/invoices/{number}/payment", {})
    assert "This invoice is paid" in text_of(twice)  # the form is gone; the API would refuse (409)

    statements = admin.get("/operator/billing/statements", period=period, hospital="h1")
    assert "h1: lines of" in text_of(statements)
    payout = admin.post("/operator/billing/payouts", {"hospital": "h1", "period": period, "reference": "P-1"})
    assert notice(payout).startswith("Recorded a payout of €") and number in notice(payout)
    twice = admin.post("/operator/billing/payouts", {"hospital": "h1", "period": period})
    assert twice.status_code == 409 and alert(twice)


def test_tariff_uploads_name_the_line_and_never_edit_a_version(admin: PortalAs) -> None:
    empty = admin.get("/operator/billing/tariffs")
    assert "No tariff yet." in text_of(empty)
    floats = default_tariff_text().replace('"600.00"', "600.5", 1)
    refused = admin.post("/operator/billing/tariffs", files={"tariff_file": ("t.yaml", floats.encode())})
    assert refused.status_code == 422
    assert re.search(r"file t\.yaml, line \d+, field services\.application_fee\.prices", alert(refused))
    added = admin.post(
        "/operator/billing/tariffs", files={"tariff_file": ("t.yaml", default_tariff_text().encode())}
    )
    assert notice(added) == "Added tariff 2026.1 (EUR), in force from 2026-01-01."
    assert "Version 2026.1" in text_of(added) and "€1,674.27" in added.text
    twice = admin.post("/operator/billing/tariffs", {"tariff_text": default_tariff_text()})
    assert twice.status_code == 409 and alert(twice)
    nothing = admin.post("/operator/billing/tariffs", {"tariff_text": " "})
    assert nothing.status_code == 422 and "choose a tariff file" in alert(nothing)


def test_a_requester_files_an_application_and_decides_its_quote(
    network: MoneyNetwork, admin: PortalAs, requester: PortalAs
) -> None:
    admin.post("/operator/billing/tariffs", {"tariff_text": default_tariff_text()})
    form = requester.get("/money/applications/new")
    assert form.status_code == 200 and "at academic list prices" in text_of(form)
    fields = {
        "title": "Asthma outcomes",
        "purpose": "",
        "legal_basis": "GDPR Art. 9(2)(j)",
        "ethics_reference": "EC-2026-7",
        "other_hospitals": "h1, h2",
        "duration_months": "12",
        "qty_application_fee": "1",
        "qty_research": "1",
    }
    missing = requester.post("/money/applications", fields)
    assert missing.status_code == 422 and "field purpose" in alert(missing)
    assert 'value="Asthma outcomes"' in missing.text  # what was typed stays
    filed = requester.post("/money/applications", fields | {"purpose": "Compare asthma outcomes"})
    assert notice(filed).startswith("Filed application APP-")
    [app_id] = re.findall(r"APP-\d{4}-\d{4}", notice(filed))
    for hospital in ("h1", "h2"):
        network.participate(app_id, hospital, "230.00" if hospital == "h1" else "0.00")

    listed = text_of(admin.get("/operator/billing/applications"))
    assert "Asthma outcomes" in listed and "€230.00" in listed
    unexplained = admin.post(f"/operator/billing/applications/{app_id}/quote", {"waive_service": "research"})
    assert unexplained.status_code == 422 and "record why" in alert(unexplained)
    quoted = admin.post(f"/operator/billing/applications/{app_id}/quote", {})
    assert notice(quoted).startswith("Offered quote Q-") and "ceiling €1,510.00" in notice(quoted)
    [quote_id] = re.findall(r"Q-\d{4}-\d{4}-\d+", notice(quoted))

    money = requester.get("/money")
    assert f"Quote {quote_id} for Asthma outcomes" in text_of(money)
    accepted = requester.post(f"/money/quotes/{quote_id}/accept")
    assert notice(accepted).startswith(f"Accepted quote {quote_id}") and "€1,510.00" in notice(accepted)
    assert "No quote waits for your decision." in text_of(accepted)
    again = requester.post(f"/money/quotes/{quote_id}/decline")
    assert again.status_code == 409 and "not offered" in alert(again)
    with PortalAs(network.url, network.tokens["requester_other"]) as other:
        assert quote_id not in other.get("/money").text


def test_the_requester_sees_and_downloads_only_its_invoices(
    network: MoneyNetwork, requester: PortalAs, tmp_path: Path
) -> None:
    invoice = invoiced(network, tmp_path)
    page = text_of(requester.get("/money"))
    assert f"{invoice.number} {invoice.period} issued" in page
    pdf = requester.get(f"/invoices/{invoice.number}/document")
    assert pdf.content.startswith(b"%PDF")
    with PortalAs(network.url, network.tokens["requester_other"]) as other:
        assert other.get(f"/invoices/{invoice.number}/document").status_code == 404
        assert invoice.number not in other.get("/money").text
    with PortalAs(network.url, network.tokens["steward"]) as steward:
        assert steward.get("/money").status_code == 403
        assert steward.get(f"/invoices/{invoice.number}/document").status_code == 403
    assert "no hospital has applied differential privacy" in page


def test_the_simulator_runs_a_shipped_scenario_with_charts(admin: PortalAs) -> None:
    page = admin.get("/operator/simulator", scenario="pharma-heavy", runs="20")
    text = text_of(page)
    assert page.status_code == 200
    assert "Projection: pharma-heavy" in text and "Break-even month 46 (2030-10)" in text
    assert "Monte Carlo: bands: p5, p50 and p95 of 20 runs" in text or "20 Monte Carlo runs" in text
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)"', page.text)
    assert len(images) == 3 and all(len(alt) > 80 for alt in images)
    assert "break-even month 46 (2030-10)" in images[1]
    too_many = admin.get("/operator/simulator", scenario="pharma-heavy", runs="100000")
    assert too_many.status_code == 422 and "runs must be between 1 and 500" in alert(too_many)
    unknown = admin.get("/operator/simulator", scenario="../etc/passwd")
    assert unknown.status_code == 422 and "no shipped scenario" in alert(unknown)


def test_an_uploaded_scenario_runs_but_may_not_name_files(admin: PortalAs) -> None:
    text = (SHIPPED_DIR / "academic-heavy.yaml").read_text(encoding="utf-8")
    ran = admin.post("/operator/simulator", {"scenario_text": text, "runs": "1"})
    assert "Projection: academic-heavy" in text_of(ran) and "none within the horizon" in text_of(ran)
    with_tariff = admin.post(
        "/operator/simulator",
        files={"scenario_file": ("mine.yaml", (text + "\ntariff: /etc/passwd\n").encode())},
    )
    assert with_tariff.status_code == 422
    assert alert(with_tariff).startswith(
        "file mine.yaml, field tariff: an uploaded scenario cannot name other files"
    )
    bad = admin.post(
        "/operator/simulator", {"scenario_text": text.replace("horizon_years: 10", "horizon_years: 99")}
    )
    assert bad.status_code == 422 and re.search(r"line \d+, field horizon_years", alert(bad))


def test_the_budget_shown_is_each_hospital_s_latest_report() -> None:
    def study(number: int, finished: str, budget: dict[str, list[dict[str, object]]]) -> StudyView:
        return StudyView.model_validate(
            {
                "id": f"S-{number}",
                "spec": study_spec("acme", ["h1", "h2"]),
                "state": "completed",
                "round": 1,
                "version": 1,
                "hospitals": [],
                "submitted_at": finished,
                "finished_at": finished,
                "result": {"dp_budget": budget},
            }
        )

    def line(dataset: str, remaining: float) -> dict[str, object]:
        return {
            "dataset": dataset,
            "spent_rho": 0.1,
            "remaining_rho": remaining,
            "remaining_epsilon": 2 * remaining,
            "delta": 1e-6,
        }

    older = study(1, "2026-11-01T10:00:00+00:00", {"h1": [line("omop", 0.9)], "h2": [line("omop", 0.8)]})
    newer = study(2, "2026-11-20T10:00:00+00:00", {"h1": [line("omop", 0.5)]})
    reports = budget_reports([older, newer])
    assert [(r.hospital, r.budget.remaining_rho, r.study.id) for r in reports] == [
        ("h1", 0.5, "S-2"),
        ("h2", 0.8, "S-1"),
    ]
