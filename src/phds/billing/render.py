"""Renderings of an :class:`~phds.billing.documents.InvoiceDocument`: HTML, CII XML and Factur-X PDF.

* HTML: a printable A4 page from the Jinja2 template ``templates/invoice.html`` (autoescaped).
* CII XML: UN/CEFACT Cross Industry Invoice D16B in the Factur-X EN16931 profile (the EN 16931-1:2017
  semantic model), built with drafthorse and checked against the profile's XSD.
* PDF: the HTML as PDF/A-3b (ISO 19005-3) by WeasyPrint, with the CII XML embedded as
  ``factur-x.xml`` (AFRelationship Data) and the Factur-X XMP metadata, by the factur-x library.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, NoReturn

import facturx  # type: ignore[import-untyped]
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from drafthorse.models.accounting import ApplicableTradeTax  # type: ignore[import-untyped]
from drafthorse.models.document import Document  # type: ignore[import-untyped]
from drafthorse.models.note import IncludedNote  # type: ignore[import-untyped]
from drafthorse.models.party import TaxRegistration  # type: ignore[import-untyped]
from drafthorse.models.payment import PaymentMeans, PaymentTerms  # type: ignore[import-untyped]
from drafthorse.models.tradelines import LineItem  # type: ignore[import-untyped]
from jinja2 import Environment, PackageLoader, StrictUndefined
from stdnum import iban as iban_number

from phds.errors import InputError

from .documents import DocumentKind, DocumentLine, InvoiceDocument, Party
from .money import format_money
from .vat import VatCategory

# The EN 16931 specification identifier (BT-24) that the Factur-X EN16931 profile uses.
EN16931_GUIDELINE = "urn:cen.eu:en16931:2017"
FACTURX_FILENAME = "factur-x.xml"

# UN/ECE Recommendation 20 codes the network bills in, as a reader sees them.
UNIT_LABELS = {"C62": "unit", "HUR": "hour", "MON": "month", "DAY": "day", "ANN": "year", "E48": "service"}
CATEGORY_LABELS = {
    VatCategory.STANDARD: "Standard rate",
    VatCategory.REVERSE_CHARGE: "Reverse charge",
    VatCategory.EXEMPT: "Exempt",
    VatCategory.OUT_OF_SCOPE: "Not subject to VAT",
}


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> NoReturn:
    # The template embeds everything; an invoice never makes WeasyPrint fetch a URL or read a file.
    raise ValueError(f"invoice rendering fetches nothing ({url})")


def _line_groups(lines: Iterable[DocumentLine]) -> list[tuple[str | None, list[DocumentLine]]]:
    groups: dict[str | None, list[DocumentLine]] = {}
    for line in lines:
        groups.setdefault(line.application_id, []).append(line)
    return list(groups.items())


def _environment(locale: str) -> Environment:
    env = Environment(
        loader=PackageLoader("phds.billing", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    country_names = Locale.parse(locale).territories

    def quantity(value: Decimal) -> str:
        # Every digit shown: a quantity or a unit price may carry more decimals than an amount.
        return format_decimal(value, locale=locale, decimal_quantization=False)

    def price(value: Decimal, currency: str) -> str:
        return format_currency(value, currency, locale=locale, decimal_quantization=False)

    def unit(code: str, value: Decimal) -> str:
        label = UNIT_LABELS.get(code, code)
        return label if value == 1 or label == code else f"{label}s"

    env.filters.update(
        money=lambda amount, currency: format_money(amount, currency, locale),
        long_date=lambda day: format_date(day, format="long", locale=locale),
        quantity=quantity,
        unit=unit,
        price=price,
        rate=lambda value: f"{quantity(value)}%",
        category=lambda category: CATEGORY_LABELS[category],
        country=lambda code: country_names.get(code, code),
        iban=iban_number.format,
    )
    return env


def render_html(doc: InvoiceDocument, locale: str = "en_IE") -> str:
    """*doc* as a self-contained, printable A4 HTML page (dates and amounts written for *locale*)."""
    template = _environment(locale).get_template("invoice.html")
    return template.render(
        doc=doc,
        is_credit_note=doc.kind is DocumentKind.CREDIT_NOTE,
        groups=_line_groups(doc.lines),
        lang=locale.replace("_", "-"),
    )


def _xml_decimal(value: Decimal) -> Decimal:
    # Fixed-point, as xs:decimal requires: Decimal("1E+1") would serialise as "1E+1".
    return Decimal(format(value, "f"))


def _fill_party(target: Any, party: Party, *, with_vat_id: bool) -> None:
    target.name = party.name  # BT-27 / BT-44
    if party.legal_id:
        target.legal_organization.id = party.legal_id  # BT-30 / BT-47
    address = target.address
    if party.postcode:
        address.postcode = party.postcode
    for attribute, text in zip(("line_one", "line_two", "line_three"), party.address_lines, strict=False):
        setattr(address, attribute, text)
    if party.city:
        address.city_name = party.city
    address.country_id = party.country  # BT-40 / BT-55
    if party.email:
        # BT-34 / BT-49 electronic address; "EM" is the e-mail scheme of the CEF EAS code list.
        target.electronic_address.uri_ID = ("EM", party.email)
    if with_vat_id and party.vat_id:
        target.tax_registrations.add(TaxRegistration(id=("VA", party.vat_id)))  # BT-31 / BT-48


def _fill_tax(tax: Any, category: VatCategory, rate: Decimal, reason: str | None, code: str | None) -> Any:
    tax.type_code = "VAT"
    tax.category_code = category.value
    if reason:
        tax.exemption_reason = reason  # BT-120
    if code:
        tax.exemption_reason_code = code  # BT-121
    if category is not VatCategory.OUT_OF_SCOPE:
        # BR-O-05, BR-O-09 (BT-152, BT-119): no rate at all on a line or group not subject to VAT.
        tax.rate_applicable_percent = _xml_decimal(rate)
    return tax


def _line_item(line: DocumentLine) -> Any:
    item = LineItem()
    item.document.line_id = line.line_id  # BT-126
    notes = []
    if line.application_id:
        notes.append(f"Application {line.application_id}")
    if line.receipt_ids:
        notes.append(f"Receipts: {', '.join(line.receipt_ids)}")
    if notes:
        item.document.notes.add(IncludedNote(content="; ".join(notes)))  # BT-127
    item.product.seller_assigned_id = line.service  # BT-155
    item.product.name = line.description  # BT-153
    item.agreement.net.amount = _xml_decimal(line.unit_price)  # BT-146
    item.delivery.billed_quantity = (_xml_decimal(line.quantity), line.unit_code)  # BT-129, BT-130
    _fill_tax(item.settlement.trade_tax, line.vat.category, line.vat.rate, None, None)  # BT-151, BT-152
    item.settlement.monetary_summation.total_amount = line.net_amount  # BT-131
    return item


def render_cii_xml(doc: InvoiceDocument) -> bytes:
    """*doc* as Factur-X EN16931 CII XML (UTF-8), validated against the profile's XSD by drafthorse."""
    xml = Document()
    xml.context.guideline_parameter.id = EN16931_GUIDELINE  # BT-24
    xml.header.id = doc.number  # BT-1
    xml.header.type_code = doc.kind.type_code  # BT-3
    xml.header.issue_date_time = doc.issue_date  # BT-2
    if doc.note:
        xml.header.notes.add(IncludedNote(content=doc.note))  # BT-22

    # BR-O-02: a document not subject to VAT carries neither party's VAT identifier.
    with_vat_ids = any(line.vat.category is not VatCategory.OUT_OF_SCOPE for line in doc.lines)
    for line in doc.lines:
        xml.trade.items.add(_line_item(line))
    _fill_party(xml.trade.agreement.seller, doc.seller, with_vat_id=with_vat_ids)
    _fill_party(xml.trade.agreement.buyer, doc.buyer, with_vat_id=with_vat_ids)
    # BT-72: services supplied over a period are completed at its end (VAT Directive Art. 64(1)); it
    # also keeps the mandatory delivery element from being empty (Peppol rule PEPPOL-EN16931-R008).
    xml.trade.delivery.event.occurrence = doc.period_end

    settlement = xml.trade.settlement
    settlement.payment_reference = doc.payment_reference  # BT-83
    settlement.currency_code = doc.currency  # BT-5
    means = PaymentMeans()
    if doc.seller_iban:
        means.type_code = "58"  # SEPA credit transfer (UNTDID 4461)
        means.payee_account.iban = doc.seller_iban  # BT-84
    else:
        means.type_code = "1"  # instrument not defined; BR-61 forbids 30/58 without an account
    settlement.payment_means.add(means)
    for group in doc.breakdown:
        tax = _fill_tax(
            ApplicableTradeTax(), group.category, group.rate, group.exemption_reason, group.exemption_code
        )
        tax.calculated_amount = group.tax_amount  # BT-117
        tax.basis_amount = group.taxable_amount  # BT-116
        settlement.trade_tax.add(tax)
    settlement.period.start = doc.period_start  # BT-73
    settlement.period.end = doc.period_end  # BT-74
    terms = PaymentTerms()
    verb = "Payment" if doc.kind is DocumentKind.INVOICE else "Refund"
    terms.description = f"{verb} due by {doc.due_date.isoformat()}, reference {doc.payment_reference}"
    terms.due = doc.due_date  # BT-9; BR-CO-25 wants it when an amount is due
    settlement.terms.add(terms)
    summation = settlement.monetary_summation
    summation.line_total = doc.net_total  # BT-106
    summation.tax_basis_total = doc.net_total  # BT-109
    # BT-110; CII tells it from BT-111 (tax in accounting currency) by its currencyID.
    summation.tax_total = (doc.vat_total, doc.currency)
    summation.grand_total = doc.gross_total  # BT-112
    summation.due_amount = doc.gross_total  # BT-115
    if doc.preceding_invoice:
        settlement.invoice_referenced_document.issuer_assigned_id = doc.preceding_invoice  # BT-25
    serialised: bytes = xml.serialize(schema="FACTUR-X_EN16931")
    return serialised


def render_pdf(doc: InvoiceDocument) -> bytes:
    """*doc* as a Factur-X EN16931 PDF/A-3b: the HTML rendering with the CII XML embedded."""
    with warnings.catch_warnings():
        # Imported late (it loads Pango). Without the system's libharfbuzz-subset, WeasyPrint 70 warns
        # that a future version will need it and subsets fonts with fontTools meanwhile.
        warnings.filterwarnings("ignore", "HarfBuzz-Subset will be required", DeprecationWarning)
        from weasyprint import HTML  # type: ignore[import-untyped]

    html = render_html(doc)
    with warnings.catch_warnings():
        # WeasyPrint 70 opens its sRGB ICC profile for PDF/A without closing it (a ResourceWarning
        # when the file object is collected, inside write_pdf); the PDF itself is unaffected.
        warnings.simplefilter("ignore", ResourceWarning)
        visual: bytes = HTML(string=html, url_fetcher=_refuse_fetch).write_pdf(pdf_variant="pdf/a-3b")
    metadata = {
        "author": doc.seller.name,
        "keywords": f"{doc.title}, Factur-X, EN 16931",
        "title": doc.title,
        "subject": f"{doc.title} dated {doc.issue_date.isoformat()} from {doc.seller.name} "
        f"to {doc.buyer.name}",
    }
    combined: bytes = facturx.generate_from_binary(
        visual,
        render_cii_xml(doc),
        flavor="factur-x",
        level="en16931",
        check_xsd=True,
        pdf_metadata=metadata,
        lang="en-IE",
    )
    return combined


def check_facturx(pdf: bytes) -> bytes:
    """The ``factur-x.xml`` embedded in *pdf*, after checking it against the Factur-X EN16931 XSD.

    Raises InputError with the reason when the bytes are no PDF, carry no Factur-X XML or the XML
    fails the XSD.
    """
    try:
        _, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False, filenames=[FACTURX_FILENAME])
    except Exception as exc:  # pypdf and factur-x raise plain exceptions of many kinds
        raise InputError(f"not a readable PDF: {exc}", field="pdf") from None
    if not xml:
        raise InputError(f"the PDF has no {FACTURX_FILENAME} attachment", field="pdf")
    try:
        facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    except Exception as exc:  # factur-x wraps the lxml error in a bare Exception
        raise InputError(f"{FACTURX_FILENAME} fails the Factur-X EN16931 XSD: {exc}", field="pdf") from None
    extracted: bytes = xml
    return extracted
