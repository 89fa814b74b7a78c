"""The hub's tariff versions (added, never edited) and organisations' billing profiles."""

from __future__ import annotations

import logging
from datetime import date

from phds.billing.tariff import Tariff, TariffBook
from phds.errors import Conflict, InputError
from phds.hub.store import UnitOfWork
from phds.hub.store.account_models import BillingProfileRow, TariffVersionRow
from phds.hub.store.models import OrganisationRow, utcnow
from phds.protocol.billing import BillingProfile

log = logging.getLogger(__name__)


def tariff_book(uow: UnitOfWork) -> TariffBook:
    return TariffBook([Tariff.model_validate(row.document) for row in uow.accounts.tariffs()])


def add_tariff(uow: UnitOfWork, tariff: Tariff) -> TariffVersionRow:
    """Store a new tariff version; an existing version or effective date is refused (never edited)."""
    book = tariff_book(uow)
    try:
        TariffBook([*book.versions, tariff])
    except InputError as exc:
        raise Conflict(exc.message) from None
    row = TariffVersionRow(
        version=tariff.version,
        effective_from=tariff.effective_from,
        document=tariff.model_dump(mode="json"),
        created_at=utcnow(),
    )
    uow.accounts.add(row)
    log.info("tariff %s effective from %s added", tariff.version, tariff.effective_from)
    return row


def tariff_in_force(uow: UnitOfWork, on: date) -> Tariff:
    return tariff_book(uow).in_force(on)


def set_profile(uow: UnitOfWork, organisation: OrganisationRow, profile: BillingProfile) -> None:
    row = uow.accounts.profile(organisation.id)
    body = profile.model_dump(mode="json")
    if row is None:
        uow.accounts.add(
            BillingProfileRow(organisation_id=organisation.id, profile=body, updated_at=utcnow())
        )
    else:
        row.profile, row.updated_at = body, utcnow()


def profile_of(uow: UnitOfWork, organisation: OrganisationRow) -> BillingProfile | None:
    row = uow.accounts.profile(organisation.id)
    return BillingProfile.model_validate(row.profile) if row is not None else None
