"""The invoice document model and its renderings: HTML, Factur-X EN16931 CII XML, PDF/A-3b."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import date
from decimal import Decimal
from importlib.resources import files
from typing import Any

import facturx
import pypdf
import pytest
from lxml import etree

from phds.billing.documents import (
    DocumentKind,
    DocumentLine,
    InvoiceDocument,
    Party,
    document_json,
    line_net_amount,
)
from phds.billing.render import check_facturx, render_cii_xml, render_html, render_pdf
from phds.billing.vat import OUTSIDE_EU, REVERSE_CHARGE, VatCategory, VatTreatment
from phds.errors import InputError

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
STANDARD_21 = VatTreatment(VatCategory.STANDARD, Decimal("21"), None, None)  # Dutch standard rate
SELLER = Party(
    "Stichting Paediatric Health Data Space",
    ("Lundlaan 6",),
    "3584 EA",
    "Utrecht",
    "NL",
    vat_id="NL004495445B01",
    email="billing@phds.example",
    legal_id="KvK 12345678",
)
# NL123456782B01: an illustrative Dutch VAT number with valid mod-11 check digits.
DUTCH_BUYER = Party(
    "Prinses Máxima Centrum", ("Heidelberglaan 25",), "3584 CS", "Utrecht", "NL", "NL123456782B01"
)
GERMAN_BUYER = Party(
    "Kinderklinik Forschung GmbH", ("Lindwurmstraße 4", "Haus B"), "80337", "München", "DE", "DE136695976"
)
US_BUYER = Party("Boston Paediatrics Research Inc.", ("300 Longwood Ave",), "02115", "Boston", "US")


def _line(
    line_id: str,
    description: str,
    quantity: str,
    unit_price: str,
    vat: VatTreatment,
    *,
    application_id: str | None = "APP-2026-017",
    unit_code: str = "C62",
    receipts: tuple[str, ...] = (),
) -> DocumentLine:
    return DocumentLine(
        line_id=line_id,
        description=description,
        service="feasibility",
        application_id=application_id,
        quantity=Decimal(quantity),
        unit_code=unit_code,
        unit_price=Decimal(unit_price),
        net_amount=line_net_amount(Decimal(quantity), Decimal(unit_price)),
        vat=vat,
        receipt_ids=receipts,
    )


def _document(
    lines: tuple[DocumentLine, ...], buyer: Party = DUTCH_BUYER, **overrides: Any
) -> InvoiceDocument:
    fields: dict[str, Any] = {
        "number": "INV-2026-0042",
        "kind": DocumentKind.INVOICE,
        "issue_date": date(2026, 3, 31),
        "due_date": date(2026, 4, 30),
        "period_start": date(2026, 3, 1),
        "period_end": date(2026, 3, 31),
        "currency": "EUR",
        "seller": SELLER,
        "buyer": buyer,
        "lines": lines,
        "payment_reference": "RF18539007547034",
        "seller_iban": "NL91 ABNA 0417 1643 00",
    }
    fields.update(overrides)
    return InvoiceDocument(**fields)


@pytest.fixture
def domestic() -> InvoiceDocument:
    """A Dutch hospital billed at 21 %: two applications, one line without, receipts, a <script>."""
    return _document(
        (
            _line(
                "1",
                "Feasibility counts across 12 hospitals",
                "12",
                "35.50",
                STANDARD_21,
                receipts=tuple(f"rcpt-{k:04d}" for k in range(12)),
            ),
            _line(
                "2",
                "Analyst support <script>alert(1)</script>",
                "3.5",
                "95.00",
                STANDARD_21,
                application_id="APP-2026-021",
                unit_code="HUR",
                receipts=("rcpt-0100", "rcpt-0101"),
            ),
            _line(
                "3", "Platform subscription", "1", "250.00", STANDARD_21, application_id=None, unit_code="MON"
            ),
        ),
        note="Thank you for using the network.",
    )


def _xml(document: InvoiceDocument) -> etree._Element:
    return etree.fromstring(render_cii_xml(document))


def test_totals_follow_en16931(domestic: InvoiceDocument) -> None:
    assert [line.net_amount for line in domestic.lines] == [
        Decimal("426.00"),
        Decimal("332.50"),
        Decimal("250.00"),
    ]
    assert domestic.net_total == Decimal("1008.50")
    assert domestic.vat_total == Decimal("211.79")  # 1008.50 × 21 % = 211.785 → 211.79
    assert domestic.gross_total == Decimal("1220.29")
    assert len(domestic.breakdown) == 1


def test_document_json_has_no_floats(domestic: InvoiceDocument) -> None:
    data = document_json(domestic)

    def walk(value: object) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    assert json.loads(json.dumps(data)) == data
    assert data["gross_total"] == "1220.29"
    assert data["issue_date"] == "2026-03-31"
    assert data["type_code"] == "380"
    assert data["lines"][1]["quantity"] == "3.5"
    assert data["vat_breakdown"][0] == {
        "category": "S",
        "rate": "21",
        "exemption_reason": None,
        "exemption_code": None,
        "taxable_amount": "1008.50",
        "tax_amount": "211.79",
    }
    assert data["seller_iban"] == "NL91ABNA0417164300"


def test_document_refuses_inconsistent_input(domestic: InvoiceDocument) -> None:
    line = domestic.lines[0]
    with pytest.raises(InputError, match="rounded to cents") as wrong_net:
        dataclasses.replace(line, net_amount=Decimal("426.01"))
    assert wrong_net.value.field == "line.net_amount"
    with pytest.raises(InputError, match="non-negative Decimal"):
        dataclasses.replace(line, quantity=12.0)
    with pytest.raises(InputError, match="names the invoice it corrects"):
        dataclasses.replace(domestic, kind=DocumentKind.CREDIT_NOTE)
    with pytest.raises(InputError, match="unknown currency 'EUX'"):
        dataclasses.replace(domestic, currency="EUX")
    with pytest.raises(InputError, match="not a valid IBAN"):
        dataclasses.replace(domestic, seller_iban="NL91ABNA0417164301")
    with pytest.raises(InputError, match="out-of-scope lines"):
        dataclasses.replace(domestic, lines=(*domestic.lines, _line("4", "Fee", "1", "10.00", OUTSIDE_EU)))
    with pytest.raises(InputError, match="buyer's VAT id"):
        _document((_line("1", "Fee", "1", "10.00", REVERSE_CHARGE),), buyer=US_BUYER)
    with pytest.raises(InputError, match="not a valid EU VAT id"):
        dataclasses.replace(SELLER, vat_id="NL004495446B01")
    assert line_net_amount(Decimal("3"), Decimal("0.335")) == Decimal("1.01")  # 1.005, half-up


def test_html_shows_every_line_receipt_and_total_and_escapes(domestic: InvoiceDocument) -> None:
    html = render_html(domestic)
    assert '<html lang="en-IE">' in html
    assert "INV-2026-0042" in html
    for amount in ("€1,008.50", "€211.79", "€1,220.29"):
        assert amount in html
    for line in domestic.lines:
        assert line.line_id in html
        for receipt_id in line.receipt_ids:
            assert receipt_id in html
    assert "Feasibility counts across 12 hospitals" in html
    assert "12 signed receipts" in html
    assert "Application APP-2026-017" in html and "Application APP-2026-021" in html
    assert "<script>" not in html
    assert "Analyst support &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<th scope="col">Description</th>' in html
    assert "NL004495445B01" in html and "NL91 ABNA 0417 1643 00" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside


def test_html_shows_unit_prices_and_quantities_unrounded() -> None:
    document = _document((_line("1", "Storage", "2.125", "0.335", STANDARD_21, unit_code="MON"),))
    html = render_html(document)
    assert "2.125 months" in html and "€0.335" in html
    assert "€0.71" in html  # 2.125 × 0.335 = 0.711875 → 0.71


def test_template_ships_as_package_data() -> None:
    assert files("phds.billing").joinpath("templates", "invoice.html").is_file()


def test_cii_xml_validates_against_the_en16931_xsd(domestic: InvoiceDocument) -> None:
    xml = render_cii_xml(domestic)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "380"
    assert len(root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)) == 3
    summation = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert summation is not None
    assert summation.findtext("ram:GrandTotalAmount", namespaces=NS) == "1220.29"
    assert summation.findtext("ram:DuePayableAmount", namespaces=NS) == "1220.29"
    tax_total = summation.find("ram:TaxTotalAmount", NS)
    assert tax_total is not None and (tax_total.text, tax_total.get("currencyID")) == ("211.79", "EUR")
    assert root.findtext(".//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID", namespaces=NS) == (
        "urn:cen.eu:en16931:2017"
    )
    ids = root.findall(".//ram:SpecifiedTaxRegistration/ram:ID", NS)
    assert [(i.get("schemeID"), i.text) for i in ids] == [("VA", "NL004495445B01"), ("VA", "NL123456782B01")]
    assert root.findtext(".//ram:DueDateDateTime/udt:DateTimeString", namespaces=NS) == "20260430"
    assert root.findtext(".//ram:PayeePartyCreditorFinancialAccount/ram:IBANID", namespaces=NS) == (
        "NL91ABNA0417164300"
    )


def test_mixed_standard_and_reverse_charge_gives_two_breakdown_groups() -> None:
    document = _document(
        (
            _line("1", "Application fee", "1", "450.00", STANDARD_21),
            _line("2", "Counts", "4", "35.50", REVERSE_CHARGE),
        ),
        buyer=GERMAN_BUYER,
    )
    assert [(g.category, g.taxable_amount, g.tax_amount) for g in document.breakdown] == [
        (VatCategory.STANDARD, Decimal("450.00"), Decimal("94.50")),
        (VatCategory.REVERSE_CHARGE, Decimal("142.00"), Decimal("0.00")),
    ]
    assert document.gross_total == Decimal("686.50")
    root = _xml(document)
    groups = root.findall(
        "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", NS
    )
    assert [g.findtext("ram:CategoryCode", namespaces=NS) for g in groups] == ["S", "AE"]
    assert groups[1].findtext("ram:ExemptionReasonCode", namespaces=NS) == "VATEX-EU-AE"
    assert (
        groups[1].findtext("ram:ExemptionReason", namespaces=NS)
        == "Reverse charge: VAT Directive 2006/112/EC Art. 196"
    )
    html = render_html(document)
    assert "Reverse charge: VAT Directive 2006/112/EC Art. 196" in html and "€94.50" in html


def test_out_of_scope_document_carries_no_vat_ids_or_rates() -> None:
    # BR-O-02: no seller or buyer VAT identifier; BR-O-05 / BR-O-09: no VAT rate.
    document = _document((_line("1", "Counts", "2", "35.50", OUTSIDE_EU),), buyer=US_BUYER)
    xml = render_cii_xml(document)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    assert root.findall(".//ram:SpecifiedTaxRegistration", NS) == []
    assert root.findall(".//ram:RateApplicablePercent", NS) == []
    header_tax = ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"
    assert root.findtext(f"{header_tax}/ram:ExemptionReasonCode", namespaces=NS) == "VATEX-EU-O"


def test_credit_note_has_type_381_and_names_the_corrected_invoice(domestic: InvoiceDocument) -> None:
    credit = dataclasses.replace(
        domestic, number="CN-2026-0003", kind=DocumentKind.CREDIT_NOTE, preceding_invoice="INV-2026-0042"
    )
    root = _xml(credit)
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "381"
    assert (
        root.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=NS)
        == "INV-2026-0042"
    )
    assert facturx.xml_check_xsd(etree.tostring(root), flavor="factur-x", level="en16931")
    html = render_html(credit)
    assert "<h1>Credit note</h1>" in html
    assert "corrects invoice <strong>INV-2026-0042</strong>" in html


@pytest.fixture(scope="module")
def pdf_and_xml() -> tuple[bytes, bytes]:
    """The one PDF these tests render (WeasyPrint takes a second or two)."""
    document = _document(
        (_line("1", "Feasibility counts", "12", "35.50", STANDARD_21, receipts=("rcpt-1", "rcpt-2")),),
        note="Thank you for using the network.",
    )
    return render_pdf(document), render_cii_xml(document)


def test_pdf_is_facturx_pdfa3(pdf_and_xml: tuple[bytes, bytes]) -> None:
    pdf, xml = pdf_and_xml
    assert pdf.startswith(b"%PDF")
    assert check_facturx(pdf) == xml
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.attachments["factur-x.xml"] == [xml]
    xmp = reader.xmp_metadata
    assert xmp is not None
    assert (xmp.pdfaid_part, xmp.pdfaid_conformance) == ("3", "B")
    assert xmp.dc_title == {"x-default": "Invoice INV-2026-0042"}
    assert reader.metadata is not None and reader.metadata.title == "Invoice INV-2026-0042"
    assert "Feasibility counts" in reader.pages[0].extract_text()


def _pdf_with_attachment(data: bytes | None) -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)
    if data is not None:
        writer.add_attachment("factur-x.xml", data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_check_facturx_refuses_missing_or_invalid_xml(pdf_and_xml: tuple[bytes, bytes]) -> None:
    _, xml = pdf_and_xml
    with pytest.raises(InputError, match=r"no factur-x\.xml attachment") as missing:
        check_facturx(_pdf_with_attachment(None))
    assert missing.value.field == "pdf"
    broken = etree.fromstring(xml)
    grand_total = broken.find(".//ram:GrandTotalAmount", NS)
    assert grand_total is not None
    grand_total.getparent().remove(grand_total)  # type: ignore[union-attr]
    with pytest.raises(InputError, match="fails the Factur-X EN16931 XSD"):
        check_facturx(_pdf_with_attachment(etree.tostring(broken, xml_declaration=True, encoding="UTF-8")))
    with pytest.raises(InputError, match="not a readable PDF"):
        check_facturx(b"this is not a PDF")
