"""The hub's money path, part 3: what stands behind an invoice (its evidence, for ``phds billing verify``)
and each hospital's monthly statement of its shares, for ``phds node earnings``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from phds.billing.verify import PARTICIPATION_PREFIX
from phds.errors import Conflict
from phds.hub.billing_applications import quote_waivers
from phds.hub.billing_invoices import invoice_view
from phds.hub.billing_tariffs import profile_of
from phds.hub.store import UnitOfWork
from phds.hub.store.account_models import InvoiceRow, PayoutRow
from phds.hub.store.models import utcnow
from phds.protocol.billing import (
    HospitalStatement,
    InvoiceEvidence,
    ParticipationStatement,
    Payout,
    StatementLine,
)


def evidence(uow: UnitOfWork, row: InvoiceRow) -> InvoiceEvidence:
    """The node-signed receipts and participation behind an invoice, and its tariff."""
    view = invoice_view(uow, row)
    receipt_ids = [r for line in view.lines for r in line.receipt_ids if not r.startswith("p:")]
    receipts = [r.receipt for r in uow.billing.receipts(receipt_ids=receipt_ids)] if receipt_ids else []
    organisation = uow.organisations.get(row.organisation_id)
    assert organisation is not None and organisation.category is not None
    participations: list[ParticipationStatement] = []
    pass_through: dict[str, Decimal] = {}
    waivers: dict[str, str] = {}
    for app in uow.accounts.applications(organisation.id):
        quote = uow.accounts.accepted_quote(app.id)
        if quote is not None:
            waivers |= {f"{a}/{service}": reason for (a, service), reason in quote_waivers(quote).items()}
        for p in uow.accounts.participations(app.id):
            participations.append(ParticipationStatement.model_validate(p.statement))
            if p.accepted:
                pass_through[f"{app.id}/{p.hospital}"] = Decimal(p.pass_through)
    tariff = uow.accounts.tariff(row.tariff_version)
    assert tariff is not None
    profile = profile_of(uow, organisation)
    return InvoiceEvidence(
        invoice=view,
        receipts=receipts,
        participations=participations,
        tariff=tariff.document,
        requester_category=organisation.category,
        micro_enterprise=bool(profile and profile.micro_enterprise),
        pass_through=pass_through,
        waivers=waivers,
    )


def _refers_to(ref: str, hospital: str) -> bool:
    """Whether *ref* is a participation reference (``p:<application>:<hospital>``) of *hospital*."""
    return ref.startswith(PARTICIPATION_PREFIX) and ref.rsplit(":", 1)[-1] == hospital


def hospital_statement(uow: UnitOfWork, hospital: str, period: str) -> HospitalStatement:
    """A hospital's shares of *period*'s invoices (credited ones excluded); payable from paid ones."""
    lines: list[StatementLine] = []
    currency = "EUR"
    shared: list[tuple[InvoiceRow, dict[str, Any], Decimal]] = []
    for row in uow.accounts.invoices(period=period):
        if row.kind != "invoice" or row.state == "credited":
            continue
        currency = row.document["currency"]
        for line in row.lines:
            share = Decimal(line["shares"].get(hospital, "0"))
            if share:
                shared.append((row, line, share))
    usage_ids = [
        r for _, ln, _ in shared for r in ln["receipt_ids"] if not r.startswith(PARTICIPATION_PREFIX)
    ]
    metered = uow.billing.receipts(receipt_ids=usage_ids, hospital=hospital) if usage_ids else []
    theirs = {r.receipt_id for r in metered}
    for row, line, share in shared:
        lines.append(
            StatementLine(
                invoice=row.number,
                invoice_state=row.state,
                line_id=line["line_id"],
                study_id=line["study_id"],
                description=line["description"],
                amount=share,
                receipt_ids=line["receipt_ids"],
                hospital_receipt_ids=[
                    r for r in line["receipt_ids"] if r in theirs or _refers_to(r, hospital)
                ],
            )
        )
    total = sum((line.amount for line in lines), Decimal("0.00"))
    payable = sum((line.amount for line in lines if line.invoice_state == "paid"), Decimal("0.00"))
    payouts = [
        Payout(
            hospital=p.hospital,
            period=p.period,
            amount=Decimal(p.amount),
            invoices=p.invoices,
            reference=p.reference,
            paid_at=p.paid_at,
        )
        for p in uow.accounts.payouts(hospital, period)
    ]
    paid_out = sum((p.amount for p in payouts), Decimal("0.00"))
    return HospitalStatement(
        hospital=hospital,
        period=period,
        currency=currency,
        lines=lines,
        total=total,
        payable=payable,
        paid_out=paid_out,
        payouts=payouts,
    )


def record_payout(uow: UnitOfWork, hospital: str, period: str, reference: str | None) -> Payout:
    """Pay *hospital* what is payable for *period* and not paid out yet: only from paid invoices."""
    statement = hospital_statement(uow, hospital, period)
    amount = statement.outstanding
    if amount <= 0:
        raise Conflict(
            f"nothing to pay {hospital} for {period}: {statement.payable} payable from paid invoices, "
            f"{statement.paid_out} paid out already ({statement.total - statement.payable} awaits payment)"
        )
    invoices = sorted({line.invoice for line in statement.lines if line.invoice_state == "paid"})
    row = PayoutRow(
        hospital=hospital,
        period=period,
        amount=amount,
        invoices=invoices,
        reference=reference,
        paid_at=utcnow(),
    )
    uow.accounts.add(row)
    return Payout(
        hospital=hospital,
        period=period,
        amount=amount,
        invoices=invoices,
        reference=reference,
        paid_at=row.paid_at,
    )
