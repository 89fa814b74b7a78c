"""``/api/v1/billing``: tariffs, billing profiles, applications, quotes, participation, invoices, statements.

Who may do what: the operator (admin) adds tariffs, sets billing profiles, quotes applications, issues
invoices and records payments; a requester files applications, accepts or declines its quotes and reads
its invoices; a node reports its steward's signed participation; a hospital's steward and node read its
statements. Anything a caller may not see answers 404.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field

from phds.billing.applications import ApplicationForm
from phds.billing.documents import document_from_json
from phds.billing.render import render_cii_xml, render_html, render_pdf
from phds.billing.tariff import Tariff
from phds.errors import NotFound
from phds.hub import billing_applications as apps
from phds.hub import billing_invoices as invoices
from phds.hub import billing_statements as statements
from phds.hub import billing_tariffs as tariffs
from phds.hub.auth import Admin, AnyUser, Caller, NodeCaller, Principal, RequesterCaller, Store, allow
from phds.hub.services import get_organisation
from phds.hub.store.models import utcnow
from phds.protocol.billing import (
    ApplicationView,
    BillingProfile,
    HospitalStatement,
    InvoiceEvidence,
    InvoiceView,
    ParticipationStatement,
    Payout,
    QuoteView,
    TariffInfo,
)
from phds.protocol.common import Slug

router = APIRouter(prefix="/billing", tags=["billing"])

Period = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="A month, YYYY-MM")]


class Payment(BaseModel):
    paid_at: datetime | None = None
    reference: str | None = Field(default=None, max_length=200)


class QuoteTerms(BaseModel):
    waivers: dict[str, str] = Field(default_factory=dict, description="service → the reason for waiving it")


class Credit(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


def _today() -> date:
    return utcnow().date()


@router.get("/tariffs", response_model=list[TariffInfo])
def list_tariffs(caller: AnyUser, store: Store) -> list[TariffInfo]:
    """Every tariff version, oldest first."""
    with store.unit() as uow:
        return [
            TariffInfo(
                version=t.version,
                effective_from=t.effective_from,
                currency=t.document["currency"],
                document=t.document,
            )
            for t in uow.accounts.tariffs()
        ]


@router.post("/tariffs", response_model=TariffInfo, status_code=201)
def add_tariff(tariff: Tariff, caller: Admin, store: Store) -> TariffInfo:
    """A new tariff version (never an edit: an existing version or effective date answers 409)."""
    with store.unit() as uow:
        row = tariffs.add_tariff(uow, tariff)
        return TariffInfo(
            version=row.version,
            effective_from=row.effective_from,
            currency=tariff.currency,
            document=row.document,
        )


@router.put("/profiles/{organisation}", response_model=BillingProfile)
def set_profile(organisation: Slug, profile: BillingProfile, caller: Admin, store: Store) -> BillingProfile:
    """An organisation's invoicing details, as the operator verified them."""
    with store.unit() as uow:
        tariffs.set_profile(uow, get_organisation(uow, organisation), profile)
        return profile


@router.get("/profiles/{organisation}", response_model=BillingProfile)
def get_profile(organisation: Slug, caller: AnyUser, store: Store) -> BillingProfile:
    with store.unit() as uow:
        org = get_organisation(uow, organisation)
        profile = (
            tariffs.profile_of(uow, org) if caller.is_admin or caller.organisation_id == org.id else None
        )
        if profile is None:
            raise NotFound(f"no billing profile for {organisation!r}")
        return profile


def _visible(caller: Principal, form: dict[str, Any], organisation_id: Any) -> bool:
    if caller.is_admin or caller.organisation_id == organisation_id:
        return True
    return caller.organisation_kind.value == "hospital" and caller.organisation_name in form.get(
        "hospitals", []
    )


@router.post("/applications", response_model=ApplicationView, status_code=201)
def file_application(form: ApplicationForm, caller: RequesterCaller, store: Store) -> ApplicationView:
    """File a data-access application for the caller's organisation."""
    with store.unit() as uow:
        org = uow.organisations.get(caller.organisation_id)
        assert org is not None
        return apps.application_view(uow, apps.file_application(uow, org, form))


@router.get("/applications", response_model=list[ApplicationView])
def list_applications(
    caller: Annotated[Principal, allow("admin", "requester", "steward", "node")], store: Store
) -> list[ApplicationView]:
    """Applications the caller may see: its own, or those naming its hospital, or all (the operator)."""
    with store.unit() as uow:
        return [
            apps.application_view(uow, a)
            for a in uow.accounts.applications()
            if _visible(caller, a.form, a.organisation_id)
        ]


@router.get("/applications/{application_id}", response_model=ApplicationView)
def get_application(application_id: str, caller: Caller, store: Store) -> ApplicationView:
    with store.unit() as uow:
        app = apps.application_for(uow, application_id)
        if not _visible(caller, app.form, app.organisation_id):
            raise NotFound(f"no application {application_id!r}")
        return apps.application_view(uow, app)


@router.post("/applications/{application_id}/quotes", response_model=QuoteView, status_code=201)
def quote_application(
    application_id: str, caller: Admin, store: Store, terms: Annotated[QuoteTerms | None, Body()] = None
) -> QuoteView:
    """Price the application into a new quote revision under the tariff in force; *waivers* name the
    services whose fee the operator waives, each with its recorded reason."""
    waivers = terms.waivers if terms is not None else {}
    with store.unit() as uow:
        return apps.quote_view(apps.quote_application(uow, application_id, _today(), waivers))


@router.post("/quotes/{quote_id}/{decision}", response_model=QuoteView)
def decide_quote(
    quote_id: str, decision: Literal["accept", "decline"], caller: RequesterCaller, store: Store
) -> QuoteView:
    """The requester accepts or declines its offered quote."""
    with store.unit() as uow:
        org = uow.organisations.get(caller.organisation_id)
        assert org is not None
        return apps.quote_view(
            apps.decide_quote(uow, quote_id, org, accept=decision == "accept", today=_today())
        )


@router.post("/applications/{application_id}/participation", status_code=204)
def report_participation(
    application_id: str, statement: ParticipationStatement, caller: NodeCaller, store: Store
) -> None:
    """A node reports its steward's participation decision, signed by the node key."""
    if statement.application_id != application_id:
        raise NotFound(f"the statement is for {statement.application_id}, not {application_id}")
    with store.unit() as uow:
        node = uow.nodes.get(caller.id)
        assert node is not None
        apps.record_participation(uow, node.public_key, caller.organisation_name, statement)


@router.post("/invoices/issue", response_model=list[InvoiceView], status_code=201)
def issue_invoices(
    period: Period,
    caller: Admin,
    store: Store,
    close_early: Annotated[bool, Query(description="Invoice the running month up to now")] = False,
) -> list[InvoiceView]:
    """Issue every requester's invoice for a finished month (those issued already are skipped)."""
    with store.unit() as uow:
        issued = invoices.issue_month(uow, period, _today(), close_early=close_early)
        return [invoices.invoice_view(uow, row) for row in issued]


def _invoice(uow: Any, number: str, caller: Principal) -> Any:
    row = invoices.invoice_for(uow, number)
    if not caller.is_admin and caller.organisation_id != row.organisation_id:
        raise NotFound(f"no invoice {number!r}")
    return row


@router.get("/invoices", response_model=list[InvoiceView])
def list_invoices(caller: AnyUser, store: Store, period: Period | None = None) -> list[InvoiceView]:
    with store.unit() as uow:
        scope = None if caller.is_admin else caller.organisation_id
        return [
            invoices.invoice_view(uow, r) for r in uow.accounts.invoices(organisation_id=scope, period=period)
        ]


@router.get("/invoices/{number}", response_model=InvoiceView)
def get_invoice(number: str, caller: AnyUser, store: Store) -> InvoiceView:
    with store.unit() as uow:
        return invoices.invoice_view(uow, _invoice(uow, number, caller))


@router.get("/invoices/{number}/document")
def invoice_document(
    number: str, caller: AnyUser, store: Store, format: Literal["html", "pdf", "xml", "json"] = "pdf"
) -> Response:
    """The invoice as HTML, PDF/A-3 with its embedded Factur-X (EN 16931) XML, the XML alone, or JSON."""
    with store.unit() as uow:
        data = dict(_invoice(uow, number, caller).document)
    if format == "json":
        return Response(content=json.dumps(data), media_type="application/json")
    document = document_from_json(data)
    if format == "html":
        return Response(content=render_html(document), media_type="text/html; charset=utf-8")
    if format == "xml":
        return Response(content=render_cii_xml(document), media_type="application/xml")
    return Response(
        content=render_pdf(document),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{number}.pdf"'},
    )


@router.get("/invoices/{number}/evidence", response_model=InvoiceEvidence)
def invoice_evidence(number: str, caller: AnyUser, store: Store) -> InvoiceEvidence:
    """The node-signed receipts and participation behind the invoice, for ``phds billing verify``."""
    with store.unit() as uow:
        return statements.evidence(uow, _invoice(uow, number, caller))


@router.post("/invoices/{number}/payment", response_model=InvoiceView)
def record_payment(number: str, payment: Payment, caller: Admin, store: Store) -> InvoiceView:
    """Record that an issued invoice was paid (its hospitals' shares become payable)."""
    with store.unit() as uow:
        paid_at = payment.paid_at or datetime.now(UTC)
        return invoices.invoice_view(uow, invoices.record_payment(uow, number, paid_at, payment.reference))


@router.post("/invoices/{number}/credit", response_model=InvoiceView, status_code=201)
def credit_invoice(number: str, credit: Credit, caller: Admin, store: Store) -> InvoiceView:
    """A credit note cancelling an issued, unpaid invoice."""
    with store.unit() as uow:
        return invoices.invoice_view(uow, invoices.credit_invoice(uow, number, credit.reason, _today()))


class PayoutRequest(BaseModel):
    hospital: Slug
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    reference: str | None = Field(default=None, max_length=200)


@router.post("/payouts", response_model=Payout, status_code=201)
def record_payout(request: PayoutRequest, caller: Admin, store: Store) -> Payout:
    """Pay a hospital its shares of a month's paid invoices not paid out yet (409 when nothing is)."""
    with store.unit() as uow:
        get_organisation(uow, request.hospital)
        return statements.record_payout(uow, request.hospital, request.period, request.reference)


@router.get("/statements/{hospital}", response_model=HospitalStatement)
def hospital_statement(
    hospital: Slug,
    period: Period,
    caller: Annotated[Principal, allow("admin", "steward", "node")],
    store: Store,
) -> HospitalStatement:
    """A hospital's earnings of a month: the operator, or the hospital's steward or node."""
    if not caller.is_admin and caller.organisation_name != hospital:
        raise NotFound(f"no statement for {hospital!r} visible to you")
    with store.unit() as uow:
        get_organisation(uow, hospital)
        return statements.hospital_statement(uow, hospital, period)
