"""Node enrolment: admins issue one-time tokens; a node exchanges one for its own credential."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from phds.hub import services, wire
from phds.hub.auth import Admin, Settings, Store
from phds.hub.store.models import utcnow
from phds.protocol.enrolment import EnrolmentTokenCreate, EnrolmentTokenIssued, EnrolRequest, EnrolResponse

router = APIRouter(tags=["enrolment"])


@router.post("/enrolment-tokens", response_model=EnrolmentTokenIssued, status_code=201)
def issue_enrolment_token(
    spec: EnrolmentTokenCreate, admin: Admin, store: Store, settings: Settings
) -> EnrolmentTokenIssued:
    """A one-time token a hospital's node enrols with; shown once, expires, works once. Admins only."""
    ttl = timedelta(hours=spec.ttl_hours or settings.enrolment_token_ttl_hours)
    with store.unit() as uow:
        token, row = services.issue_enrolment_token(
            uow, hospital=spec.hospital, expires_at=utcnow() + ttl, created_by=admin.id
        )
        return EnrolmentTokenIssued(id=row.id, hospital=spec.hospital, token=token, expires_at=row.expires_at)


@router.post("/nodes/enrol", response_model=EnrolResponse, status_code=201)
def enrol(request: EnrolRequest, store: Store, settings: Settings) -> EnrolResponse:
    """Exchange a one-time enrolment token for the node's long-lived credential (shown once).

    No bearer token: the enrolment token in the body is the credential. A used, expired or wrong one
    is refused with 401; of two concurrent uses of one token exactly one succeeds.
    """
    with store.unit() as uow:
        credential, token, node = services.enrol_node(uow, request, settings, utcnow())
        return EnrolResponse(
            credential=credential, credential_expires_at=token.expires_at, node=wire.node(node)
        )
