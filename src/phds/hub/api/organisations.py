"""``/api/v1/organisations``: admins add organisations; everyone sees their own."""

from __future__ import annotations

from fastapi import APIRouter

from phds.hub import services, wire
from phds.hub.auth import Admin, Caller, Store, ensure_sees_organisation, organisation_scope
from phds.protocol.common import Slug
from phds.protocol.organisations import Organisation, OrganisationCreate, OrganisationKind

router = APIRouter(prefix="/organisations", tags=["organisations"])


@router.post("", response_model=Organisation, status_code=201)
def create_organisation(spec: OrganisationCreate, _admin: Admin, store: Store) -> Organisation:
    """Add a hospital, a requester or (rarely) another operator organisation. Admins only."""
    with store.unit() as uow:
        return wire.organisation(services.create_organisation(uow, spec))


@router.get("", response_model=list[Organisation])
def list_organisations(
    caller: Caller, store: Store, kind: OrganisationKind | None = None
) -> list[Organisation]:
    """Every organisation for admins; the caller's own for everyone else."""
    scope = organisation_scope(caller)
    with store.unit() as uow:
        rows = uow.organisations.list(
            kind=kind.value if kind else None, ids=None if scope is None else [scope]
        )
        return [wire.organisation(row) for row in rows]


@router.get("/{name}", response_model=Organisation)
def get_organisation(name: Slug, caller: Caller, store: Store) -> Organisation:
    """One organisation by slug; others' organisations are invisible (404) to non-admins."""
    with store.unit() as uow:
        row = services.get_organisation(uow, name)
        ensure_sees_organisation(caller, row.id, f"organisation {name!r}")
        return wire.organisation(row)
