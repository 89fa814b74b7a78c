"""The hub's money path, part 1: tariffs, billing profiles, applications, quotes, hospitals' participation,
and the check that binds every study to its accepted application and ceiling.

Each function works inside the caller's unit of work; authorisation is the API's (``hub/api/billing.py``).
Tariffs and billing profiles are :mod:`phds.hub.billing_tariffs`; invoices :mod:`phds.hub.billing_invoices`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from phds.billing.applications import ApplicationForm, PassThrough, price_application
from phds.billing.invoicing import charge_lines
from phds.billing.service_catalogue import BillableService, PriceUnit, service_for
from phds.billing.tariff import Tariff
from phds.errors import Conflict, InputError, NotFound, PermissionDenied, SignatureInvalid
from phds.hub.billing_tariffs import profile_of, tariff_in_force
from phds.hub.store import UnitOfWork
from phds.hub.store.account_models import (
    ApplicationRow,
    ParticipationRow,
    QuoteRow,
)
from phds.hub.store.models import OrganisationRow, utcnow
from phds.protocol.billing import ApplicationView, ParticipationStatement, QuoteView
from phds.protocol.organisations import RequesterCategory
from phds.protocol.studies import StudySpec, StudyState
from phds.trust.envelopes import verify_participation

log = logging.getLogger(__name__)


# -- applications and quotes ------------------------------------------------------------------------


def file_application(uow: UnitOfWork, organisation: OrganisationRow, form: ApplicationForm) -> ApplicationRow:
    """A requester organisation's application, numbered ``APP-<year>-<n>``."""
    if organisation.kind != "requester":
        raise PermissionDenied("only requester organisations file data-access applications")
    for i, name in enumerate(form.hospitals):
        hospital = uow.organisations.by_name(name)
        if hospital is None or hospital.kind != "hospital":
            raise InputError(f"{name!r} is not a hospital of this network", field=f"hospitals.{i}")
    now = utcnow()
    prefix = f"APP-{now.year}-"
    row = ApplicationRow(
        id=f"{prefix}{uow.accounts.count_applications(prefix) + 1:04d}",
        organisation_id=organisation.id,
        form=form.model_dump(mode="json"),
        state="submitted",
        created_at=now,
        updated_at=now,
    )
    uow.accounts.add(row)
    return row


def application_for(uow: UnitOfWork, application_id: str, *, lock: bool = False) -> ApplicationRow:
    row = uow.accounts.application(application_id, lock=lock)
    if row is None:
        raise NotFound(f"no application {application_id!r}")
    return row


def quote_application(
    uow: UnitOfWork, application_id: str, today: date, waivers: Mapping[str, str] | None = None
) -> QuoteRow:
    """Price the application into a new quote revision (an offered earlier revision is superseded)."""
    app = application_for(uow, application_id, lock=True)
    if app.state in ("declined", "withdrawn"):
        raise Conflict(f"application {app.id} is {app.state}")
    organisation = uow.organisations.get(app.organisation_id)
    assert organisation is not None and organisation.category is not None
    form = ApplicationForm.model_validate(app.form)
    tariff = tariff_in_force(uow, today)
    costs = [
        PassThrough(p.hospital, Decimal(p.pass_through), str(p.statement.get("detail") or "hospital costs"))
        for p in uow.accounts.participations(app.id)
        if p.accepted
    ]
    profile = profile_of(uow, organisation)
    draft = price_application(
        form,
        tariff,
        RequesterCategory(organisation.category),
        pass_through=costs,
        today=today,
        micro_enterprise=bool(profile and profile.micro_enterprise),
        waivers=waivers,
    )
    earlier = uow.accounts.quotes(app.id)
    for quote in earlier:
        if quote.state == "offered":
            quote.state = "superseded"
    revision = len(earlier) + 1
    row = QuoteRow(
        id=f"Q-{app.id.removeprefix('APP-')}-{revision}",
        application_id=app.id,
        revision=revision,
        tariff_version=draft.tariff_version,
        lines=[line.to_json() for line in draft.lines],
        ceiling=draft.ceiling,
        currency=draft.currency,
        valid_until=draft.valid_until,
        state="offered",
        created_at=utcnow(),
    )
    uow.accounts.add(row)
    if app.state == "submitted":
        app.state, app.updated_at = "quoted", utcnow()
    return row


def decide_quote(
    uow: UnitOfWork, quote_id: str, organisation: OrganisationRow, *, accept: bool, today: date
) -> QuoteRow:
    """The requester accepts or declines an offered quote; accepting supersedes an earlier accepted one."""
    quote = uow.accounts.quote(quote_id)
    app = application_for(uow, quote.application_id, lock=True) if quote is not None else None
    if quote is None or app is None or app.organisation_id != organisation.id:
        raise NotFound(f"no quote {quote_id!r}")
    if quote.state != "offered":
        raise Conflict(f"quote {quote_id} is {quote.state}, not offered")
    if accept and quote.valid_until < today:
        raise Conflict(
            f"quote {quote_id} expired on {quote.valid_until}; ask the operator for a revised quote"
        )
    now = utcnow()
    if accept:
        for other in uow.accounts.quotes(app.id):
            if other.state == "accepted":
                other.state = "superseded"
        quote.state, app.state = "accepted", "accepted"
    else:
        quote.state = "declined"
        if uow.accounts.accepted_quote(app.id) is None:
            app.state = "declined"
    quote.decided_at, app.updated_at = now, now
    return quote


def record_participation(
    uow: UnitOfWork, node_public_key: str | None, hospital: str, statement: ParticipationStatement
) -> None:
    """A node reports its steward's signed participation decision; the node key must have signed it."""
    if statement.hospital != hospital:
        raise PermissionDenied(f"this node serves {hospital}, not {statement.hospital}")
    if node_public_key is None:
        raise SignatureInvalid("this node has no pinned key, so its participation cannot be verified")
    try:
        verify_participation(statement, node_public_key)
    except SignatureInvalid as exc:
        raise InputError(exc.message, field="signature") from None
    app = application_for(uow, statement.application_id, lock=True)
    if hospital not in ApplicationForm.model_validate(app.form).hospitals:
        raise NotFound(f"no application {app.id!r} naming {hospital}")
    row = uow.accounts.participation(app.id, hospital)
    body = statement.model_dump(mode="json")
    if row is None:
        uow.accounts.add(
            ParticipationRow(
                application_id=app.id,
                hospital=hospital,
                accepted=statement.accepted,
                pass_through=statement.pass_through_per_study,
                statement=body,
                received_at=utcnow(),
            )
        )
    elif datetime.fromisoformat(str(row.statement["signed_at"])) < statement.signed_at:
        row.accepted, row.pass_through, row.statement = (
            statement.accepted,
            statement.pass_through_per_study,
            body,
        )
        row.received_at = utcnow()


def application_view(uow: UnitOfWork, app: ApplicationRow) -> ApplicationView:
    organisation = uow.organisations.get(app.organisation_id)
    assert organisation is not None
    return ApplicationView(
        id=app.id,
        organisation=organisation.name,
        state=app.state,
        form=app.form,
        created_at=app.created_at,
        quotes=[quote_view(q) for q in uow.accounts.quotes(app.id)],
        participations=[
            ParticipationStatement.model_validate(p.statement) for p in uow.accounts.participations(app.id)
        ],
        charged=charged_so_far(uow, app),
    )


def quote_view(row: QuoteRow) -> QuoteView:
    return QuoteView(
        id=row.id,
        application_id=row.application_id,
        revision=row.revision,
        tariff_version=row.tariff_version,
        currency=row.currency,
        lines=row.lines,
        ceiling=Decimal(row.ceiling),
        valid_until=row.valid_until,
        state=row.state,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


# -- the binding ceiling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pricing:
    tariff: Tariff
    category: RequesterCategory
    micro: bool
    costs: dict[tuple[str | None, str], Decimal]
    waivers: dict[tuple[str | None, str], str]


def quote_waivers(quote: QuoteRow) -> dict[tuple[str | None, str], str]:
    """(application, service) → the reason the quote waived that service's fee."""
    return {
        (quote.application_id, line["service"]): line["waiver"] for line in quote.lines if line.get("waiver")
    }


def _pricing(uow: UnitOfWork, app: ApplicationRow, quote: QuoteRow) -> _Pricing:
    organisation = uow.organisations.get(app.organisation_id)
    assert organisation is not None and organisation.category is not None
    row = uow.accounts.tariff(quote.tariff_version)
    assert row is not None
    profile = profile_of(uow, organisation)
    micro = bool(profile and profile.micro_enterprise)
    return _Pricing(
        Tariff.model_validate(row.document),
        RequesterCategory(organisation.category),
        micro,
        pass_through_costs(uow, app.id),
        quote_waivers(quote),
    )


def _metered_by_study(uow: UnitOfWork, app: ApplicationRow, pricing: _Pricing) -> dict[str | None, Decimal]:
    receipts = [r.metered() for r in uow.billing.receipts(application_id=app.id)]
    lines = charge_lines(
        receipts,
        pricing.tariff,
        pricing.category,
        pass_through=pricing.costs,
        micro_enterprise=pricing.micro,
        waivers=pricing.waivers,
    )
    charged: dict[str | None, Decimal] = {}
    for line in lines:
        charged[line.study_id] = charged.get(line.study_id, Decimal(0)) + line.net_amount
    return charged


def _study_at_most(spec: StudySpec, pricing: _Pricing) -> Decimal:
    """The most a study can be charged: every hospital answering, with its pass-through."""
    service = service_for(spec.service_type)
    unit = pricing.tariff.unit_price(service, pricing.category, micro_enterprise=pricing.micro)
    per_hospital = pricing.tariff.price(service).unit is PriceUnit.PER_HOSPITAL
    waived = (spec.application_id, service.value) in pricing.waivers
    total = (Decimal(0) if waived else unit.net_price) * (len(spec.hospitals) if per_hospital else 1)
    if service is not BillableService.FEASIBILITY:
        total += sum(
            (pricing.costs.get((spec.application_id, h), Decimal(0)) for h in spec.hospitals), Decimal(0)
        )
    return total


def charged_so_far(uow: UnitOfWork, app: ApplicationRow) -> Decimal:
    """What the application has been charged: its quote's fixed fees plus every metered line so far."""
    quote = uow.accounts.accepted_quote(app.id)
    if quote is None:
        return Decimal("0.00")
    fixed = sum(
        (Decimal(line["amount"]) for line in quote.lines if line["service"] == "application_fee"), Decimal(0)
    )
    return fixed + sum(_metered_by_study(uow, app, _pricing(uow, app, quote)).values(), Decimal(0))


def committed(uow: UnitOfWork, app: ApplicationRow, pricing: _Pricing, fixed: Decimal) -> Decimal:
    """Fixed fees, plus what finished studies were charged, plus the most each running study can cost:
    so studies submitted together cannot pass the ceiling before any of them is metered."""
    metered = _metered_by_study(uow, app, pricing)
    total = fixed + metered.get(None, Decimal(0))
    for study in uow.studies.list(organisation_id=app.organisation_id):
        if study.spec.get("application_id") != app.id:
            continue
        charged = metered.get(str(study.id), Decimal(0))
        if StudyState(study.state).is_final:
            total += charged
        else:
            total += max(charged, _study_at_most(StudySpec.model_validate(study.spec), pricing))
    return total


def pass_through_costs(uow: UnitOfWork, application_id: str) -> dict[tuple[str | None, str], Decimal]:
    return {
        (application_id, p.hospital): Decimal(p.pass_through)
        for p in uow.accounts.participations(application_id)
        if p.accepted
    }


def check_study_billing(
    uow: UnitOfWork, organisation: OrganisationRow, spec: StudySpec, *, required: bool, today: date
) -> None:
    """Refuse a study outside its application, or one that could pass the accepted quote's ceiling."""
    if spec.application_id is None:
        if required:
            raise InputError(
                "this network bills studies under an accepted application; name it", field="application_id"
            )
        return
    app = uow.accounts.application(spec.application_id, lock=True)
    if app is None or app.organisation_id != organisation.id:
        raise InputError(
            f"no application {spec.application_id!r} of {organisation.name}", field="application_id"
        )
    quote = uow.accounts.accepted_quote(app.id)
    if app.state != "accepted" or quote is None:
        raise Conflict(f"application {app.id} is {app.state}: a study runs only under an accepted quote")
    form = ApplicationForm.model_validate(app.form)
    for i, hospital in enumerate(spec.hospitals):
        if hospital not in form.hospitals:
            raise InputError(f"{hospital} is not named in application {app.id}", field=f"hospitals.{i}")
        participation = uow.accounts.participation(app.id, hospital)
        if participation is None or not participation.accepted:
            raise Conflict(
                f"{hospital}'s data steward has not accepted participation in application {app.id}"
            )
    service = service_for(spec.service_type)
    if service not in {s.service for s in form.services}:
        raise InputError(f"application {app.id} does not cover {service.value} studies", field="service_type")
    pricing = _pricing(uow, app, quote)
    fixed = sum(
        (Decimal(line["amount"]) for line in quote.lines if line["service"] == "application_fee"), Decimal(0)
    )
    at_most = _study_at_most(spec, pricing)
    charged = committed(uow, app, pricing, fixed)
    if charged + at_most > Decimal(quote.ceiling):
        raise Conflict(
            f"this study could cost up to {at_most} {quote.currency}; application {app.id} has "
            f"{charged} of its {quote.ceiling} ceiling committed (quote {quote.id}), so it was not "
            "submitted: accept a revised quote (the operator re-quotes the application), then submit again"
        )
