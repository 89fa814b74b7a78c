"""The operator's price list, quotes and hospital statements (admins only).

Tariffs: the versions, and uploading a new one (YAML or JSON, checked here first so an error names its
line, then by the hub, which refuses an edit of an existing version). Applications: the hospitals'
signed participation, and pricing an application into a quote (with a recorded waiver, if any).
Statements: each hospital's share of a month's invoices, and recording a payout of what is payable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from phds.billing.tariff import MAX_TARIFF_BYTES, tariff_from_text
from phds.errors import InputError
from phds.protocol.billing import ApplicationView, HospitalStatement, Payout, QuoteView, TariffInfo
from phds.protocol.organisations import Organisation
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


# -- tariffs ------------------------------------------------------------------------------------------


async def tariffs_page(
    request: Request, viewer: Viewer, outcome: Outcome = NO_OUTCOME, text: str = ""
) -> Response:
    viewer.require("admin")
    tariffs = [TariffInfo.model_validate(t) for t in await viewer.api.get("/billing/tariffs")]
    return page(
        request,
        "billing_tariffs.html",
        viewer,
        status_code=outcome.status,
        tariffs=list(reversed(tariffs)),
        outcome=outcome,
        text=text,
        section="tariffs",
    )


@router.get("/tariffs", response_class=HTMLResponse)
async def tariffs(request: Request, viewer: CurrentViewer) -> Response:
    """Every tariff version, newest first, with its prices per requester category."""
    return await with_flash(request, lambda outcome: tariffs_page(request, viewer, outcome))


@router.post("/tariffs", response_class=HTMLResponse)
async def add_tariff(
    request: Request,
    viewer: CurrentViewer,
    tariff_text: Annotated[str, Form()] = "",
    tariff_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add a tariff version from an uploaded (or pasted) YAML/JSON file: a new version, never an edit."""
    viewer.require("admin")
    name, text = "the pasted tariff", tariff_text
    try:
        if tariff_file is not None and tariff_file.filename:
            name = tariff_file.filename
            raw = await tariff_file.read(MAX_TARIFF_BYTES + 1)
            if len(raw) > MAX_TARIFF_BYTES:
                raise InputError(f"larger than {MAX_TARIFF_BYTES:,} bytes", file=name, field="tariff_file")
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", file=name, field="tariff_file") from None
        if not text.strip():
            raise InputError("choose a tariff file or paste one", field="tariff_file")
        tariff = tariff_from_text(text, name)
        added = TariffInfo.model_validate(
            await viewer.api.post("/billing/tariffs", tariff.model_dump(mode="json"))
        )
    except FIXABLE as exc:
        return await tariffs_page(request, viewer, Outcome.failed("tariff", exc), text=tariff_text)
    notice = f"Added tariff {added.version} ({added.currency}), in force from {added.effective_from}."
    return done(request, "/portal/operator/billing/tariffs", "tariff", notice)


# -- applications and quotes --------------------------------------------------------------------------


def latest_quote(application: ApplicationView) -> QuoteView | None:
    return max(application.quotes, key=lambda q: q.revision) if application.quotes else None


async def applications_page(request: Request, viewer: Viewer, outcome: Outcome = NO_OUTCOME) -> Response:
    viewer.require("admin")
    applications = [ApplicationView.model_validate(a) for a in await viewer.api.get("/billing/applications")]
    applications.sort(key=lambda a: a.created_at, reverse=True)
    tariffs = [TariffInfo.model_validate(t) for t in await viewer.api.get("/billing/tariffs")]
    return page(
        request,
        "billing_applications.html",
        viewer,
        status_code=outcome.status,
        applications=applications,
        latest={a.id: latest_quote(a) for a in applications},
        currency=tariffs[-1].currency if tariffs else "EUR",
        outcome=outcome,
        section="applications",
    )


@router.get("/applications", response_class=HTMLResponse)
async def applications(request: Request, viewer: CurrentViewer) -> Response:
    """Every application: its hospitals' signed participation, its quotes, what it has cost so far."""
    return await with_flash(request, lambda outcome: applications_page(request, viewer, outcome))


@router.post("/applications/{application_id}/quote", response_class=HTMLResponse)
async def quote(
    request: Request,
    viewer: CurrentViewer,
    application_id: str,
    waive_service: Annotated[str, Form()] = "",
    waive_reason: Annotated[str, Form()] = "",
) -> Response:
    """Price the application into a new quote revision (``POST .../quotes``); an offered one is superseded."""
    viewer.require("admin")
    application_id = segment(application_id, "application_id")
    form = f"quote-{application_id}"
    try:
        body = None
        if waive_service:
            if not waive_reason.strip():
                raise InputError("record why the fee is waived", field="waive_reason")
            body = {"waivers": {waive_service: waive_reason.strip()}}
        offered = QuoteView.model_validate(
            await viewer.api.post(f"/billing/applications/{application_id}/quotes", body)
        )
    except FIXABLE as exc:
        return await applications_page(request, viewer, Outcome.failed(form, exc))
    notice = (
        f"Offered quote {offered.id} (revision {offered.revision}, tariff {offered.tariff_version}): ceiling "
        f"{money(offered.ceiling, offered.currency)}, valid until {offered.valid_until}. The requester "
        "accepts or declines it on their page."
    )
    return done(request, f"/portal/operator/billing/applications#app-{application_id}", form, notice)


# -- hospital statements and payouts ------------------------------------------------------------------


async def statements_page(
    request: Request, viewer: Viewer, period: str, hospital: str = "", outcome: Outcome = NO_OUTCOME
) -> Response:
    viewer.require("admin")
    period = month(period)
    hospitals = [
        Organisation.model_validate(o) for o in await viewer.api.get("/organisations", kind="hospital")
    ]
    statements = [
        HospitalStatement.model_validate(await viewer.api.get(f"/billing/statements/{h.name}", period=period))
        for h in sorted(hospitals, key=lambda h: h.name)
    ]
    chosen = next((s for s in statements if s.hospital == hospital), None)
    return page(
        request,
        "billing_statements.html",
        viewer,
        status_code=outcome.status,
        statements=statements,
        chosen=chosen,
        period=period,
        months=recent_months(),
        totals=_totals(statements),
        outcome=outcome,
        section="statements",
    )


def _totals(statements: list[HospitalStatement]) -> dict[str, Decimal]:
    return {
        "total": sum((s.total for s in statements), Decimal("0.00")),
        "payable": sum((s.payable for s in statements), Decimal("0.00")),
        "paid_out": sum((s.paid_out for s in statements), Decimal("0.00")),
        "outstanding": sum((s.outstanding for s in statements), Decimal("0.00")),
    }


@router.get("/statements", response_class=HTMLResponse)
async def statements(
    request: Request, viewer: CurrentViewer, period: str = "", hospital: str = ""
) -> Response:
    """Every hospital's earnings of *period* (default: this month), one hospital's lines if chosen."""
    return await with_flash(
        request, lambda outcome: statements_page(request, viewer, period or this_month(), hospital, outcome)
    )


@router.post("/payouts", response_class=HTMLResponse)
async def payout(
    request: Request,
    viewer: CurrentViewer,
    hospital: Annotated[str, Form()] = "",
    period: Annotated[str, Form()] = "",
    reference: Annotated[str, Form()] = "",
) -> Response:
    """Pay *hospital* what is payable of *period* and not paid out yet (``POST /billing/payouts``)."""
    viewer.require("admin")
    hospital = segment(hospital, "hospital")
    period = month(period)
    form = f"payout-{hospital}"
    body = {"hospital": hospital, "period": period, "reference": reference.strip() or None}
    try:
        paid = Payout.model_validate(await viewer.api.post("/billing/payouts", body))
    except FIXABLE as exc:
        return await statements_page(request, viewer, period, hospital, Outcome.failed(form, exc))
    statement = HospitalStatement.model_validate(
        await viewer.api.get(f"/billing/statements/{hospital}", period=period)
    )
    notice = (
        f"Recorded a payout of {money(paid.amount, statement.currency)} to {hospital} for {period}, from "
        f"{', '.join(paid.invoices)}."
    )
    return done(
        request, f"/portal/operator/billing/statements?period={period}&hospital={hospital}", form, notice
    )
