"""``/api/v1/catalogue``: each hospital's latest dataset profile, for requesters to browse."""

from __future__ import annotations

from fastapi import APIRouter

from phds.errors import NotFound
from phds.hub import wire
from phds.hub.auth import AnyUser, Store, catalogue_scope
from phds.protocol.catalogue import CatalogueEntry
from phds.protocol.common import Slug

router = APIRouter(prefix="/catalogue", tags=["catalogue"])


@router.get("", response_model=list[CatalogueEntry])
def browse(caller: AnyUser, store: Store) -> list[CatalogueEntry]:
    """Every hospital's latest entry (requesters, admins); a steward sees only its own hospital's."""
    with store.unit() as uow:
        return [
            wire.catalogue_entry(row) for row in uow.catalogue.latest(organisation_id=catalogue_scope(caller))
        ]


@router.get("/{hospital}", response_model=CatalogueEntry)
def entry(hospital: Slug, caller: AnyUser, store: Store) -> CatalogueEntry:
    """One hospital's latest entry; 404 when it has published none (or is not visible to the caller)."""
    scope = catalogue_scope(caller)
    with store.unit() as uow:
        org = uow.organisations.by_name(hospital)
        if org is None or (scope is not None and org.id != scope):
            raise NotFound(f"no catalogue entry for hospital {hospital!r}")
        rows = uow.catalogue.latest(organisation_id=org.id)
        if not rows:
            raise NotFound(f"hospital {hospital!r} has not published a catalogue entry")
        return wire.catalogue_entry(rows[0])
