"""The requester's money page: applications, quotes to accept or decline, invoices, and the privacy budget.

Everything goes through ``/api/v1/billing`` as the signed-in requester, so the hub shows them only their
organisation's applications and invoices. The invoice documents are streamed from the hub by
:func:`invoice_document`, which the operator's pages link to as well.

The privacy budget is the node's to keep (DESIGN: "a per-requester ε budget that the node enforces"): the
hub has no running balance to show. Each DP release reports what remains of the requester's budget on its
dataset at that node (:class:`~phds.protocol.privacy.DpBudget`, in a result's ``dp_budget``), so the page
shows the latest such report per hospital and dataset, and says which study made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from phds.billing.applications import ApplicationForm
from phds.billing.service_catalogue import BillableService
from phds.documents import model_from_document
from phds.errors import InputError
from phds.protocol.billing import ApplicationView, InvoiceView, QuoteView, TariffInfo
from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.organisations import Organisation
from phds.protocol.privacy import DpBudget
from phds.protocol.studies import StudyView
from phds.web.pages.outcome import FIXABLE, NO_OUTCOME, Outcome, done, money, segment, with_flash
from phds.web.render import page
from phds.web.session import CurrentViewer, Viewer

router = APIRouter()

DOCUMENT_TYPES = {"pdf": "application/pdf", "xml": "application/xml"}
"""The downloads: the hub's HTML rendering is not served here, as its styles would run under our origin."""


@dataclass(frozen=True)
class BudgetReport:
    """What one study's DP release reported of the requester's remaining budget at one hospital."""

    hospital: str
    budget: DpBudget
    study: StudyView


def _when(study: StudyView) -> float:
    moment = study.finished_at or study.submitted_at
    return moment.timestamp() if moment is not None else 0.0


def budget_reports(studies: list[StudyView]) -> list[BudgetReport]:
    """The newest report per (hospital, dataset) among *studies*' results (newest study first)."""
    newest: dict[tuple[str, str], BudgetReport] = {}
    ordered = sorted(studies, key=_when, reverse=True)
    for study in ordered:
        reported = (study.result or {}).get("dp_budget") or {}
        for hospital, lines in reported.items():
            for line in lines:
                budget = DpBudget.model_validate(line)
                newest.setdefault((hospital, budget.dataset), BudgetReport(hospital, budget, study))
    return [newest[key] for key in sorted(newest)]


async def money_page(request: Request, viewer: Viewer, outcome: Outcome = NO_OUTCOME) -> Response:
    viewer.require("requester")
    applications = [ApplicationView.model_validate(a) for a in await viewer.api.get("/billing/applications")]
    applications.sort(key=lambda a: a.created_at, reverse=True)
    offered = [q for a in applications for q in a.quotes if q.state == "offered"]
    invoices = [InvoiceView.model_validate(i) for i in await viewer.api.get("/billing/invoices")]
    invoices.sort(key=lambda i: i.number, reverse=True)
    studies = [StudyView.model_validate(s) for s in await viewer.api.get("/studies")]
    return page(
        request,
        "money.html",
        viewer,
        status_code=outcome.status,
        applications=applications,
        latest={a.id: max(a.quotes, key=lambda q: q.revision) if a.quotes else None for a in applications},
        offered=offered,
        titles={a.id: a.form.get("title", a.id) for a in applications},
        invoices=invoices,
        budgets=budget_reports(studies),
        outcome=outcome,
    )


@router.get("/money", response_class=HTMLResponse)
async def money_overview(request: Request, viewer: CurrentViewer) -> Response:
    """The requester's applications, offered quotes, invoices and remaining privacy budget."""
    return await with_flash(request, lambda outcome: money_page(request, viewer, outcome))


@router.post("/money/quotes/{quote_id}/{decision}", response_class=HTMLResponse)
async def decide_quote(
    request: Request, viewer: CurrentViewer, quote_id: str, decision: Literal["accept", "decline"]
) -> Response:
    """Accept (its total becomes the binding ceiling) or decline an offered quote."""
    viewer.require("requester")
    try:
        decided = QuoteView.model_validate(
            await viewer.api.post(f"/billing/quotes/{segment(quote_id, 'quote_id')}/{decision}")
        )
    except FIXABLE as exc:
        return await money_page(request, viewer, Outcome.failed("quotes", exc))
    if decided.state == "accepted":
        notice = (
            f"Accepted quote {decided.id}: studies under {decided.application_id} may now run, up to the "
            f"ceiling of {money(decided.ceiling, decided.currency)}. Name it in a study as application_id: "
            f"{decided.application_id}."
        )
    else:
        notice = f"Declined quote {decided.id}; the operator can price a revised one."
    return done(request, "/portal/money", "quotes", notice)


async def application_form_page(
    request: Request, viewer: Viewer, outcome: Outcome = NO_OUTCOME, form: dict[str, Any] | None = None
) -> Response:
    viewer.require("requester")
    hospitals = sorted(
        (CatalogueEntry.model_validate(e) for e in await viewer.api.get("/catalogue")),
        key=lambda e: e.hospital,
    )
    tariffs = [TariffInfo.model_validate(t) for t in await viewer.api.get("/billing/tariffs")]
    tariff = tariffs[-1] if tariffs else None
    organisation = Organisation.model_validate(
        await viewer.api.get(f"/organisations/{viewer.me.organisation}")
    )
    category = organisation.category.value if organisation.category else ""
    services = []
    for service in BillableService:
        entry = (tariff.document.get("services") or {}).get(service.value) if tariff else None
        price = entry["prices"].get(category) if entry else None
        unit = entry["unit"] if entry else ""
        services.append({"name": service.value, "unit": unit, "price": price})
    return page(
        request,
        "money_application.html",
        viewer,
        status_code=outcome.status,
        hospitals=hospitals,
        services=services,
        currency=tariff.currency if tariff else "",
        tariff_version=tariff.version if tariff else None,
        category=category,
        form=form or {"duration_months": "12", "hospitals": [], "quantities": {}},
        outcome=outcome,
    )


@router.get("/money/applications/new", response_class=HTMLResponse)
async def new_application(request: Request, viewer: CurrentViewer) -> Response:
    """The application form: purpose, legal basis, ethics approval, hospitals, services, duration."""
    return await application_form_page(request, viewer)


@router.post("/money/applications", response_class=HTMLResponse)
async def file_application(request: Request, viewer: CurrentViewer) -> Response:
    """File the application (``POST /billing/applications``); the form keeps what was typed on an error."""
    viewer.require("requester")
    data = await request.form()
    text = {k: v for k, v in data.items() if isinstance(v, str)}
    hospitals = [h for h in data.getlist("hospitals") if isinstance(h, str)]
    others = [h.strip() for h in text.get("other_hospitals", "").split(",") if h.strip()]
    hospitals += [h for h in others if h not in hospitals]
    quantities = {s.value: text.get(f"qty_{s.value}", "").strip() for s in BillableService}
    form = {**text, "hospitals": hospitals, "quantities": quantities}
    try:
        services = []
        for service, quantity in quantities.items():
            if not quantity:
                continue
            if not quantity.isdigit():
                raise InputError(f"{quantity!r} is not a whole number", field=f"qty_{service}")
            services.append({"service": service, "quantity": int(quantity)})
        body = {
            "title": text.get("title", "").strip(),
            "purpose": text.get("purpose", "").strip(),
            "legal_basis": text.get("legal_basis", "").strip(),
            "ethics_reference": text.get("ethics_reference", "").strip(),
            "hospitals": hospitals,
            "services": services,
            "duration_months": text.get("duration_months", "").strip(),
            "micro_enterprise": text.get("micro_enterprise") == "true",
        }
        checked = model_from_document(ApplicationForm, body, file="the application form")
        filed = ApplicationView.model_validate(
            await viewer.api.post("/billing/applications", checked.model_dump(mode="json"))
        )
    except FIXABLE as exc:
        return await application_form_page(request, viewer, Outcome.failed("application", exc), form)
    notice = (
        f"Filed application {filed.id}. Each hospital's data steward now decides at its node; the operator "
        "then prices it and the quote appears here to accept or decline."
    )
    return done(request, "/portal/money", "applications", notice)


@router.get("/invoices/{number}/document")
async def invoice_document(
    viewer: CurrentViewer, number: str, format: Literal["pdf", "xml"] = "pdf"
) -> Response:
    """The invoice from the hub (``GET /billing/invoices/{number}/document``), as a download: PDF/A-3 with
    its Factur-X (EN 16931) XML embedded, or the CII XML alone. The hub decides who may see it."""
    viewer.require("admin", "requester")
    number = segment(number, "number")
    found = await viewer.api.raw("GET", f"/billing/invoices/{number}/document", params={"format": format})
    return Response(
        content=found.content,
        media_type=DOCUMENT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{number}.{format}"'},
    )
