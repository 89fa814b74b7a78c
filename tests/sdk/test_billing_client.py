"""The SDK's money path against a real hub on loopback: ``client.applications``, ``client.quotes``,
``client.invoices`` and the operator's ``client.billing``, as typed objects and as DataFrames, down to an
invoice verified against the node keys and downloaded as its Factur-X PDF."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from phds.billing.render import check_facturx
from phds.billing.tariff import default_tariff
from phds.errors import Conflict, InputError, NotFound
from phds.protocol.billing import ApplicationView, InvoiceView, QuoteView
from phds.sdk import Client
from phds.sdk.billing import APPLICATION_COLUMNS, INVOICE_COLUMNS, LINE_COLUMNS, QUOTE_COLUMNS

from .billing_support import APPLICATION, OPERATOR_PROFILE, PROFILE, MoneyNetwork, invoiced, money_network


@pytest.fixture
def network(tmp_path: Path) -> Iterator[MoneyNetwork]:
    with money_network(tmp_path) as running:
        yield running


def test_the_money_path_through_the_sdk(network: MoneyNetwork, tmp_path: Path) -> None:
    (tmp_path / "operator.yaml").write_text(OPERATOR_PROFILE, encoding="utf-8")
    (tmp_path / "uni-a.yaml").write_text(PROFILE, encoding="utf-8")
    (tmp_path / "application.yaml").write_text(APPLICATION, encoding="utf-8")
    with network.client("admin") as admin, network.client() as requester:
        added = admin.billing.add_tariff(default_tariff())
        assert [t.version for t in requester.billing.tariffs()] == [added.version]
        assert admin.billing.tariff(added.version).currency == "EUR"
        with pytest.raises(Conflict):
            admin.billing.add_tariff(default_tariff())  # versions are never edited
        admin.billing.set_profile("operator", tmp_path / "operator.yaml")
        admin.billing.set_profile("uni-a", tmp_path / "uni-a.yaml")
        assert requester.billing.profile("uni-a").legal_name == "University A"

        app = requester.applications.file(tmp_path / "application.yaml")
        assert isinstance(app, ApplicationView) and app.state == "submitted"
        assert [a.id for a in requester.applications.list()] == [app.id]
        with network.client("requester_other") as other:
            assert other.applications.list() == []
            with pytest.raises(NotFound):
                other.applications.get(app.id)

        network.participate(app.id, "h1", "230.00")
        network.participate(app.id, "h2")
        quote = admin.billing.quote(app.id)
        assert isinstance(quote, QuoteView) and quote.state == "offered"
        # 600 application fee and 2 × 500 research, less EHDS Art. 62's 20%; h1's 230 passed through
        assert quote.ceiling == Decimal("1510.00")
        assert [q.id for q in requester.quotes.of(app.id)] == [quote.id]
        quotes = requester.quotes.frame(app.id)
        assert list(quotes.columns) == QUOTE_COLUMNS
        assert (quotes.loc[0, "state"], quotes.loc[0, "ceiling"]) == ("offered", Decimal("1510.00"))

        accepted = requester.quotes.accept(quote.id)
        assert accepted.state == "accepted"
        frame = requester.applications.frame()
        assert list(frame.columns) == APPLICATION_COLUMNS
        row = frame.iloc[0]
        assert (row["id"], row["title"], row["hospitals"], row["participating"]) == (
            app.id,
            "Asthma outcomes",
            "h1, h2",
            "h1, h2",
        )
        assert (row["quote_state"], row["ceiling"], row["currency"]) == (
            "accepted",
            Decimal("1510.00"),
            "EUR",
        )

        network.run_study(app.id, {"h1": 40, "h2": 10})
        [issued] = admin.billing.issue(network.period)
        assert admin.billing.issue(network.period) == []  # a second issue skips it

        [invoice] = requester.invoices.list()
        assert isinstance(invoice, InvoiceView) and invoice.number == issued.number
        assert requester.invoices.list(period="2001-01") == []
        assert requester.invoices.get(invoice.number).gross_total == Decimal("1246.30")
        invoices = requester.invoices.frame()
        assert list(invoices.columns) == INVOICE_COLUMNS
        assert invoices.loc[
            0, ["number", "state", "net_total", "vat_total", "gross_total", "lines"]
        ].tolist() == [
            invoice.number,
            "issued",
            Decimal("1030.00"),
            Decimal("216.30"),
            Decimal("1246.30"),
            2,
        ]
        lines = requester.invoices.lines(invoice.number)
        assert list(lines.columns) == LINE_COLUMNS
        assert sorted(lines["service"]) == ["pass_through", "research"]
        assert lines["net_amount"].sum() == Decimal("1030.00")

        check = requester.invoices.verify(invoice.number)  # the keys the hub pinned
        assert (check.ok, check.lines, check.receipts) == (True, 2, 2), check.problems
        assert requester.invoices.verify(invoice.number, pinned=network.pinned()).ok
        evidence = requester.invoices.evidence(invoice.number)
        assert {r["hospital"] for r in evidence.receipts} == {"h1", "h2"}

        pdf = requester.invoices.download(invoice.number, tmp_path / "invoice.pdf")
        assert pdf == tmp_path / "invoice.pdf"
        assert pdf.read_bytes().startswith(b"%PDF") and b"1246.30" in check_facturx(pdf.read_bytes())
        xml = requester.invoices.download(invoice.number, tmp_path, format="xml")
        assert xml == tmp_path / f"{invoice.number}.xml" and b"CrossIndustryInvoice" in xml.read_bytes()

        # 800 research: operator 25%; pool 600 split half equally, half by persons 40:10; plus h1's 230
        statement = admin.billing.statement("h1", network.period)
        assert (statement.total, statement.payable) == (Decimal("620.00"), Decimal("0.00"))
        paid = admin.billing.record_payment(invoice.number, "SEPA-1")
        assert paid.state == "paid" and paid.paid_at is not None
        assert admin.billing.statement("h1", network.period).payable == Decimal("620.00")
        with pytest.raises(Conflict):
            admin.billing.credit(invoice.number, "paid invoices are not credited")


def test_verify_catches_altered_receipts_and_foreign_keys(network: MoneyNetwork, tmp_path: Path) -> None:
    invoice = invoiced(network, tmp_path)
    with network.client() as requester, network.client("admin") as admin:
        with network.tampered_receipt("h1", persons=400):  # what a compromised hub could do to its rows
            check = requester.invoices.verify(invoice.number)
        assert not check.ok and any("signature" in p for p in check.problems), check.problems
        wrong = network.pinned() | {"h2": network.keys["h1"].public_key_b64}
        assert not requester.invoices.verify(invoice.number, pinned=wrong).ok
        assert requester.invoices.verify(invoice.number).ok  # restored

        note = admin.billing.credit(invoice.number, "wrong address")
        assert (note.kind, note.credit_of) == ("credit_note", invoice.number)
        assert {i.number: i.state for i in requester.invoices.list()}[invoice.number] == "credited"


def test_bad_input_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """Nothing listens at this address: each refusal is the SDK's own, with the field or file it names."""
    with Client("http://127.0.0.1:9", "token") as client:
        with pytest.raises(InputError, match="YYYY-MM"):
            client.billing.issue("2026-13")
        with pytest.raises(InputError, match="number"):
            client.invoices.get("../studies")
        with pytest.raises(InputError, match="format"):
            client.invoices.download("INV-2026-0001", tmp_path, format="docx")  # type: ignore[arg-type]
        (tmp_path / "bad.yaml").write_text(
            APPLICATION.replace("duration_months", "durations"), encoding="utf-8"
        )
        with pytest.raises(InputError, match=r"bad\.yaml, line 6") as raised:
            client.applications.file(tmp_path / "bad.yaml")
        assert "did you mean 'duration_months'" in raised.value.message
        with pytest.raises(InputError, match="field hospitals"):
            client.applications.file({**_application(), "hospitals": []})
        with pytest.raises(InputError, match="field country"):
            client.billing.set_profile("uni-a", {"legal_name": "U", "address_lines": ["x"], "postcode": "1",
                                                 "city": "B", "country": "Belgium"})  # fmt: skip


def _application() -> dict[str, object]:
    import yaml

    data: dict[str, object] = yaml.safe_load(APPLICATION)
    return data
