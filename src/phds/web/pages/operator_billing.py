"""The operator's invoices: issue a month's invoices, read them, record payments, issue credit notes.

Admins only. Everything goes through ``/api/v1/billing/invoices``; the documents (PDF/A-3 with its
Factur-X XML, and the XML alone) are streamed from the hub by :mod:`phds.web.pages.money`'s download
route, which the requester's page shares. Tariffs, quotes and statements are in
:mod:`phds.web.pages.operator_accounts`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from phds.errors import InputError
from phds.protocol.billing import InvoiceView
from phds.web.pages.outcome import (
    FIXABLE,
    NO_OUTCOME,
    Outcome,
    done,
    money,
    month,
    recent_months,
    segment,
    this_month,
    with_flash,
)
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

router = APIRouter(prefix="/operator/billing")


def outstanding(invoices: list[InvoiceView]) -> dict[str, tuple[int, Decimal]]:
    """Per currency: how many issued invoices await payment, and their gross total."""
    found: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal("0.00")))
    for invoice in invoices:
        if invoice.kind == "invoice" and invoice.state == "issued":
            count, total = found[invoice.currency]
            found[invoice.currency] = (count + 1, total + invoice.gross_total)
    return dict(found)


async def invoices_page(
    request: Request,
    viewer: Viewer,
    outcome: Outcome = NO_OUTCOME,
    *,
    period: str | None = None,
    issue_period: str | None = None,
) -> Response:
    viewer.require("admin")
    shown = month(period) if period else None
    invoices = [
        InvoiceView.model_validate(i) for i in await viewer.api.get("/billing/invoices", period=shown)
    ]
    invoices.sort(key=lambda i: i.number, reverse=True)
    return page(
        request,
        "billing_invoices.html",
        viewer,
        status_code=outcome.status,
        invoices=invoices,
        outstanding=outstanding(invoices),
        months=recent_months(),
        period=shown or "",
        issue_period=issue_period or this_month(),
        running_month=this_month(),
        outcome=outcome,
        section="invoices",
    )


@router.get("", response_class=HTMLResponse)
async def invoices(request: Request, viewer: CurrentViewer, period: str = "") -> Response:
    """Every invoice and credit note (of *period*, if chosen), newest first, and the form to issue a month."""
    return await with_flash(
        request, lambda outcome: invoices_page(request, viewer, outcome, period=period or None)
    )


@router.post("/issue", response_class=HTMLResponse)
async def issue(
    request: Request,
    viewer: CurrentViewer,
    period: Annotated[str, Form()] = "",
    close_early: Annotated[bool, Form()] = False,
) -> Response:
    """Issue every requester's invoice for *period* (``POST /billing/invoices/issue``); the running month
    only with *close_early*, as ``phds billing invoice issue --close-early``."""
    viewer.require("admin")
    try:
        params = {"period": month(period), "close_early": str(close_early).lower()}
        found = await viewer.api.request("POST", "/billing/invoices/issue", params=params)
    except FIXABLE as exc:
        return await invoices_page(request, viewer, Outcome.failed("issue", exc), issue_period=period)
    issued = [InvoiceView.model_validate(i) for i in found]
    if not issued:
        notice = (
            f"No new invoice for {period}: every requester's invoice for it is issued already, or nothing "
            "chargeable is left to invoice."
        )
    else:
        listed = "; ".join(
            f"{i.number} to {i.organisation} ({money(i.gross_total, i.currency)})" for i in issued
        )
        early = " (closed early: later usage goes on the next month's invoice)" if close_early else ""
        notice = (
            f"Issued {len(issued)} invoice{'s' if len(issued) != 1 else ''} for {period}{early}: {listed}."
        )
    return done(request, f"/portal/operator/billing?period={period}", "issue", notice)


async def invoice_page(
    request: Request, viewer: Viewer, number: str, outcome: Outcome = NO_OUTCOME
) -> Response:
    viewer.require("admin")
    invoice = InvoiceView.model_validate(
        await viewer.api.get(f"/billing/invoices/{segment(number, 'number')}")
    )
    credits = [
        InvoiceView.model_validate(i)
        for i in await viewer.api.get("/billing/invoices", period=invoice.period)
        if i.get("credit_of") == invoice.number
    ]
    return page(
        request,
        "billing_invoice.html",
        viewer,
        status_code=outcome.status,
        invoice=invoice,
        credits=credits,
        outcome=outcome,
        section="invoices",
    )


@router.get("/invoices/{number}", response_class=HTMLResponse)
async def invoice(request: Request, viewer: CurrentViewer, number: str) -> Response:
    """One invoice: its lines with the receipts behind each, its documents, and its payment or credit."""
    return await with_flash(request, lambda outcome: invoice_page(request, viewer, number, outcome))


@router.post("/invoices/{number}/payment", response_class=HTMLResponse)
async def record_payment(
    request: Request,
    viewer: CurrentViewer,
    number: str,
    reference: Annotated[str, Form()] = "",
    paid_on: Annotated[str, Form()] = "",
) -> Response:
    """Record that the invoice was paid (on *paid_on*, default now); its hospitals' shares become payable."""
    viewer.require("admin")
    number = segment(number, "number")
    body: dict[str, Any] = {"reference": reference.strip() or None}
    try:
        if paid_on.strip():
            try:
                body["paid_at"] = f"{date.fromisoformat(paid_on.strip()).isoformat()}T12:00:00+00:00"
            except ValueError:
                raise InputError(f"{paid_on!r} is not a date (YYYY-MM-DD)", field="paid_on") from None
        paid = InvoiceView.model_validate(await viewer.api.post(f"/billing/invoices/{number}/payment", body))
    except FIXABLE as exc:
        return await invoice_page(request, viewer, number, Outcome.failed("payment", exc))
    notice = f"Recorded the payment of {paid.number} ({money(paid.gross_total, paid.currency)})."
    return done(request, f"/portal/operator/billing/invoices/{number}", "payment", notice)


@router.post("/invoices/{number}/credit", response_class=HTMLResponse)
async def credit(
    request: Request, viewer: CurrentViewer, number: str, reason: Annotated[str, Form()] = ""
) -> Response:
    """Cancel an issued, unpaid invoice with a credit note (the month can then be invoiced again)."""
    viewer.require("admin")
    number = segment(number, "number")
    try:
        note = InvoiceView.model_validate(
            await viewer.api.post(f"/billing/invoices/{number}/credit", {"reason": reason.strip()})
        )
    except FIXABLE as exc:
        return await invoice_page(request, viewer, number, Outcome.failed("credit", exc))
    notice = f"Issued credit note {note.number} cancelling {number}; {note.period} can be invoiced again."
    return done(request, f"/portal/operator/billing/invoices/{number}", "credit", notice)
