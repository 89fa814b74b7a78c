"""The hub's money path, part 2: a month's invoices, payments, credit notes, evidence and statements.

One invoice per requester organisation and month (the EHDS "single invoice"), priced under the tariff in
force on the month's first day. Its lines are the metered receipts' charge lines
(:func:`phds.billing.invoicing.charge_lines`) plus the application fees of quotes accepted that month,
which rest on the hospitals' signed participation. Numbers are gapless per year; an issued invoice is
immutable (a correction is a credit note); hospitals are paid only from paid invoices.
"""

from __future__ import annotations

import calendar
import logging
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from phds.billing.documents import DocumentKind, DocumentLine, InvoiceDocument, Party, document_json
from phds.billing.invoicing import ChargeLine, charge_lines, split_line
from phds.billing.service_catalogue import BillableService
from phds.billing.tariff import Tariff
from phds.billing.vat import vat_treatment
from phds.billing.verify import participation_ref
from phds.errors import Conflict, InputError, NotFound
from phds.hub.billing_applications import pass_through_costs, quote_waivers
from phds.hub.billing_tariffs import profile_of, tariff_in_force
from phds.hub.store import UnitOfWork
from phds.hub.store.account_models import InvoiceRow
from phds.hub.store.models import OrganisationRow, utcnow
from phds.protocol.billing import (
    BillingProfile,
    InvoiceLine,
    InvoiceView,
)
from phds.protocol.organisations import RequesterCategory

log = logging.getLogger(__name__)

BUSINESS_CATEGORIES = frozenset({RequesterCategory.SME, RequesterCategory.INDUSTRY})


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` period."""
    try:
        year, month = (int(part) for part in period.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise InputError(f"{period!r} is not a month (YYYY-MM)", field="period") from None
    return first, date(year, month, calendar.monthrange(year, month)[1])


def _party(profile: BillingProfile) -> Party:
    return Party(
        profile.legal_name,
        tuple(profile.address_lines),
        profile.postcode,
        profile.city,
        profile.country,
        profile.vat_id,
        profile.email,
        profile.legal_id,
    )


def _operator(uow: UnitOfWork) -> tuple[OrganisationRow, BillingProfile]:
    operators = uow.organisations.list(kind="operator")
    profile = profile_of(uow, operators[0]) if operators else None
    if not operators or profile is None:
        raise Conflict("the operator has no billing profile; set it first (phds billing profile set)")
    return operators[0], profile


def month_lines(
    uow: UnitOfWork, organisation: OrganisationRow, period: str, tariff: Tariff
) -> list[ChargeLine]:
    """The organisation's charge lines up to the end of *period* not invoiced yet: application fees of
    quotes accepted by then, then the metered receipts of studies under an application (so receipts that
    arrive after a month was closed early go on the next month's invoice, never on none and never on two;
    a study without an application is metered but runs unbilled)."""
    assert organisation.category is not None
    invoiced = {
        ref
        for row in uow.accounts.invoices(organisation_id=organisation.id)
        if row.kind == "invoice" and row.state != "credited"
        for line in row.lines
        for ref in line["receipt_ids"]
    }
    category = RequesterCategory(organisation.category)
    profile = profile_of(uow, organisation)
    micro = bool(profile and profile.micro_enterprise)
    lines: list[ChargeLine] = []
    costs: dict[tuple[str | None, str], Decimal] = {}
    waivers: dict[tuple[str | None, str], str] = {}
    for app in uow.accounts.applications(organisation.id):
        costs |= pass_through_costs(uow, app.id)
        quote = uow.accounts.accepted_quote(app.id)
        if quote is not None:
            waivers |= quote_waivers(quote)
        if quote is None or quote.decided_at is None or quote.decided_at.strftime("%Y-%m") > period:
            continue
        accepted = [p.hospital for p in uow.accounts.participations(app.id) if p.accepted]
        if any(participation_ref(app.id, h) in invoiced for h in accepted):
            continue
        fee = next(
            (line for line in quote.lines if line["service"] == BillableService.APPLICATION_FEE.value), None
        )
        if fee is not None and accepted:  # the fee as quoted and accepted (reduced or waived there)
            lines.append(
                ChargeLine(
                    app.id,
                    None,
                    BillableService.APPLICATION_FEE.value,
                    f"Data-access application {app.id}"
                    + (f" (fee waived: {fee['waiver']})" if fee.get("waiver") else ""),
                    Decimal(1),
                    "C62",
                    Decimal(fee["unit_price"]),
                    tuple(participation_ref(app.id, h) for h in accepted),
                    dict.fromkeys(accepted),
                )
            )
    titles = {
        str(s.id): str(s.spec.get("title", s.id)) for s in uow.studies.list(organisation_id=organisation.id)
    }
    receipts = [
        r.metered()
        for r in uow.billing.receipts(requester_org=organisation.name)
        if r.month <= period and r.receipt_id not in invoiced and r.application_id is not None
    ]
    lines += charge_lines(
        receipts,
        tariff,
        category,
        micro_enterprise=micro,
        study_titles=titles,
        pass_through=costs,
        waivers=waivers,
    )
    return lines


def issue_invoice(
    uow: UnitOfWork, organisation: OrganisationRow, period: str, today: date, *, close_early: bool = False
) -> InvoiceRow | None:
    """Issue *organisation*'s invoice for *period*; None when nothing is chargeable. A second issue of the
    same month's invoice is refused; a running month is invoiced only when *close_early* says so."""
    existing = [
        i
        for i in uow.accounts.invoices(organisation_id=organisation.id, period=period)
        if i.kind == "invoice" and i.state != "credited"
    ]
    if existing:
        raise Conflict(f"{organisation.name}'s invoice for {period} is {existing[0].number}, issued already")
    first, last = period_bounds(period)
    if last >= today and not close_early:
        raise Conflict(
            f"{period} has not ended; invoice it from {last + timedelta(days=1)} (or close it early)"
        )
    if first > today:
        raise Conflict(f"{period} has not started")
    tariff = tariff_in_force(uow, first)
    lines = month_lines(uow, organisation, period, tariff)
    if not lines:
        return None
    _, seller = _operator(uow)
    buyer = profile_of(uow, organisation)
    if buyer is None:
        raise Conflict(f"{organisation.name} has no billing profile; set it first (phds billing profile set)")
    assert organisation.category is not None
    vat = vat_treatment(
        seller_country=tariff.vat.country,
        standard_rate=tariff.vat.standard_rate,
        buyer_country=buyer.country,
        buyer_vat_id=buyer.vat_id,
        buyer_is_business=RequesterCategory(organisation.category) in BUSINESS_CATEGORIES,
        public_law_fee=tariff.vat.public_law_fees,
    )
    number = uow.accounts.next_invoice_number(today.year)
    document = InvoiceDocument(
        number=number,
        kind=DocumentKind.INVOICE,
        issue_date=today,
        due_date=today + timedelta(days=tariff.payment_days),
        period_start=first,
        period_end=last,
        currency=tariff.currency,
        seller=_party(seller),
        buyer=_party(buyer),
        lines=tuple(
            DocumentLine(
                str(i),
                line.description,
                line.service,
                line.application_id,
                line.quantity,
                line.unit_code,
                line.unit_price,
                line.net_amount,
                vat,
                line.receipt_ids,
            )
            for i, line in enumerate(lines, start=1)
        ),
        payment_reference=number,
        seller_iban=seller.iban,
        note="Every line lists the node-signed receipts behind it; check them with phds billing verify.",
    )
    stored_lines = [_line_json(str(i), line, tariff) for i, line in enumerate(lines, start=1)]
    row = InvoiceRow(
        number=number,
        kind="invoice",
        series="invoice",
        organisation_id=organisation.id,
        period=period,
        tariff_version=tariff.version,
        document=document_json(document),
        lines=stored_lines,
        net_total=document.net_total,
        vat_total=document.vat_total,
        gross_total=document.gross_total,
        state="issued",
        issued_at=utcnow(),
        due_date=document.due_date,
    )
    uow.accounts.add(row)
    log.info(
        "invoice %s to %s for %s: %s %s", number, organisation.name, period, row.gross_total, tariff.currency
    )
    return row


def _line_json(line_id: str, line: ChargeLine, tariff: Tariff) -> dict[str, Any]:
    return InvoiceLine(
        line_id=line_id,
        application_id=line.application_id,
        study_id=line.study_id,
        service=line.service,
        description=line.description,
        quantity=line.quantity,
        unit_code=line.unit_code,
        unit_price=line.unit_price,
        net_amount=line.net_amount,
        receipt_ids=list(line.receipt_ids),
        shares=split_line(line, tariff.revenue_share),
        pass_through_hospital=line.pass_through_hospital,
    ).model_dump(mode="json")


def issue_month(uow: UnitOfWork, period: str, today: date, *, close_early: bool = False) -> list[InvoiceRow]:
    """Every requester's invoice for *period* not issued yet."""
    issued = []
    for organisation in uow.organisations.list(kind="requester"):
        mine = uow.accounts.invoices(organisation_id=organisation.id, period=period)
        if any(i.kind == "invoice" and i.state != "credited" for i in mine):
            continue
        row = issue_invoice(uow, organisation, period, today, close_early=close_early)
        if row is not None:
            issued.append(row)
    return issued


def invoice_view(uow: UnitOfWork, row: InvoiceRow, today: date | None = None) -> InvoiceView:
    organisation = uow.organisations.get(row.organisation_id)
    assert organisation is not None
    today = today or utcnow().date()
    return InvoiceView(
        number=row.number,
        kind=row.kind,
        organisation=organisation.name,
        period=row.period,
        tariff_version=row.tariff_version,
        state=row.state,
        currency=row.document["currency"],
        net_total=Decimal(row.net_total),
        vat_total=Decimal(row.vat_total),
        gross_total=Decimal(row.gross_total),
        issued_at=row.issued_at,
        due_date=row.due_date,
        paid_at=row.paid_at,
        credit_of=row.credit_of,
        overdue=row.state == "issued" and row.kind == "invoice" and row.due_date < today,
        lines=[InvoiceLine.model_validate(line) for line in row.lines],
    )


def invoice_for(uow: UnitOfWork, number: str, *, lock: bool = False) -> InvoiceRow:
    row = uow.accounts.invoice(number, lock=lock)
    if row is None:
        raise NotFound(f"no invoice {number!r}")
    return row


def record_payment(uow: UnitOfWork, number: str, paid_at: datetime, reference: str | None) -> InvoiceRow:
    """issued → paid (the operator records it); any other state is refused."""
    row = invoice_for(uow, number, lock=True)
    if row.kind != "invoice" or row.state != "issued":
        raise Conflict(f"{row.kind} {number} is {row.state}; only an issued invoice can be paid")
    row.state, row.paid_at, row.payment_reference = "paid", paid_at, reference
    return row


def credit_invoice(uow: UnitOfWork, number: str, reason: str, today: date) -> InvoiceRow:
    """A credit note cancelling issued (unpaid) invoice *number* in full; the invoice becomes credited."""
    original = invoice_for(uow, number, lock=True)
    if original.kind != "invoice" or original.state != "issued":
        raise Conflict(
            f"{original.kind} {number} is {original.state}; only an issued, unpaid invoice is credited"
        )
    if not reason.strip():
        raise InputError("a credit note needs its reason", field="reason")
    credit_number = uow.accounts.next_invoice_number(today.year)
    data = dict(original.document) | {
        "number": credit_number,
        "kind": DocumentKind.CREDIT_NOTE.value,
        "type_code": "381",
        "issue_date": today.isoformat(),
        "due_date": today.isoformat(),
        "preceding_invoice": number,
        "payment_reference": credit_number,
        "note": f"Credit note for {number}: {reason.strip()}",
    }
    row = InvoiceRow(
        number=credit_number,
        kind="credit_note",
        series=f"credit:{number}",
        organisation_id=original.organisation_id,
        period=original.period,
        tariff_version=original.tariff_version,
        document=data,
        lines=original.lines,
        net_total=original.net_total,
        vat_total=original.vat_total,
        gross_total=original.gross_total,
        state="issued",
        issued_at=utcnow(),
        due_date=today,
        credit_of=number,
    )
    original.state = "credited"
    original.series = f"credited:{number}"  # the month may be invoiced again, correctly
    uow.accounts.add(row)
    return row
